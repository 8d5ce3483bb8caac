"""The live stream: driven by commit-time notifications, resumable with Last-Event-ID."""

from __future__ import annotations

import asyncio
from pathlib import Path

from aiohttp import web

from operator_sim.server import ProblemRunner
from tests.conftest import DEMO_KEY, IR_PATH, AiohttpClient
from tests.console_support import attr, demo_console, tagged, text_of


async def test_a_post_through_the_api_reaches_the_journal_stream(
    aiohttp_client: AiohttpClient, db_path: Path
) -> None:
    console = await demo_console(aiohttp_client, db_path)
    live = await console.stream(await console.page("/ui/journal"))
    assert (await console.identify("+79000000007")).status == 503
    event = await live.until("journal")
    [row] = tagged(event.data, "journal-row")
    assert 'data-msisdn="+79000000007"' in row
    assert 'data-http-status="503"' in row
    assert event.id is not None


async def test_the_journal_stream_keeps_its_filter(
    aiohttp_client: AiohttpClient, db_path: Path
) -> None:
    console = await demo_console(aiohttp_client, db_path)
    live = await console.stream(await console.page("/ui/journal?msisdn=%2B79000000002"))
    await console.identify("+79000000001")
    await console.identify("+79000000002")
    event = await live.until("journal")
    while "+79000000002" not in event.data:
        event = await live.until("journal")
    assert [attr(r, "data-msisdn") for r in tagged(event.data, "journal-row")] == ["+79000000002"]


async def test_an_advance_through_the_api_pushes_the_clock(
    aiohttp_client: AiohttpClient, db_path: Path
) -> None:
    console = await demo_console(aiohttp_client, db_path)
    live = await console.stream(await console.page("/ui/"))
    advanced = await console.admin("POST", "/clock/advance", {"by": "PT24H"})
    event = await live.until("clock")
    assert attr(event.data, "datetime") == advanced["now"]
    assert 'data-mode="manual"' in event.data


async def test_a_mode_change_through_the_api_pushes_mode_and_scale(
    aiohttp_client: AiohttpClient, db_path: Path
) -> None:
    console = await demo_console(aiohttp_client, db_path)
    live = await console.stream(await console.page("/ui/rules"))
    await console.admin("PUT", "/clock", {"mode": "scaled", "scale": 60})
    event = await live.until("clock")
    assert 'data-mode="scaled"' in event.data
    assert 'data-scale="60"' in event.data
    assert int(attr(event.data, "data-sim-ms")) > 0


async def test_the_request_stream_follows_the_answer(
    aiohttp_client: AiohttpClient, db_path: Path
) -> None:
    console = await demo_console(aiohttp_client, db_path)
    slow = await (await console.identify("+79000000009")).json()
    live = await console.stream(await console.page(f"/ui/requests/{slow['id']}"))
    await console.admin("POST", "/clock/advance", {"by": "PT5M"})
    event = await live.until("request")
    while text_of(event.data, "request-status") != "answered":
        event = await live.until("request")
    assert 'data-event-type="identification.answered"' in event.data


async def test_a_termination_reaches_the_deliveries_stream(
    aiohttp_client: AiohttpClient, db_path: Path
) -> None:
    console = await demo_console(aiohttp_client, db_path)
    req = await (await console.identify("+79000000001")).json()
    await console.client.post(
        "/operators/alfa/v1/identification-codes",
        json={"request_id": req["id"], "code": "code-0001-stream"},
        headers={"Authorization": f"Bearer {DEMO_KEY}"},
    )
    live = await console.stream(await console.page("/ui/deliveries"))
    await console.admin("POST", "/subscribers/+79000000001/terminate")
    event = await live.until("deliveries")
    [newest, *_] = tagged(event.data, "delivery-row")
    assert 'data-event-type="subscriber.contract_terminated"' in newest
    assert 'data-state="pending"' in newest


async def test_rule_changes_through_the_api_reach_the_rules_stream(
    aiohttp_client: AiohttpClient, db_path: Path
) -> None:
    console = await demo_console(aiohttp_client, db_path)
    live = await console.stream(await console.page("/ui/rules"))
    await console.admin("POST", "/rules", {"id": "added-by-api", "action": {"type": "never"}})
    event = await live.until("rules")
    assert 'data-rule-id="added-by-api"' in event.data
    await console.admin("DELETE", "/rules/added-by-api")
    event = await live.until("rules")
    assert 'data-rule-id="added-by-api"' not in event.data


