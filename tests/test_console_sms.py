"""SMS in the console: the phones' inboxes (live), SMS in flight, their status events."""

from __future__ import annotations

import html
import re
from pathlib import Path
from typing import Any

from tests.conftest import DEMO_KEY, AiohttpClient
from tests.console_support import Console, attr, demo_console, tagged

DELIVERED = "+79000000011"
"""A magic number: its SMS is delivered a few simulated seconds after it is sent."""
UNKNOWN = "+79000000012"
"""A magic number with no subscriber: its SMS is undelivered."""
PHONE_OFF = "+79000000013"
"""A magic number whose phone is off: its SMS stays sent until it expires."""


async def _send(console: Console, to: str, text: str) -> dict[str, Any]:
    resp = await console.client.post(
        "/sms/v1/messages",
        json={"to": to, "text": text},
        headers={"Authorization": f"Bearer {DEMO_KEY}"},
    )
    assert resp.status == 202, await resp.text()
    sent: dict[str, Any] = await resp.json()
    return sent


def _messages(page: str) -> list[str]:
    """The phone messages of a page or fragment, each as its element's HTML."""
    return re.findall(r'<li data-testid="phone-message".*?</li>', page, flags=re.DOTALL)


def _text(message: str) -> str:
    found = re.search(r'<p class="phone-text">(.*?)</p>', message, flags=re.DOTALL)
    assert found is not None
    return html.unescape(found.group(1))


def _counter(fragment: str, name: str) -> int:
    found = re.search(rf'<dd data-counter="{name}">(\d+)</dd>', fragment)
    assert found is not None, f"no counter {name}"
    return int(found.group(1))


# --- a phone's inbox --------------------------------------------------------------------


async def test_a_phone_shows_what_it_received_oldest_first_with_sender_and_time(
    aiohttp_client: AiohttpClient, db_path: Path
) -> None:
    console = await demo_console(aiohttp_client, db_path)
    await _send(console, DELIVERED, "Your code is 120001")
    await console.admin("POST", "/clock/advance", {"by": "PT1M"})
    await _send(console, DELIVERED, "Your code is 120002 <b>not bold</b>")
    await console.admin("POST", "/clock/advance", {"by": "PT1M"})
    inbox = (await console.admin("GET", f"/phones/{DELIVERED}/messages"))["messages"]
    assert len(inbox) == 2
    page = await console.page(f"/ui/phones/{DELIVERED}")
    shown = _messages(page)
    assert [_text(m) for m in shown] == [m["text"] for m in inbox]
    assert "<b>" not in shown[1]  # the text is escaped, never markup
    for message, received in zip(shown, inbox, strict=True):
        assert attr(message, "data-sms-id") == received["sms_id"]
        assert f'datetime="{received["received_at"]}"' in message
        assert f">{received['sender']}</strong>" in message
    assert "2 messages, the newest at the bottom." in page
    assert "msisdn=%2B79000000011" in attr(page, "sse-connect")


async def test_a_message_reaching_the_phone_appears_live(
    aiohttp_client: AiohttpClient, db_path: Path
) -> None:
    console = await demo_console(aiohttp_client, db_path)
    live = await console.stream(await console.page(f"/ui/phones/{DELIVERED}"))
    # Another phone's message first: had it refreshed this phone, the first update would
    # be an empty inbox.
    await _send(console, "+79000000018", "Not for this phone 777777")
    await console.admin("POST", "/clock/advance", {"by": "PT1M"})
    await _send(console, DELIVERED, "Your code is 424242")
    await console.admin("POST", "/clock/advance", {"by": "PT1M"})
    event = await live.until("phone")
    assert [_text(m) for m in _messages(event.data)] == ["Your code is 424242"]
    assert event.id is not None


async def test_a_reset_empties_the_phone_live(aiohttp_client: AiohttpClient, db_path: Path) -> None:
    console = await demo_console(aiohttp_client, db_path)
    await _send(console, DELIVERED, "Your code is 555000")
    await console.admin("POST", "/clock/advance", {"by": "PT1M"})
    page = await console.page(f"/ui/phones/{DELIVERED}")
    assert len(_messages(page)) == 1
    live = await console.stream(page)
    await console.admin("POST", "/reset")
    event = await live.until("phone")
    assert _messages(event.data) == []
    assert "No messages yet." in event.data


async def test_a_number_without_a_subscriber_has_an_empty_phone(
    aiohttp_client: AiohttpClient, db_path: Path
) -> None:
    console = await demo_console(aiohttp_client, db_path)
    await _send(console, UNKNOWN, "Your code is 101010")
    await console.admin("POST", "/clock/advance", {"by": "PT1M"})
    page = await console.page(f"/ui/phones/{UNKNOWN}")
    assert _messages(page) == []
    assert "No subscriber has this number" in page
    assert f'href="/ui/subscribers/{UNKNOWN}"' not in page


async def test_an_invalid_number_is_a_422_page(
    aiohttp_client: AiohttpClient, db_path: Path
) -> None:
    console = await demo_console(aiohttp_client, db_path)
    refused = await console.page("/ui/phones/89000000011", status=422)
    assert 'role="alert"' in refused
    assert (await console.client.get("/ui/stream/phones?msisdn=8900")).status == 422


