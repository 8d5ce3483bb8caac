"""Each console page renders what the admin API holds, with the documented test ids."""

from __future__ import annotations

import re
from pathlib import Path

from tests.conftest import DEMO_KEY, IR_PATH, AiohttpClient
from tests.console_support import attr, demo_console, tagged, text_of


async def test_overview_shows_the_clock_its_buttons_and_counters(
    aiohttp_client: AiohttpClient, db_path: Path
) -> None:
    console = await demo_console(aiohttp_client, db_path)
    await console.identify("+79000000001")  # answered at once
    await console.identify("+79000000005")  # stays pending
    page = await console.page("/ui/")
    clock = await console.admin("GET", "/clock")
    [now] = tagged(page, "clock-now")
    assert f'datetime="{clock["now"]}"' in now
    assert 'data-mode="manual"' in now
    assert len(tagged(page, "clock-advance")) == 1
    assert len(tagged(page, "clock-advance-day")) == 1
    assert '<dd data-counter="pending">1</dd>' in page
    assert '<dd data-counter="answered">1</dd>' in page
    assert '<dd data-counter="expired">0</dd>' in page
    # The answered request's event waits on the feed: nobody has read it.
    assert '<dd data-counter="undelivered">1</dd>' in page
    assert attr(page, "sse-connect").startswith("/ui/stream/overview?from=")


async def test_journal_lists_posts_newest_first_with_number_and_status(
    aiohttp_client: AiohttpClient, db_path: Path
) -> None:
    console = await demo_console(aiohttp_client, db_path)
    await console.identify("+79000000001")
    assert (await console.identify("+79000000007")).status == 503  # refused by a fixture rule
    page = await console.page("/ui/journal")
    rows = tagged(page, "journal-row")
    assert len(rows) == 2
    assert 'data-msisdn="+79000000007"' in rows[0]
    assert 'data-http-status="503"' in rows[0]
    assert 'data-msisdn="+79000000001"' in rows[1]
    assert 'data-http-status="201"' in rows[1]


async def test_journal_filters_by_number_and_by_messenger(
    aiohttp_client: AiohttpClient, db_path: Path
) -> None:
    console = await demo_console(aiohttp_client, db_path)
    await console.identify("+79000000001")
    await console.identify("+79000000002")
    by_number = await console.page("/ui/journal?msisdn=%2B79000000002")
    assert [attr(row, "data-msisdn") for row in tagged(by_number, "journal-row")] == [
        "+79000000002"
    ]
    assert "msisdn=%2B79000000002" in attr(by_number, "sse-connect")
    other = await console.page("/ui/journal?messenger_id=nobody")
    assert tagged(other, "journal-row") == []


async def test_journal_shows_every_kind_of_call_and_filters_by_endpoint(
    aiohttp_client: AiohttpClient, db_path: Path
) -> None:
    console = await demo_console(aiohttp_client, db_path)
    created = await (await console.identify("+79000000001")).json()
    auth = {"Authorization": f"Bearer {DEMO_KEY}"}
    read = await console.client.get(
        IR_PATH.format(operator="alfa") + f"/{created['id']}", headers=auth
    )
    assert read.status == 200
    routed = await console.client.get("/v1/routing/+79000000002", headers=auth)
    assert routed.status == 200
    page = await console.page("/ui/journal")
    rows = tagged(page, "journal-row")
    assert [attr(row, "data-endpoint") for row in rows] == [
        "routing.get",
        "identification.get",
        "identification.create",
    ]
    # The read links to the request it read.
    assert f'href="/ui/requests/{created["id"]}"' in page
    only_reads = await console.page("/ui/journal?endpoint=identification.get")
    [row] = tagged(only_reads, "journal-row")
    assert attr(row, "data-endpoint") == "identification.get"
    assert "endpoint=identification.get" in attr(only_reads, "sse-connect")
    assert 'value="identification.get" selected' in only_reads


async def test_journal_refuses_an_unknown_endpoint(
    aiohttp_client: AiohttpClient, db_path: Path
) -> None:
    console = await demo_console(aiohttp_client, db_path)
    page = await console.page("/ui/journal?endpoint=nope", status=422)
    assert "identification.create" in page


async def test_journal_refuses_a_number_that_is_not_e164(
    aiohttp_client: AiohttpClient, db_path: Path
) -> None:
    console = await demo_console(aiohttp_client, db_path)
    page = await console.page("/ui/journal?msisdn=8916", status=422)
    assert "E.164" in page


async def test_request_page_shows_status_deadline_rule_and_events(
    aiohttp_client: AiohttpClient, db_path: Path
) -> None:
    console = await demo_console(aiohttp_client, db_path)
    slow = await (await console.identify("+79000000009")).json()  # a rule answers in 5 min
    page = await console.page(f"/ui/requests/{slow['id']}")
    assert text_of(page, "request-status") == "pending"
    assert "magic-slow-answer" in page
    assert 'class="countdown"' in page
    assert "20 min 0 s left" in page
    await console.admin("POST", "/clock/advance", {"by": "PT5M"})
    page = await console.page(f"/ui/requests/{slow['id']}")
    assert text_of(page, "request-status") == "answered"
    [row] = tagged(page, "delivery-row")
    assert 'data-event-type="identification.answered"' in row
    assert 'data-state="pending"' in row


