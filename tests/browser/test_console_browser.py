"""The console in a real browser: live updates without reloads, keyboard use, no errors."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import requests
from playwright.sync_api import Page, expect

from operator_sim.testing import ThreadedOperatorSim
from tests.browser.conftest import Problems


def _shown(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _mark_page(page: Page) -> None:
    """Leave a mark in the page's JavaScript state; a reload would erase it."""
    page.evaluate("window.__notReloaded = true")


def _not_reloaded(page: Page) -> bool:
    return bool(page.evaluate("window.__notReloaded === true"))


def _live(page: Page) -> None:
    """Wait until the page says its live stream is open."""
    expect(page.locator("#live-status")).to_have_attribute("data-live", "open")


def _identify(sim: ThreadedOperatorSim, msisdn: str) -> requests.Response:
    return requests.post(
        f"{sim.base_url}/operators/alfa/v1/identification-requests",
        json={"msisdn": msisdn},
        headers=sim.messenger_headers(),
        timeout=10,
    )


def test_a_post_through_the_api_appears_in_the_journal(
    console: Page, opsim_server: ThreadedOperatorSim, problems: Problems
) -> None:
    console.get_by_role("link", name="Journal").click()
    expect(console.get_by_role("heading", name="Journal")).to_be_visible()
    _mark_page(console)
    rows = console.get_by_test_id("journal-row")
    expect(rows).to_have_count(0)
    # The stream may open a moment after the page: the position in its URL covers that.
    assert _identify(opsim_server, "+79000000007").status_code == 503
    assert _identify(opsim_server, "+79000000001").status_code == 201
    expect(rows).to_have_count(2)
    expect(rows.first).to_have_attribute("data-msisdn", "+79000000001")
    expect(rows.first).to_have_attribute("data-http-status", "201")
    expect(rows.nth(1)).to_have_attribute("data-http-status", "503")
    assert _not_reloaded(console)
    assert problems.seen == []


def test_the_advance_buttons_move_the_clock(
    console: Page, opsim_server: ThreadedOperatorSim, problems: Problems
) -> None:
    now = console.get_by_test_id("clock-now")
    start = opsim_server.clock().now
    expect(now).to_have_text(_shown(start))
    _mark_page(console)
    console.get_by_test_id("clock-advance").click()
    expect(now).to_have_text(_shown(start + timedelta(minutes=20)))
    console.get_by_test_id("clock-advance-day").click()
    expect(now).to_have_text(_shown(start + timedelta(minutes=20, hours=24)))
    assert opsim_server.clock().now == start + timedelta(minutes=20, hours=24)
    # An advance through the admin API reaches the page too.
    opsim_server.advance("PT1H")
    expect(now).to_have_text(_shown(start + timedelta(minutes=20, hours=25)))
    assert _not_reloaded(console)
    assert problems.seen == []


def test_the_clock_buttons_work_from_the_keyboard_alone(
    console: Page, opsim_server: ThreadedOperatorSim
) -> None:
    now = console.get_by_test_id("clock-now")
    start = opsim_server.clock().now
    focused = ""
    for _ in range(40):  # Tab through the header to the first clock button
        console.keyboard.press("Tab")
        focused = console.evaluate("document.activeElement.dataset.testid || ''")
        if focused == "clock-advance":
            break
    assert focused == "clock-advance"
    console.keyboard.press("Enter")
    expect(now).to_have_text(_shown(start + timedelta(minutes=20)))
    console.keyboard.press("Tab")
    assert console.evaluate("document.activeElement.dataset.testid") == "clock-advance-day"
    console.keyboard.press("Space")
    expect(now).to_have_text(_shown(start + timedelta(minutes=20, hours=24)))


def test_a_request_page_follows_its_status(
    console: Page, opsim_server: ThreadedOperatorSim, problems: Problems
) -> None:
    slow = opsim_server.identify("+79000000009", "alfa")  # answered after 5 minutes
    console.goto(f"{opsim_server.base_url}/ui/requests/{slow.id}")
    status = console.get_by_test_id("request-status")
    expect(status).to_have_text("pending")
    expect(console.locator(".countdown")).to_have_text(re.compile(r"^\(20 min 0 s left\)$"))
    _mark_page(console)
    opsim_server.advance("PT5M")
    expect(status).to_have_text("answered")
    expect(console.get_by_test_id("delivery-row")).to_have_attribute(
        "data-event-type", "identification.answered"
    )
    assert _not_reloaded(console)
    assert problems.seen == []


