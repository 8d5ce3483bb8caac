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
            webhook_url="http://127.0.0.1:9/hook",
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
