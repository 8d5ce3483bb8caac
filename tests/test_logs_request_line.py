"""The line written per HTTP request, and the logging chain's fast paths.

On the real processor chain: the request line's keys, order and value types; phone numbers
masked in it (the fast path the middleware takes, and the clean-string cache); the JSON
renderer's bytes against ``json.dumps``; the timestamp; reconfiguring loggers that were
already used; the console renderer on a terminal; stdlib logging through the same chain.
"""

from __future__ import annotations

import io
import json
import logging
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import structlog
from hypothesis import given, settings
from hypothesis import strategies as st

from operator_sim import logs
from operator_sim.logs import (
    CURRENT_REQUEST_ID,
    JSONLineRenderer,
    configure_logging,
    log_fields,
    mask_phone_numbers,
    mask_text,
)
from tests.conftest import Sim

TIMESTAMP_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")
REQUEST_KEYS = [
    "request_id",
    "method",
    "route",
    "status",
    "duration_ms",
    "messenger_id",
    "event",
    "level",
    "timestamp",
]


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    """Tests here configure logging onto streams they close: leave none of it behind."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    structlog.reset_defaults()
    root.handlers, root.level = handlers, level


@pytest.fixture
def log_stream() -> Iterator[io.StringIO]:
    """The production chain at the default level, into a buffer."""
    stream = io.StringIO()
    configure_logging("info", "json", stream)
    yield stream
    structlog.reset_defaults()


def _raw_lines(stream: io.StringIO, request_id: str) -> list[str]:
    return [
        line
        for line in stream.getvalue().splitlines()
        if json.loads(line).get("request_id") == request_id
    ]


# --- the request line on a real server ----------------------------------------------------


async def test_request_line_keys_order_and_types(sim: Sim, log_stream: io.StringIO) -> None:
    before = datetime.now(UTC)
    await sim.identify_ok("+79000000001", headers={"X-Request-Id": "trace-fields"})
    raw = _raw_lines(log_stream, "trace-fields")
    assert len(raw) == 1
    line = json.loads(raw[0])
    assert list(line) == REQUEST_KEYS
    assert line["method"] == "POST"
    assert line["route"] == "/operators/{operator_id}/v1/identification-requests"
    assert line["status"] == 201
    assert line["messenger_id"] == "demo"
    assert line["event"] == "request"
    assert line["level"] == "info"
    assert {k: type(v) for k, v in line.items()} == {
        "request_id": str,
        "method": str,
        "route": str,
        "status": int,
        "duration_ms": float,
        "messenger_id": str,
        "event": str,
        "level": str,
        "timestamp": str,
    }
    assert line["duration_ms"] >= 0
    assert TIMESTAMP_RE.fullmatch(line["timestamp"])
    stamped = datetime.fromisoformat(line["timestamp"].replace("Z", "+00:00"))
    assert before.replace(microsecond=0) <= stamped <= datetime.now(UTC)
    # The layout json.dumps (structlog's JSONRenderer) writes: ", " and ": ", UTF-8.
    assert raw[0] == json.dumps(line, ensure_ascii=False)


async def test_request_line_without_messenger_or_route(sim: Sim, log_stream: io.StringIO) -> None:
    resp = await sim.client.get("/no/such/path", headers={"X-Request-Id": "trace-404"})
    assert resp.status == 404
    (raw,) = _raw_lines(log_stream, "trace-404")
    line = json.loads(raw)
    assert list(line) == REQUEST_KEYS
    assert (line["method"], line["route"], line["status"]) == ("GET", "unmatched", 404)
    assert line["messenger_id"] is None


async def test_numbers_in_the_request_line_are_masked(sim: Sim, log_stream: io.StringIO) -> None:
    # A client's X-Request-Id reaches the line: twice, so that the second pass meets the
    # cache of clean strings the first one filled with the line's other values.
    for request_id in ["call-+79161234567", "call-+79161234567", "8(916)123-45-67"]:
        resp = await sim.identify("+79000000002", headers={"X-Request-Id": request_id})
        assert resp.status == 201
        assert resp.headers["X-Request-Id"] == request_id  # the client gets its own id back
    logged = log_stream.getvalue()
    ids = [json.loads(x)["request_id"] for x in logged.splitlines() if '"request"' in x]
    assert ids == ["call-+7916*****67", "call-+7916*****67", "8916*****67"]
    assert "79161234567" not in logged
    assert "9161234567" not in logged


def test_log_fields_writes_what_log_info_writes(log_stream: io.StringIO) -> None:
    log = structlog.get_logger("operator_sim.http")
    fields: dict[str, Any] = {
        "request_id": "req_1",
        "method": "GET",
        "route": "/v1/routing/{msisdn}",
        "status": 200,
        "duration_ms": 0.25,
        "messenger_id": "m-79161234567",
        "note": ["+79161234567", 79161234567, {"deep": "8 916 123 45 67"}],
    }
    log.info("request", **fields)
    log_fields(log, "info", "request", dict(fields))
    via_logger, via_fast_path = (json.loads(x) for x in log_stream.getvalue().splitlines())
    assert list(via_logger) == list(via_fast_path)
    del via_logger["timestamp"], via_fast_path["timestamp"]
    assert via_fast_path == via_logger
    assert via_fast_path["messenger_id"] == "m-7916*****67"
    assert via_fast_path["note"] == ["+7916*****67", "7916*****67", {"deep": "8916*****67"}]


def test_log_fields_carries_the_context(log_stream: io.StringIO) -> None:
    token = CURRENT_REQUEST_ID.set("req_ctx")
    structlog.contextvars.bind_contextvars(tenant="t-1")
    try:
        log_fields(structlog.get_logger(), "info", "request", {"status": 200})
    finally:
        structlog.contextvars.clear_contextvars()
        CURRENT_REQUEST_ID.reset(token)
    line = json.loads(log_stream.getvalue())
    assert line["tenant"] == "t-1"
    assert line["request_id"] == "req_ctx"


@dataclass
class _Recorder:
    calls: list[tuple[str, dict[str, Any]]]

    def info(self, event: str, **fields: Any) -> None:
        self.calls.append((event, fields))


def test_log_fields_follows_structlog_once_configured_elsewhere(tmp_path: Path) -> None:
    with (tmp_path / "log.jsonl").open("w") as closed_later:
        configure_logging("info", "json", closed_later)
    with structlog.testing.capture_logs() as captured:
        log_fields(structlog.get_logger(), "info", "request", {"status": 200})
    assert captured == [{"event": "request", "status": 200, "log_level": "info"}]
    structlog.reset_defaults()  # as a test's teardown does: the closed file is not written to
    recorder = _Recorder([])
    log_fields(recorder, "info", "request", {"status": 200})
    assert recorder.calls == [("request", {"status": 200})]
    assert (tmp_path / "log.jsonl").read_text() == ""


# --- masking: the fast checks change nothing -----------------------------------------------


def _mask_reference(text: str) -> str:
    """mask_text without its quick search: the two substitutions alone."""
    return logs._SHORT_E164_RE.sub(logs._mask_match, logs._PHONE_RE.sub(logs._mask_match, text))


# Digits (one of them not ASCII), separators, leads and letters, in runs.
_TEXT = st.lists(
    st.sampled_from([*"0123456789", *" ()-.\n\t\u2009", "+", "%2B", "%2b", "٣", "_", "x"]),
    max_size=40,
).map("".join)


@settings(max_examples=400, deadline=None)
@given(text=_TEXT)
def test_mask_text_equals_the_plain_substitutions(text: str) -> None:
    assert mask_text(text) == _mask_reference(text)


@settings(max_examples=200, deadline=None)
@given(texts=st.lists(_TEXT, min_size=1, max_size=4))
def test_mask_processor_equals_the_plain_substitutions_on_repeats(texts: list[str]) -> None:
    # Each value twice: the second time it may come from the cache of clean strings.
    for text in [*texts, *texts]:
        masked = mask_phone_numbers(None, "info", {"event": text, "level": "info"})
        assert masked == {"event": _mask_reference(text), "level": "info"}


@settings(max_examples=300, deadline=None)
@given(
    head=st.sampled_from([*"aZ_"]),
    tail=st.lists(st.sampled_from([*"0123456789", "_", "q", "٣"]), max_size=30).map("".join),
)
def test_mask_processor_on_identifiers_equals_the_plain_substitutions(head: str, tail: str) -> None:
    # Identifiers, request ids among them, skip the search: a digit after a word character
    # never begins a number. ('٣' makes some of them not ASCII: those are searched.)
    text = head + tail
    masked = mask_phone_numbers(None, "info", {"request_id": text})
    assert masked == {"request_id": _mask_reference(text)}


def test_mask_processor_masks_whole_numbers_only_of_phone_length() -> None:
    event = {"a": 79161234567, "b": 123456789, "c": -79161234567, "d": True, "e": 7.5}
    assert mask_phone_numbers(None, "info", event) == {
        "a": "7916*****67",
        "b": 123456789,
        "c": "-7916*****67",
        "d": True,
        "e": 7.5,
    }


# --- the renderer ---------------------------------------------------------------------------

_SCALARS = (
    st.text(max_size=20)
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    # orjson spells floats under 1e-4 without an exponent (0.00001 for 1e-05): same value.
    | st.floats(allow_nan=False, allow_infinity=False).filter(lambda f: f == 0 or abs(f) >= 1e-4)
    | st.booleans()
    | st.none()
)
_VALUES = st.recursive(
    _SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=12,
)


@settings(max_examples=300, deadline=None)
@given(event=st.dictionaries(st.text(max_size=12), _VALUES, max_size=8))
def test_renderer_writes_the_bytes_of_json_dumps(event: dict[str, Any]) -> None:
    rendered = JSONLineRenderer()(None, "info", event)
    assert rendered == json.dumps(event, ensure_ascii=False).encode()


@pytest.mark.parametrize(
    "event",
    [
        {"event": "lone \ud800 surrogate"},
        {"event": "big", "n": 2**70},
        {"event": "key", 7: "not a string"},
    ],
)
def test_renderer_falls_back_to_structlog_for_what_orjson_declines(event: dict[Any, Any]) -> None:
    expected = structlog.processors.JSONRenderer(ensure_ascii=False)(None, "info", dict(event))
    assert JSONLineRenderer()(None, "info", dict(event)) == expected


def test_renderer_writes_other_types_as_structlog_does() -> None:
    class Custom:
        def __structlog__(self) -> str:
            return "custom"

    when = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    event = {"when": when, "custom": Custom(), "tiny": 1e-05, "nan": float("nan")}
    line = json.loads(JSONLineRenderer()(None, "info", event))
    assert line == {"when": repr(when), "custom": "custom", "tiny": 1e-05, "nan": None}


# --- the timestamp --------------------------------------------------------------------------


def test_timestamp_is_formatted_from_a_per_second_prefix(monkeypatch: pytest.MonkeyPatch) -> None:
    second = 1_790_000_000  # 2026-09-21T14:13:20Z
    for offset_ns, expected in [
        (0, "2026-09-21T14:13:20.000000Z"),
        (123_456_789, "2026-09-21T14:13:20.123456Z"),
        (1_000_000_999, "2026-09-21T14:13:21.000000Z"),
        (1_999_999_999, "2026-09-21T14:13:21.999999Z"),
    ]:
        monkeypatch.setattr(time, "time_ns", lambda o=offset_ns: second * 10**9 + o)
        assert logs._timestamp() == expected


# --- configuration --------------------------------------------------------------------------


def test_reconfiguring_reaches_loggers_already_used() -> None:
    log = structlog.get_logger("test.reconfigure")
    first, second, third = io.StringIO(), io.StringIO(), io.StringIO()
    configure_logging("info", "json", first)
    log.info("one")
    log.debug("hidden")
    configure_logging("warning", "json", second)
    log.info("dropped")
    log.warning("two")
    configure_logging("debug", "console", third)
    log.debug("three")
    assert [json.loads(x)["event"] for x in first.getvalue().splitlines()] == ["one"]
    assert [json.loads(x)["event"] for x in second.getvalue().splitlines()] == ["two"]
    assert "three" in third.getvalue()
    assert not third.getvalue().startswith("{")


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_console_renderer_on_a_terminal_masks_too() -> None:
    terminal = _Terminal()
    configure_logging("info", "auto", terminal)
    log = structlog.get_logger("test.console")
    log.info("lookup", msisdn="+79161234567")
    log_fields(log, "info", "request", {"request_id": "call-+79161234567", "status": 200})
    lookup, request = terminal.getvalue().splitlines()
    for line in (lookup, request):
        with pytest.raises(json.JSONDecodeError):
            json.loads(line)
    assert "lookup" in lookup
    assert "+7916*****67" in lookup
    assert "request" in request
    assert "call-+7916*****67" in request
    assert "79161234567" not in terminal.getvalue()


def test_stdlib_logging_goes_through_the_same_chain(tmp_path: Path) -> None:
    # A real file: structlog's lines go to its byte buffer, stdlib's through its text
    # layer; they must still come out in the order they were logged.
    path = tmp_path / "log.jsonl"
    with path.open("w", encoding="utf-8") as out:
        out.write("written before\n")  # held by the text layer, not yet in the buffer
        configure_logging("info", "json", out)
        log = structlog.get_logger("test.order")
        log.info("first", msisdn="+79161234567")
        logging.getLogger("aiohttp.server").warning("peer sent +79161234567 twice")
        log_fields(log, "info", "third", {"note": "Ünïcode"})
    before, *lines = path.read_text("utf-8").splitlines()
    assert before == "written before"
    first, second, third = (json.loads(x) for x in lines)
    assert (first["event"], first["msisdn"]) == ("first", "+7916*****67")
    assert second["event"] == "peer sent +7916*****67 twice"
    assert (second["logger"], second["level"]) == ("aiohttp.server", "warning")
    assert TIMESTAMP_RE.fullmatch(second["timestamp"])
    assert (third["event"], third["note"]) == ("third", "Ünïcode")