def test_terminate_produces_a_delivery_row(
    console: Page, opsim_server: ThreadedOperatorSim, problems: Problems
) -> None:
    answered = opsim_server.identify("+79000000001", "alfa")
    code = requests.post(
        f"{opsim_server.base_url}/operators/alfa/v1/identification-codes",
        json={"request_id": answered.id, "code": "browser-code-0001"},
        headers=opsim_server.messenger_headers(),
        timeout=10,
    )
    assert code.status_code == 201
    # One tab watches the deliveries while another ends the contract.
    console.get_by_role("link", name="Deliveries").click()
    rows = console.get_by_test_id("delivery-row")
    expect(rows).to_have_count(1)
    _mark_page(console)
    other = console.context.new_page()
    other.on("dialog", lambda dialog: dialog.accept())
    other.goto(f"{opsim_server.base_url}/ui/subscribers")
    other.get_by_test_id("subscriber-search").fill("+79000000001")
    other.get_by_test_id("subscriber-search").press("Enter")
    other.get_by_test_id("subscriber-row").get_by_role("link").click()
    other.get_by_test_id("terminate").click()
    expect(other.get_by_role("status").filter(has_text="Contract ended")).to_be_visible()
    expect(rows).to_have_count(2)
    expect(rows.first).to_have_attribute("data-event-type", "subscriber.contract_terminated")
    expect(rows.first).to_have_attribute("data-state", "pending")
    # The messenger reads its feed; the next change shows the event delivered.
    requests.get(
        f"{opsim_server.base_url}/operators/alfa/v1/events",
        headers=opsim_server.messenger_headers(),
        timeout=10,
    )
    opsim_server.advance("PT1M")
    expect(rows.first).to_have_attribute("data-state", "delivered")
    assert _not_reloaded(console)
    assert problems.seen == []


def test_adding_and_deleting_rules(
    console: Page, opsim_server: ThreadedOperatorSim, problems: Problems
) -> None:
    console.get_by_role("link", name="Rules").click()
    _mark_page(console)
    form = console.locator("#rule-form")
    form.get_by_label("Id").fill("never-0002")
    form.get_by_label("Number, exact or * glob").fill("+79000000002")
    form.get_by_label("Type").select_option("never")
    form.get_by_role("button", name="Add rule").click()
    added = console.locator('[data-testid="rule-row"][data-rule-id="never-0002"]')
    expect(added).to_be_visible()
    assert "never-0002" in [r.id for r in opsim_server.rules()]
    console.get_by_label("The body of POST /admin/v1/rules").fill(
        '{"id": "busy", "match": {"msisdn": "+7916*"}, '
        '"action": {"type": "http_error", "status": 503}}'
    )
    console.get_by_role("button", name="Add rule from JSON").click()
    expect(console.locator('[data-rule-id="busy"]')).to_be_visible()
    # A rule added through the admin API appears too, and its hits count live.
    opsim_server.add_rule({"id": "from-api", "action": {"type": "never"}})
    from_api = console.locator('[data-rule-id="from-api"]')
    expect(from_api).to_be_visible()
    _identify(opsim_server, "+79000000002")
    expect(added.locator("[data-hits]")).to_have_text("1")
    added.get_by_role("button", name="Delete").click()
    expect(added).to_have_count(0)
    assert "never-0002" not in [r.id for r in opsim_server.rules()]
    opsim_server.delete_rule("from-api")
    expect(from_api).to_have_count(0)
    assert _not_reloaded(console)
    assert problems.seen == []