async def test_rule_hits_update_live(aiohttp_client: AiohttpClient, db_path: Path) -> None:
    console = await demo_console(aiohttp_client, db_path)
    live = await console.stream(await console.page("/ui/rules"))
    await console.identify("+79000000005")  # magic-never-answered applies
    event = await live.until("rules")
    row = event.data.split('data-rule-id="magic-never-answered"', 1)[1]
    assert row.split("<td data-hits>", 1)[1].startswith("1<")


async def test_overview_counters_follow_requests(
    aiohttp_client: AiohttpClient, db_path: Path
) -> None:
    console = await demo_console(aiohttp_client, db_path)
    live = await console.stream(await console.page("/ui/"))
    await console.identify("+79000000005")
    event = await live.until("counters")
    while '<dd data-counter="pending">1</dd>' not in event.data:
        event = await live.until("counters")
    await console.admin("POST", "/clock/advance", {"by": "PT20M"})
    event = await live.until("counters")
    while '<dd data-counter="expired">1</dd>' not in event.data:
        event = await live.until("counters")
    assert '<dd data-counter="pending">0</dd>' in event.data


async def test_a_reset_through_the_api_refreshes_every_part(
    aiohttp_client: AiohttpClient, db_path: Path
) -> None:
    console = await demo_console(aiohttp_client, db_path)
    await console.identify("+79000000001")
    live = await console.stream(await console.page("/ui/journal"))
    await console.admin("POST", "/reset")
    seen: dict[str, str] = {}
    while set(seen) != {"clock", "journal"}:
        event = await live.next()
        seen[event.event] = event.data
    assert tagged(seen["journal"], "journal-row") == []


async def test_the_page_position_covers_changes_before_the_stream_opens(
    aiohttp_client: AiohttpClient, db_path: Path
) -> None:
    console = await demo_console(aiohttp_client, db_path)
    page = await console.page("/ui/journal")
    await console.identify("+79000000001")  # after the page, before its stream
    live = await console.stream(page)
    event = await live.next()
    assert event.event == "journal"
    assert 'data-msisdn="+79000000001"' in event.data


async def test_a_reconnect_gets_only_the_parts_that_changed_since_its_last_event(
    aiohttp_client: AiohttpClient, db_path: Path
) -> None:
    console = await demo_console(aiohttp_client, db_path)
    page = await console.page("/ui/journal")
    live = await console.stream(page)
    await console.identify("+79000000001")
    first = await live.until("journal")
    live.close()
    await console.identify("+79000000002")  # while disconnected
    resumed = await console.stream(page, last_event_id=first.id)
    event = await resumed.next()
    # Only the journal changed: no clock before it (parts go out in name order).
    assert event.event == "journal"
    assert [attr(r, "data-msisdn") for r in tagged(event.data, "journal-row")] == [
        "+79000000002",
        "+79000000001",
    ]
    resumed.close()
    # Nothing changed since this one: the stream sends nothing until something does.
    quiet = await console.stream(page, last_event_id=resumed.last_id)
    await console.admin("POST", "/clock/advance", {"by": "PT1M"})
    event = await quiet.next()
    assert event.event == "clock"


async def test_a_position_from_another_process_gets_every_part(
    aiohttp_client: AiohttpClient, db_path: Path
) -> None:
    console = await demo_console(aiohttp_client, db_path)
    page = await console.page("/ui/journal")
    live = await console.stream(page, last_event_id="0000dead-17")
    names = {(await live.next()).event, (await live.next()).event}
    assert names == {"clock", "journal"}


async def test_an_unknown_stream_is_a_404(aiohttp_client: AiohttpClient, db_path: Path) -> None:
    console = await demo_console(aiohttp_client, db_path)
    resp = await console.client.get("/ui/stream/elsewhere")
    assert resp.status == 404
    bad = await console.client.get("/ui/stream/journal?msisdn=8916")
    assert bad.status == 422


async def test_shutdown_ends_open_streams_at_once(db_path: Path) -> None:
    from tests.console_support import app_for

    runner = ProblemRunner(app_for(db_path), handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    import aiohttp

    async with aiohttp.ClientSession(
        base_url=f"http://127.0.0.1:{port}", cookie_jar=aiohttp.CookieJar(unsafe=True)
    ) as http:
        page = await (await http.get("/ui/")).text()
        stream = await http.get(attr(page, "sse-connect"))
        assert stream.status == 200
        # A POST keeps the server busy with something real, then the streams must not
        # hold the shutdown for aiohttp's 60 s grace period.
        await http.post(
            IR_PATH.format(operator="alfa"),
            json={"msisdn": "+79000000001"},
            headers={"Authorization": f"Bearer {DEMO_KEY}"},
        )
        async with asyncio.timeout(10):
            await runner.cleanup()
        stream.close()
