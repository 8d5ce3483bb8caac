"""The console's decisions without a server: hosts, origins, sessions, the hub, forms."""

from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path

import pytest

from operator_sim.console.backend import Change, classify
from operator_sim.console.forms import (
    rotation_form,
    rule_form,
    rule_json,
    sim_swap_form,
    subscriber_listing,
)
from operator_sim.console.hub import Hub
from operator_sim.console.live import view_for
from operator_sim.console.render import remaining
from operator_sim.console.security import (
    Sessions,
    console_allowed,
    cross_site,
    demo_sign_in_allowed,
    is_loopback_host,
    is_loopback_peer,
    safe_next,
)
from operator_sim.errors import ValidationFailed
from operator_sim.server.outbox import feed_key
from operator_sim.server.sms import phone_key
from operator_sim.server.waiters import (
    CLOCK_CHANGED,
    JOURNAL_CHANGED,
    RULES_CHANGED,
    SMS_CHANGED,
    Waiters,
)
from tests.conftest import AiohttpClient
from tests.console_support import demo_console

STATIC = Path(__file__).resolve().parent.parent / "operator_sim" / "console" / "static"

# htmx 2.0.x and its SSE extension 2.2.x, from the npm registry (`npm pack htmx.org@2.0.11
# htmx-ext-sse@2.2.4`, dist/htmx.min.js and dist/sse.min.js). A new version is a deliberate
# change of these pins; htmx 4 speaks another SSE syntax.
VENDORED = {
    "htmx.min.js": "d6fdc75f204e6bdefa99b69bf1e6d4ac69b8a364f77929f45c13476b4000f717",
    "htmx-ext-sse.min.js": "98a46496de0c3605fbffdce9167ba427bdd9553184f83f149c261891a92c0136",
}


@pytest.mark.parametrize(("name", "digest"), sorted(VENDORED.items()))
def test_vendored_htmx_files_are_the_pinned_ones(name: str, digest: str) -> None:
    assert hashlib.sha256((STATIC / name).read_bytes()).hexdigest() == digest


def test_vendored_htmx_is_version_2() -> None:
    assert b'version:"2.0.11"' in (STATIC / "htmx.min.js").read_bytes()
    assert b'htmx.defineExtension("sse"' in (STATIC / "htmx-ext-sse.min.js").read_bytes()


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("localhost", True),
        ("LOCALHOST:8080", True),
        ("127.0.0.1", True),
        ("127.1.2.3:80", True),
        ("[::1]", True),
        ("[::1]:8080", True),
        ("::1", False),  # an IPv6 Host is bracketed (RFC 3986)
        ("10.0.0.5:8080", False),
        ("rebound.example", False),
        ("localhost.rebound.example", False),
        ("127.0.0.1.rebound.example:80", False),
        ("[::ffff:10.0.0.1]:80", False),
        ("", False),
        (None, False),
    ],
)
def test_loopback_hosts(host: str | None, loopback: bool) -> None:
    assert is_loopback_host(host) is loopback


def test_loopback_peers() -> None:
    assert is_loopback_peer("127.0.0.1", unix_socket=False)
    assert is_loopback_peer("::1", unix_socket=False)
    assert not is_loopback_peer("192.0.2.7", unix_socket=False)
    assert not is_loopback_peer(None, unix_socket=False)
    assert is_loopback_peer(None, unix_socket=True)


def test_demo_sign_in_needs_all_four_conditions() -> None:
    ok = {
        "admin_is_demo": True,
        "server_loopback": True,
        "host": "127.0.0.1:8080",
        "peer_loopback": True,
    }
    assert demo_sign_in_allowed(**ok)  # type: ignore[arg-type]
    for key, value in (
        ("admin_is_demo", False),
        ("server_loopback", False),
        ("host", "rebound.example:8080"),
        ("peer_loopback", False),
    ):
        assert not demo_sign_in_allowed(**{**ok, key: value})  # type: ignore[arg-type]


def test_the_console_follows_the_off_loopback_rule() -> None:
    assert console_allowed(admin_is_demo=True, server_loopback=True)
    assert console_allowed(admin_is_demo=False, server_loopback=False)
    assert not console_allowed(admin_is_demo=True, server_loopback=False)


def test_cross_site_requests_are_told_apart() -> None:
    own = {"scheme": "http", "host": "127.0.0.1:8080"}
    assert not cross_site(origin=None, fetch_site=None, **own)
    assert not cross_site(origin="http://127.0.0.1:8080", fetch_site="same-origin", **own)
    assert cross_site(origin="http://rebound.example", fetch_site=None, **own)
    assert cross_site(origin="null", fetch_site=None, **own)
    assert cross_site(origin=None, fetch_site="same-site", **own)
    assert cross_site(origin=None, fetch_site="cross-site", **own)