async def test_an_unknown_request_is_a_404_page(
    aiohttp_client: AiohttpClient, db_path: Path
) -> None:
    console = await demo_console(aiohttp_client, db_path)
    page = await console.page("/ui/requests/ir_nothing", status=404)
    assert "ir_nothing" in page


async def test_subscriber_search_finds_by_exact_number(
    aiohttp_client: AiohttpClient, db_path: Path
) -> None:
    console = await demo_console(aiohttp_client, db_path)
    empty = await console.page("/ui/subscribers")
    [search] = tagged(empty, "subscriber-search")
    assert 'name="msisdn"' in search
    assert 'id="subscriber-search"' in search
    assert '<label for="subscriber-search">' in empty
    found = await console.page("/ui/subscribers?msisdn=%2B79000000001")
    [row] = tagged(found, "subscriber-row")
    assert 'data-msisdn="+79000000001"' in row
    missing = await console.page("/ui/subscribers?msisdn=%2B79000000002")
    assert tagged(missing, "subscriber-row") == []
    assert "No subscriber has the number +79000000002" in missing
    wrong = await console.page("/ui/subscribers?msisdn=89161234567", status=422)
    assert "E.164" in wrong


async def test_subscriber_page_shows_the_record_and_its_actions(
    aiohttp_client: AiohttpClient, db_path: Path
) -> None:
    console = await demo_console(aiohttp_client, db_path)
    await console.admin(
        "POST",
        "/subscribers",
        {
            "subscribers": [
                {
                    "msisdn": "+79001112233",
                    "operator_id": "alfa",
                    "full_name": "Иван Петров",
                    "birth_date": "1990-01-02",
                    "passport": "4510 123456",
                }
            ]
        },
    )
    await console.identify("+79001112233")
    page = await console.page("/ui/subscribers/+79001112233")
    assert "Иван Петров" in page
    assert "1990-01-02" in page
    assert len(tagged(page, "terminate")) == 1
    [port] = tagged(page, "port")
    assert 'type="submit"' in port
    # The chooser offers every other operator.
    assert '<option value="beta">' in page
    assert '<option value="alfa">' not in page
    [recent] = tagged(page, "journal-row")
    assert 'data-msisdn="+79001112233"' in recent


async def test_an_unknown_subscriber_is_a_404_page(
    aiohttp_client: AiohttpClient, db_path: Path
) -> None:
    console = await demo_console(aiohttp_client, db_path)
    await console.page("/ui/subscribers/+79990000000", status=404)


async def test_messengers_page_lists_without_secrets(
    aiohttp_client: AiohttpClient, db_path: Path
) -> None:
    console = await demo_console(aiohttp_client, db_path)
    page = await console.page("/ui/messengers")
    assert 'data-messenger-id="demo"' in page
    assert "demo-messenger-key-not-secret" not in page
    assert "whsec_" not in page


async def test_deliveries_page_shows_each_event_with_its_state(
    aiohttp_client: AiohttpClient, db_path: Path
) -> None:
    console = await demo_console(aiohttp_client, db_path)
    await console.identify("+79000000001")
    page = await console.page("/ui/deliveries")
    [row] = tagged(page, "delivery-row")
    assert 'data-event-type="identification.answered"' in row
    assert 'data-state="pending"' in row
    # The messenger reads its feed: the feed channel delivered the event.
    await console.client.get(
        "/operators/alfa/v1/events",
        headers={"Authorization": "Bearer demo-messenger-key-not-secret"},
    )
    page = await console.page("/ui/deliveries")
    [row] = tagged(page, "delivery-row")
    assert 'data-state="delivered"' in row


async def test_rules_page_lists_rules_marking_the_fixtures(
    aiohttp_client: AiohttpClient, db_path: Path
) -> None:
    console = await demo_console(aiohttp_client, db_path)
    await console.admin("POST", "/rules", {"id": "runtime-one", "action": {"type": "never"}})
    page = await console.page("/ui/rules")
    rows = tagged(page, "rule-row")
    listed = await console.admin("GET", "/rules")
    assert [attr(r, "data-rule-id") for r in rows] == [r["id"] for r in listed["rules"]]
    assert [attr(r, "data-source") for r in rows][-1] == "runtime"
    assert 'data-rule-id="magic-never-answered" data-source="fixture"' in page
    assert page.count(">fixture</strong>") == len(rows) - 1


async def test_every_page_has_labelled_controls_and_real_buttons(
    aiohttp_client: AiohttpClient, db_path: Path
) -> None:
    console = await demo_console(aiohttp_client, db_path)
    for path in (
        "/ui/",
        "/ui/journal",
        "/ui/subscribers",
        "/ui/subscribers/+79000000001",
        "/ui/phones",
        "/ui/phones/+79000000011",
        "/ui/messengers",
        "/ui/rules",
    ):
        page = await console.page(path)
        # Every form control with an id has a <label for=...>.
        for control_id in _control_ids(page):
            assert f'<label for="{control_id}"' in page, (path, control_id)
        assert 'role="button"' not in page
        assert "onclick" not in page


def _control_ids(page: str) -> list[str]:
    return re.findall(
        r'<(?:input|select|textarea)(?![^>]*type="(?:hidden|radio)")[^>]*id="([^"]+)"', page
    )
