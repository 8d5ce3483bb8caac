"""The outbox's webhook state: an attempt recorded late never overwrites a replay."""

from __future__ import annotations

from pathlib import Path

from operator_sim.store import Conn, messengers, open_database
from operator_sim.store import outbox as events


async def test_an_attempt_finishing_after_a_replay_leaves_the_new_schedule(tmp_path: Path) -> None:
    db = await open_database(tmp_path / "events.db")

    async def setup(conn: Conn) -> None:
        await messengers.insert_messenger(
            conn,
            messenger_id="m",
            name="M",
            webhook_url="http://127.0.0.1:9/hook",
            api_key="m-key-0123456789abcdef",
            webhook_secret="whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            demo=False,
            source="admin",
            now_ms=0,
        )
        await events.insert_event(
            conn,
            event_id="evt_1",
            messenger_id="m",
            operator_id="alfa",
            type_="identification.answered",
            occurred_at=1_000,
            deliver_by=86_401_000,
            body="{}",
        )

    await db.run(setup)
    [due] = await db.read(lambda conn: events.due_webhooks(conn, 1_000, 10))
    # The attempt is in flight; meanwhile an admin replays the event at t = 5,000.
    assert await db.run(lambda conn: events.replay_webhook(conn, "evt_1", 5_000))
    await db.run(
        lambda conn: events.record_attempts(
            conn,
            [
                events.AttemptRecord(
                    event_id="evt_1",
                    attempt=due.attempt,
                    base=due.base,
                    at=1_000,
                    status=500,
                    error="HTTP 500",
                    delivered=False,
                    next_at=None,
                )
            ],
        )
    )
    [again] = await db.read(lambda conn: events.due_webhooks(conn, 5_000, 10))
    [delivery] = await db.read(
        lambda conn: events.list_deliveries(conn, messenger_id=None, event_id="evt_1", limit=1)
    )
    assert (again.attempt, again.base, again.due_at) == (0, 5_000, 5_000)
    assert delivery.webhook is not None
    assert delivery.webhook.state == "pending"
    assert [a.status for a in delivery.webhook.attempts] == [500]  # the attempt is kept
    await db.close()


async def test_an_event_takes_the_webhook_url_its_messenger_has_when_it_is_written(
    tmp_path: Path,
) -> None:
    db = await open_database(tmp_path / "events.db")

    async def messenger(conn: Conn, messenger_id: str, url: str | None) -> None:
        await messengers.insert_messenger(
            conn,
            messenger_id=messenger_id,
            name=messenger_id,
            webhook_url=url,
            api_key=f"{messenger_id}-key-0123456789abcdef",
            webhook_secret="whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            demo=False,
            source="admin",
            now_ms=0,
        )

    async def event(conn: Conn, event_id: str, messenger_id: str) -> None:
        await events.insert_event(
            conn,
            event_id=event_id,
            messenger_id=messenger_id,
            operator_id="alfa",
            type_="identification.answered",
            occurred_at=1_000,
            deliver_by=86_401_000,
            body="{}",
            delivered_from=2_000,
        )

    async def setup(conn: Conn) -> None:
        await messenger(conn, "hooked", "http://127.0.0.1:9/old")
        await messenger(conn, "pulling", None)
        await event(conn, "evt_old_url", "hooked")
        await messengers.update_messenger(
            conn, "hooked", webhook_url="http://127.0.0.1:9/new", set_webhook_url=True
        )
        await event(conn, "evt_new_url", "hooked")
        await event(conn, "evt_feed_only", "pulling")
        await event(conn, "evt_no_messenger", "gone")  # still written: the feed has it

    await db.run(setup)

    async def rows(conn: Conn) -> list[tuple[object, ...]]:
        async with conn.execute(
            "SELECT id, webhook_url, webhook_state, webhook_base, webhook_next_at FROM events "
            "ORDER BY seq"
        ) as cur:
            return [tuple(row) for row in await cur.fetchall()]

    assert await db.read(rows) == [
        ("evt_old_url", "http://127.0.0.1:9/old", "pending", 2_000, 2_000),
        ("evt_new_url", "http://127.0.0.1:9/new", "pending", 2_000, 2_000),
        ("evt_feed_only", None, None, None, None),
        ("evt_no_messenger", None, None, None, None),
    ]
    await db.close()