@pytest.mark.parametrize(
    ("target", "goes"),
    [
        ("/ui/rules", "/ui/rules"),
        ("/ui/journal?msisdn=%2B7916", "/ui/journal?msisdn=%2B7916"),
        ("https://elsewhere.example/ui/", "/ui/"),
        ("//elsewhere.example/ui/", "/ui/"),
        ("/ui/\\elsewhere", "/ui/"),
        ("/admin/v1/reset", "/ui/"),
        (None, "/ui/"),
    ],
)
def test_sign_in_only_goes_back_into_the_console(target: str | None, goes: str) -> None:
    assert safe_next(target) == goes


def test_sessions_keep_no_cookie_in_clear_and_check_csrf() -> None:
    sessions = Sessions(cap=2)
    cookie, session = sessions.create(demo=False)
    assert sessions.find(cookie) is session
    assert cookie not in repr(sessions.__dict__)
    assert Sessions.csrf_ok(session, session.csrf)
    assert not Sessions.csrf_ok(session, session.csrf + "x")
    assert not Sessions.csrf_ok(session, None)
    assert sessions.find("made-up") is None
    sessions.create(demo=False)
    sessions.create(demo=False)
    assert sessions.find(cookie) is None  # the oldest went beyond the cap
    other, _ = sessions.create(demo=True)
    sessions.end(other)
    assert sessions.find(other) is None


def test_waiter_keys_become_changes() -> None:
    assert classify(CLOCK_CHANGED) == Change("clock")
    assert classify(RULES_CHANGED) == Change("rules")
    assert classify(JOURNAL_CHANGED) == Change("journal")
    assert classify("ir_01ABC") == Change("request", request_id="ir_01ABC")
    assert classify(feed_key("demo", "alfa")) == Change(
        "feed", messenger_id="demo", operator_id="alfa"
    )
    assert classify(SMS_CHANGED) == Change("sms")
    assert classify(phone_key("+79000000011")) == Change("phone", msisdn="+79000000011")
    assert classify("something:else") is None


def test_waiters_tell_their_listeners_every_key_until_unsubscribed() -> None:
    waiters, heard = Waiters(), list[str]()
    unsubscribe = waiters.subscribe(heard.append)
    waiters.notify("a")
    waiters.notify("b")
    unsubscribe()
    waiters.notify("c")
    assert heard == ["a", "b"]


def test_hub_marks_only_the_streams_a_change_concerns() -> None:
    hub = Hub()
    journal = hub.open(view_for("journal", {}).wants)
    rules = hub.open(view_for("rules", {}).wants)
    hub.note(JOURNAL_CHANGED)
    assert journal.take() == {"journal"}
    assert rules.take() == {"rules"}  # hit counts change with the journal
    hub.note(feed_key("m", "o"))
    assert journal.take() == set()
    assert rules.take() == set()
    hub.discard(rules)
    hub.note(RULES_CHANGED)
    assert rules.take() == set()
    assert len(hub) == 1


def test_hub_tells_what_a_position_missed() -> None:
    hub = Hub(memory=3)
    view = view_for("journal", {})
    start = hub.position
    assert hub.missed(start, view.wants, view.events) == set()
    hub.note(CLOCK_CHANGED)
    assert hub.missed(start, view.wants, view.events) == {"clock"}
    middle = hub.position
    hub.note(JOURNAL_CHANGED)
    assert hub.missed(middle, view.wants, view.events) == {"journal"}
    assert hub.missed(start, view.wants, view.events) == {"clock", "journal"}
    hub.note(RULES_CHANGED)
    hub.note(RULES_CHANGED)
    # `start` is older than the hub remembers: everything is sent again.
    assert hub.missed(start, view.wants, view.events) == {"clock", "journal"}
    for unknown in (None, "", "garbage", "0000dead-1", f"{hub.boot}-999"):
        assert hub.missed(unknown, view.wants, view.events) == {"clock", "journal"}


def test_a_change_noted_by_its_key_is_worked_out_when_needed() -> None:
    hub = Hub()
    view = view_for("journal", {})
    before = hub.position
    hub.note(JOURNAL_CHANGED)  # no stream open
    hub.note("not a key the console shows")
    assert hub.missed(before, view.wants, view.events) == {"journal"}
    after = hub.position
    assert hub.missed(after, view.wants, view.events) == set()
    journal = hub.open(view.wants)
    rules = hub.open(view_for("rules", {}).wants)
    hub.note(CLOCK_CHANGED)
    hub.note("not a key the console shows")
    assert journal.take() == {"clock"}
    assert rules.take() == {"clock"}
    hub.note("not a key the console shows")
    assert journal.take() == set()  # woken, but nothing of its page changed
    assert hub.missed(after, view.wants, view.events) == {"clock"}


async def test_a_stream_opened_after_an_unwatched_change_gets_it(
    aiohttp_client: AiohttpClient, db_path: Path
) -> None:
    console = await demo_console(aiohttp_client, db_path)
    page = await console.page("/ui/journal")
    # No stream is open yet: the hub does not remember this call, and the stream that
    # resumes from the page's position must get the journal anyway.
    await console.identify("+79000000001")
    stream = await console.stream(page)
    journal = await stream.until("journal")
    assert 'data-msisdn="+79000000001"' in journal.data