def test_a_bad_rule_is_explained_where_it_was_typed(
    console: Page, opsim_server: ThreadedOperatorSim, problems: Problems
) -> None:
    console.get_by_role("link", name="Rules").click()
    form = console.locator("#rule-form")
    form.get_by_label("Id").fill("bad-status")
    form.get_by_label("Type").select_option("http_error")
    form.get_by_label("HTTP status, for http_error").fill("200")
    form.get_by_role("button", name="Add rule").click()
    expect(console.get_by_role("alert")).to_contain_text("status")
    assert "bad-status" not in [r.id for r in opsim_server.rules()]
    # The browser itself logs the 422 response; the page raised nothing.
    assert [p for p in problems.seen if "status of 422" not in p] == []


def test_every_page_loads_without_errors(
    console: Page, opsim_server: ThreadedOperatorSim, problems: Problems
) -> None:
    answered = opsim_server.identify("+79000000001", "alfa")
    base = opsim_server.base_url
    for path in (
        "/ui/",
        "/ui/journal",
        f"/ui/requests/{answered.id}",
        "/ui/subscribers?msisdn=%2B79000000001",
        "/ui/subscribers/+79000000001",
        "/ui/subscribers?operator_id=alfa",
        "/ui/phones",
        "/ui/phones/+79000000011",
        "/ui/messengers",
        "/ui/deliveries",
        "/ui/rules",
    ):
        console.goto(base + path)
        expect(console.get_by_test_id("clock-now")).to_be_visible()
        _live(console)
    console.goto(f"{base}/ui/messengers")
    console.get_by_label("Id").fill("acme")
    console.get_by_label("Name").fill("Acme")
    console.get_by_role("button", name="Register").click()
    expect(console.locator('[data-secret="api_key"]')).to_have_text(re.compile("^osk_"))
    expect(console.locator('[data-messenger-id="acme"]')).to_be_visible()
    assert problems.seen == []


def test_a_wrong_token_is_refused_on_the_sign_in_page(
    page: Page, opsim_server: ThreadedOperatorSim, problems: Problems
) -> None:
    page.goto(f"{opsim_server.base_url}/ui/rules")
    page.get_by_label("Admin token").fill("not-the-token")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_have_text("That is not the admin token.")
    page.get_by_label("Admin token").fill(opsim_server.admin_token)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Fault rules")).to_be_visible()
    # The 401 of the refused attempt is the one error the browser reports.
    assert [p for p in problems.seen if "401" not in p] == []


def test_an_sms_sent_through_the_api_appears_on_the_phone(
    console: Page, opsim_server: ThreadedOperatorSim, problems: Problems
) -> None:
    console.get_by_role("link", name="Phones").click()
    console.get_by_label("Number (E.164)").fill("+79000000011")
    console.get_by_label("Number (E.164)").press("Enter")
    expect(console.get_by_role("heading", name="Phone +79000000011")).to_be_visible()
    _live(console)
    _mark_page(console)
    messages = console.get_by_test_id("phone-message")
    expect(messages).to_have_count(0)
    sent = requests.post(
        f"{opsim_server.base_url}/sms/v1/messages",
        json={"to": "+79000000011", "text": "Your code is 271828"},
        headers=opsim_server.messenger_headers(),
        timeout=10,
    )
    assert sent.status_code == 202
    opsim_server.advance("PT1M")  # sent after a second, on the phone a few seconds later
    expect(messages).to_have_count(1)
    expect(messages).to_contain_text("Your code is 271828")
    [received] = opsim_server.phone_messages("+79000000011")
    expect(messages.locator("time")).to_have_text(_shown(received.received_at))
    opsim_server.send_sms("+79000000011", "Your code is 314159")
    opsim_server.advance("PT1M")
    expect(messages).to_have_count(2)
    expect(messages.last).to_contain_text("Your code is 314159")  # the newest at the bottom
    assert _not_reloaded(console)
    assert problems.seen == []