async def test_the_phones_form_goes_to_the_phone_or_explains(
    aiohttp_client: AiohttpClient, db_path: Path
) -> None:
    console = await demo_console(aiohttp_client, db_path)
    form = await console.page("/ui/phones")
    assert 'action="/ui/phones"' in form
    assert '<label for="phone-number">' in form
    resp = await console.client.get("/ui/phones?msisdn=%2B79000000011", allow_redirects=False)
    assert resp.status == 303
    assert resp.headers["Location"] == f"/ui/phones/{DELIVERED}"
    bad = await console.page("/ui/phones?msisdn=8+900", status=422)
    assert 'aria-invalid="true"' in bad
    assert "E.164" in bad


async def test_every_page_links_to_the_phones_and_a_subscriber_to_its_phone(
    aiohttp_client: AiohttpClient, db_path: Path
) -> None:
    console = await demo_console(aiohttp_client, db_path)
    overview = await console.page("/ui/")
    assert '<a href="/ui/phones">Phones</a>' in overview
    phones = await console.page("/ui/phones")
    assert '<a href="/ui/phones" aria-current="page">Phones</a>' in phones
    subscriber = await console.page(f"/ui/subscribers/{DELIVERED}")
    assert f'href="/ui/phones/{DELIVERED}"' in subscriber
    phone = await console.page(f"/ui/phones/{DELIVERED}")
    assert f'href="/ui/subscribers/{DELIVERED}"' in phone


# --- SMS in flight ---------------------------------------------------------------------


async def test_sms_in_flight_are_counted_until_final_and_update_live(
    aiohttp_client: AiohttpClient, db_path: Path
) -> None:
    console = await demo_console(aiohttp_client, db_path)
    live = await console.stream(await console.page("/ui/"))
    await _send(console, DELIVERED, "Your code is 300001")
    await _send(console, PHONE_OFF, "Your code is 300002")
    event = await live.until("counters")
    while _counter(event.data, "sms_in_flight") != 2:
        event = await live.until("counters")
    # Delivered a few seconds later; the switched-off phone's stays sent.
    await console.admin("POST", "/clock/advance", {"by": "PT1M"})
    event = await live.until("counters")
    while _counter(event.data, "sms_in_flight") != 1:
        event = await live.until("counters")
    # ... until it expires (an hour, the default ttl).
    await console.admin("POST", "/clock/advance", {"by": "PT2H"})
    event = await live.until("counters")
    while _counter(event.data, "sms_in_flight") != 0:
        event = await live.until("counters")
    page = await console.page("/ui/")
    assert _counter(page, "sms_in_flight") == 0


async def test_sms_in_flight_follow_status_changes_that_announce_no_event(
    aiohttp_client: AiohttpClient, db_path: Path
) -> None:
    # On a running clock, with the status events held back by a notification rule, nothing
    # but the gateway's own notification says that a message moved on.
    console = await demo_console(aiohttp_client, db_path)
    await console.admin(
        "POST",
        "/rules",
        {
            "id": "late-sms-events",
            "match": {"endpoint": "event.notify", "event_type": "sms.status_changed"},
            "action": {"type": "notify_late", "by": "PT23H"},
        },
    )
    await console.admin("PUT", "/clock", {"mode": "scaled", "scale": 100})
    live = await console.stream(await console.page("/ui/"))
    await _send(console, DELIVERED, "Your code is 300004")
    event = await live.until("counters")
    while _counter(event.data, "sms_in_flight") != 0:
        event = await live.until("counters")
    inbox = (await console.admin("GET", f"/phones/{DELIVERED}/messages"))["messages"]
    assert [m["text"] for m in inbox] == ["Your code is 300004"]


async def test_a_rejected_sms_leaves_nothing_in_flight(
    aiohttp_client: AiohttpClient, db_path: Path
) -> None:
    console = await demo_console(aiohttp_client, db_path)
    await _send(console, "+79000000015", "Your code is 300003")  # rejected, blocked
    assert _counter(await console.page("/ui/"), "sms_in_flight") == 1
    await console.admin("POST", "/clock/advance", {"by": "PT10S"})
    assert _counter(await console.page("/ui/"), "sms_in_flight") == 0


# --- sms.status_changed on the deliveries page -----------------------------------------


async def test_sms_status_events_are_shown_with_their_delivery(
    aiohttp_client: AiohttpClient, db_path: Path
) -> None:
    console = await demo_console(aiohttp_client, db_path)
    live = await console.stream(await console.page("/ui/deliveries"))
    sent = await _send(console, DELIVERED, "Your code is 600600")
    await console.admin("POST", "/clock/advance", {"by": "PT1M"})
    event = await live.until("deliveries")
    while len(tagged(event.data, "delivery-row")) < 2:
        event = await live.until("deliveries")
    rows = tagged(event.data, "delivery-row")
    assert [attr(r, "data-event-type") for r in rows] == ["sms.status_changed"] * 2
    assert [attr(r, "data-state") for r in rows] == ["pending", "pending"]
    assert "demo via the SMS gateway" in event.data
    assert "at @sms" not in event.data
    assert "600600" not in event.data  # the text is never part of an event
    # The messenger reads its SMS feed: both events are delivered.
    feed = await console.client.get(
        "/sms/v1/events", headers={"Authorization": f"Bearer {DEMO_KEY}"}
    )
    statuses = [e["data"]["status"] for e in (await feed.json())["events"]]
    assert statuses == ["sent", "delivered"]
    assert {e["data"]["id"] for e in (await feed.json())["events"]} == {sent["id"]}
    page = await console.page("/ui/deliveries")
    rows = tagged(page, "delivery-row")
    assert [attr(r, "data-state") for r in rows] == ["delivered", "delivered"]
    assert [attr(r, "data-event-type") for r in rows] == ["sms.status_changed"] * 2