def test_the_request_view_takes_only_its_own_request() -> None:
    view = view_for("request", {"id": "ir_one"})
    assert view.wants(Change("request", request_id="ir_one")) == ["request"]
    assert view.wants(Change("request", request_id="ir_two")) == []
    assert view.wants(Change("clock")) == ["clock", "request"]


def test_the_phone_view_takes_only_its_own_phone() -> None:
    view = view_for("phones", {"msisdn": "+79000000011"})
    assert view.wants(Change("phone", msisdn="+79000000011")) == ["phone"]
    assert view.wants(Change("phone", msisdn="+79000000012")) == []
    assert view.wants(Change("sms")) == []
    assert view.wants(Change("reset")) == ["clock", "phone"]
    assert view_for("phones", {}).events == {"clock"}
    with pytest.raises(ValidationFailed):
        view_for("phones", {"msisdn": "89000000011"})


def test_the_counters_follow_sms() -> None:
    assert view_for("overview", {}).wants(Change("sms")) == ["counters"]


def test_a_sim_swap_time_without_a_zone_is_utc() -> None:
    at = sim_swap_form({"at": "2026-03-01T12:30"}).at
    assert at is not None
    assert at.isoformat() == "2026-03-01T12:30:00+00:00"
    zoned = sim_swap_form({"at": "2026-03-01T12:30:00+03:00"}).at
    assert zoned is not None
    assert zoned.isoformat() == "2026-03-01T09:30:00+00:00"  # the zone given is kept
    assert sim_swap_form({"at": " "}).at is None
    with pytest.raises(ValidationFailed, match="at"):
        sim_swap_form({"at": "2026-03-01"})


def test_a_rotation_grace_is_a_duration_or_nothing() -> None:
    assert rotation_form({}).grace is None
    assert rotation_form({"grace": ""}).grace is None
    grace = rotation_form({"grace": "P1D"}).grace
    assert grace is not None
    assert grace.total_seconds() == 86_400
    seconds = rotation_form({"grace": "3600"}).grace
    assert seconds is not None
    assert seconds.total_seconds() == 3600
    with pytest.raises(ValidationFailed, match="P30D"):
        rotation_form({"grace": "P31D"})


def test_the_subscriber_listing_checks_each_filter() -> None:
    listing = subscriber_listing(
        {"operator_id": "alfa", "status": "active", "msisdn_prefix": "+7916", "after": ""}
    )
    assert listing.selection.operator_id == "alfa"
    assert listing.selection.status == "active"
    assert listing.selection.msisdn_prefix == "+7916"
    assert listing.selection.data_complete is None
    assert listing.after is None
    assert listing.params == {"operator_id": "alfa", "status": "active", "msisdn_prefix": "+7916"}
    assert subscriber_listing({"data_complete": "false"}).selection.data_complete is False
    with pytest.raises(ValidationFailed) as refused:
        subscriber_listing({"msisdn_prefix": "7916", "after": "+7", "status": "x"})
    message = str(refused.value)
    assert "msisdn_prefix:" in message
    assert "after:" in message
    assert "status:" in message


def test_rule_form_builds_the_api_body_of_the_chosen_action() -> None:
    rule = rule_form(
        {
            "id": "late-alfa",
            "action": "late",
            "late_by": "PT10M",
            "result": "present",
            "status": "503",  # another action's field: ignored
            "match_operator_id": "alfa",
        }
    )
    assert rule.model_dump(mode="json", exclude_none=True)["action"] == {
        "type": "late",
        "by": "PT10M",
        "result": "present",
    }
    assert rule.match.operator_id == "alfa"
    seconds = rule_form({"id": "slow", "action": "answer", "delay": "90"})
    assert seconds.model_dump(mode="json")["action"]["delay"] == "PT1M30S"


def test_rule_form_and_json_refuse_what_the_api_refuses() -> None:
    with pytest.raises(ValidationFailed, match="status"):
        rule_form({"id": "x", "action": "http_error", "status": "abc"})
    with pytest.raises(ValidationFailed, match="id"):
        rule_form({"id": "Bad Id", "action": "never"})
    with pytest.raises(ValidationFailed):
        rule_json('{"id": "x", "action": {"type": "never"}, "times": "2"}')


def test_countdown_text() -> None:
    assert remaining(20 * 60 * 1000) == "20 min 0 s left"
    assert remaining(3_723_000) == "1 h 2 min 3 s left"
    assert remaining(-5000) == "passed 5 s ago"


async def test_a_closed_stream_stops_resting_at_once() -> None:
    stream = Hub().open(lambda change: ["clock"])
    resting = asyncio.create_task(stream.rest(60))
    stream.close()
    async with asyncio.timeout(5):
        await resting
    assert stream.closed