def test_the_sim_swap_button_records_a_swap(
    console: Page, opsim_server: ThreadedOperatorSim, problems: Problems
) -> None:
    console.goto(f"{opsim_server.base_url}/ui/subscribers/+79000000011")
    now = opsim_server.clock().now
    console.get_by_test_id("sim-swap").click()
    expect(console.get_by_role("status").filter(has_text="SIM swap recorded now")).to_be_visible()
    latest = console.locator("[data-sim-change]")
    expect(latest).to_have_text(_shown(now))
    checked = requests.post(
        f"{opsim_server.base_url}/operators/alfa/sim-swap/v1/check",
        json={"phoneNumber": "+79000000011", "maxAge": 1},
        headers=opsim_server.messenger_headers(),
        timeout=10,
    )
    assert checked.json() == {"swapped": True}
    # An earlier swap, typed into the time field: the latest one stays.
    console.get_by_label("SIM changed at (UTC, simulation time; empty: now)").fill(
        (now - timedelta(days=2)).strftime("%Y-%m-%dT%H:%M:%S")
    )
    console.get_by_test_id("sim-swap").click()
    expect(
        console.get_by_role("status").filter(has_text=f"the latest SIM change is {_shown(now)}")
    ).to_be_visible()
    assert problems.seen == []


def test_a_key_rotation_shows_the_new_key_once(
    console: Page, opsim_server: ThreadedOperatorSim, problems: Problems
) -> None:
    acme = opsim_server.register_messenger("acme", name="Acme")
    console.get_by_role("link", name="Messengers").click()
    row = console.locator('[data-messenger-id="acme"]')
    row.get_by_role("button", name="Rotate API key of acme").click()
    shown = console.locator('[data-secret="api_key"]')
    expect(shown).to_have_text(re.compile("^osk_"))
    expect(console.get_by_role("status").filter(has_text="not shown again")).to_be_visible()
    new_key = shown.inner_text()

    def routing(key: str) -> int:
        return requests.get(
            f"{opsim_server.base_url}/v1/routing/+79000000001",
            headers={"Authorization": f"Bearer {key}"},
            timeout=10,
        ).status_code

    assert routing(new_key) == 200
    assert routing(acme.api_key) == 401
    # With a day's grace the key it replaces keeps working.
    row.get_by_label("The current one keeps working").select_option(label="1 day more")
    row.get_by_role("button", name="Rotate API key of acme").click()
    expect(shown).not_to_have_text(new_key)
    expect(console.get_by_role("status").filter(has_text="keeps working until")).to_be_visible()
    newest = shown.inner_text()
    assert routing(newest) == 200
    assert routing(new_key) == 200
    console.reload()
    expect(console.locator('[data-messenger-id="acme"]')).to_be_visible()
    expect(console.locator("[data-secret]")).to_have_count(0)
    assert newest not in console.content()
    assert problems.seen == []


def test_paging_through_the_subscriber_list(
    console: Page, opsim_server: ThreadedOperatorSim, problems: Problems
) -> None:
    numbers = [f"+7916555{i:04d}" for i in range(120)]
    opsim_server.add_subscribers(*({"msisdn": m, "operator_id": "beta"} for m in numbers))
    console.get_by_role("link", name="Subscribers").click()
    console.get_by_label("Operator").select_option("beta")
    console.get_by_label("Number starts with").fill("+7916555")
    console.get_by_role("button", name="Show").click()
    rows = console.get_by_test_id("subscriber-row")
    expect(rows).to_have_count(50)
    expect(rows.first).to_have_attribute("data-msisdn", numbers[0])
    expect(rows.last).to_have_attribute("data-msisdn", numbers[49])
    console.get_by_role("link", name="Next page").click()
    expect(rows.first).to_have_attribute("data-msisdn", numbers[50])
    expect(rows).to_have_count(50)
    console.get_by_role("link", name="Next page").click()
    expect(rows).to_have_count(20)
    expect(rows.last).to_have_attribute("data-msisdn", numbers[-1])
    expect(console.get_by_role("link", name="Next page")).to_have_count(0)
    expect(console.get_by_text("Last page")).to_be_visible()
    console.get_by_role("link", name="First page").click()
    expect(rows.first).to_have_attribute("data-msisdn", numbers[0])
    expect(console.get_by_label("Number starts with")).to_have_value("+7916555")
    rows.first.get_by_role("link").click()
    expect(console.get_by_role("heading", name=f"Subscriber {numbers[0]}")).to_be_visible()
    assert problems.seen == []
