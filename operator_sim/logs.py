"""Logging: the only ``structlog.configure()``, and the phone-number masking processor.

Every line goes through :func:`mask_phone_numbers` before it is rendered, so a number
that reaches a log line in any formatting (``+79161234567``, ``%2B79161234567``,
``8 (916) 123-45-67``) comes out as ``+7916*****67``.

The server writes a line per HTTP request, so the chain is kept cheap: that line skips
the bound logger (:func:`log_fields`), the timestamp is formatted from a per-second
prefix, a value is searched for a number only when it could hold one, and orjson renders
the line, in the layout of structlog's JSONRenderer, straight to bytes.
"""

from __future__ import annotations

import io
import logging
import re
import sys
import time
from collections.abc import MutableMapping
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any, Literal, TextIO

import orjson
import structlog
from structlog.typing import EventDict, Processor, WrappedLogger

__all__ = [
    "CURRENT_REQUEST_ID",
    "JSONLineRenderer",
    "configure_logging",
    "is_enabled",
    "log_fields",
    "mask_by_default",
    "mask_phone_numbers",
    "mask_text",
    "processors",
]

# A run of 10 to 15 digits, each optionally preceded by up to two separators, optionally
# led by '+' or its URL encoding. Separators let formatted numbers be caught as well.
_PHONE_RE = re.compile(r"(?<![\w])(\+|%2[Bb])?\d(?:[\s().\-]{0,2}\d){9,14}(?![\d])")
# E.164 allows numbers as short as 7 digits: with a '+' in front, any length is masked.
_SHORT_E164_RE = re.compile(r"(?<![\w])(\+|%2[Bb])\d{7,9}(?![\d])")
# Whatever either pattern matches holds seven digits with at most two separators between
# them: text without such a run is left as it is, at the cost of one quick search.
# (Possessive: a digit never stands where a separator may, so nothing is lost.)
_MAYBE_NUMBER_RE = re.compile(r"\d(?:[\s().\-]{0,2}+\d){6}")
_UNMASKED_KEYS = frozenset({"timestamp", "level"})
_TEN_DIGITS = 10**9  # the smallest whole number that could be a phone number


def _mask_match(match: re.Match[str]) -> str:
    digits = re.sub(r"\D", "", match.group(0).removeprefix(match.group(1) or ""))
    lead = match.group(1) or ""
    head = 4 if len(digits) >= 10 else 2  # short numbers show less
    return f"{lead}{digits[:head]}{'*' * (len(digits) - head - 2)}{digits[-2:]}"


def mask_text(text: str) -> str:
    """Mask every phone-number-like run in ``text``, keeping 4 leading and 2 trailing digits
    (2 and 2 for numbers shorter than 10 digits)."""
    if _MAYBE_NUMBER_RE.search(text) is None:
        return text
    return _SHORT_E164_RE.sub(_mask_match, _PHONE_RE.sub(_mask_match, text))


def _mask_value(value: Any) -> Any:
    if isinstance(value, str):
        return mask_text(value)
    # 10 to 15 digits: a whole number that could be a phone number.
    if (
        isinstance(value, int)
        and not isinstance(value, bool)
        and _TEN_DIGITS <= abs(value) < 10**15
    ):
        return mask_text(str(value))
    if isinstance(value, list | tuple):
        return [_mask_value(v) for v in value]
    if isinstance(value, dict):
        return {k: _mask_value(v) for k, v in value.items()}
    return value


_maybe_number = _MAYBE_NUMBER_RE.search
# Values of these types never hold a number to mask.
_PLAIN_TYPES = frozenset({float, bool, type(None)})
# Strings known to hold no number: most values of a line (routes, methods, events) recur
# on every line, and a set lookup costs less than a search. Bounded: emptied when full.
_CLEAN: set[str] = set()
_CLEAN_MAX, _CLEAN_LONGEST = 512, 256


def mask_phone_numbers(
    _logger: WrappedLogger, _method: str, event_dict: EventDict
) -> MutableMapping[str, Any]:
    """structlog processor: mask phone numbers in every value (and the event text)."""
    # Values are replaced, never added or removed: iterating the dict itself is safe. Plain
    # strings, the bulk of every line, are tested here rather than through _mask_value.
    for key, value in event_dict.items():
        kind = type(value)
        if kind is str:
            # Shorter than seven characters, a string cannot hold seven digits.
            if len(value) < 7 or key in _UNMASKED_KEYS:
                continue
            # An ASCII identifier (a request id, an event's name) holds no number: each of
            # its digits follows a word character, where no number may begin.
            if (value.isascii() and value.isidentifier()) or value in _CLEAN:
                continue
            if _maybe_number(value) is not None:
                event_dict[key] = mask_text(value)
            elif len(value) <= _CLEAN_LONGEST:
                if len(_CLEAN) >= _CLEAN_MAX:
                    _CLEAN.clear()
                _CLEAN.add(value)
        elif kind is int:
            if -_TEN_DIGITS < value < _TEN_DIGITS:
                continue
            event_dict[key] = _mask_value(value)
        elif kind not in _PLAIN_TYPES and key not in _UNMASKED_KEYS:
            event_dict[key] = _mask_value(value)
    return event_dict


CURRENT_REQUEST_ID: ContextVar[str | None] = ContextVar("operator_sim_request_id", default=None)
"""The id of the HTTP request being handled: every log line written meanwhile carries it.

Set by the HTTP middleware; a plain context variable rather than structlog's bound
context variables, which cost every request a dictionary of tokens."""


_stamp_second: tuple[int, str] = (-1, "")
# As structlog's add_log_level names them.
_LEVEL_OF_METHOD = {"warn": "warning", "exception": "error"}


def _timestamp() -> str:
    """Now, RFC 3339 in UTC with microseconds and ``Z``: the date and time of day are
    formatted once a second, a line adds only the fraction."""
    global _stamp_second
    second, nanos = divmod(time.time_ns(), 1_000_000_000)
    cached, prefix = _stamp_second  # one tuple: a thread never pairs a second with another's text
    if second != cached:
        prefix = datetime.fromtimestamp(second, UTC).strftime("%Y-%m-%dT%H:%M:%S.")
        _stamp_second = (second, prefix)
    return f"{prefix}{nanos // 1000:06d}Z"


def _add_line_fields(
    _logger: WrappedLogger, method: str, event_dict: EventDict
) -> MutableMapping[str, Any]:
    # What every line carries, in this order: request_id (that of the HTTP request being
    # handled, unless given), level and timestamp. One processor rather than three: each
    # costs every line a call.
    request_id = CURRENT_REQUEST_ID.get()
    if request_id is not None:
        event_dict.setdefault("request_id", request_id)
    event_dict["level"] = _LEVEL_OF_METHOD.get(method, method)
    event_dict["timestamp"] = _timestamp()
    return event_dict


def _format_exc_info(
    logger: WrappedLogger, method: str, event_dict: EventDict
) -> MutableMapping[str, Any]:
    # structlog's renderer pops and inspects the key on every line; most lines lack it.
    if "exc_info" not in event_dict:
        return event_dict
    return structlog.processors.format_exc_info(logger, method, event_dict)


def _json_default(value: Any) -> Any:
    # What structlog's JSONRenderer writes for a value JSON has no type for.
    to_log = getattr(value, "__structlog__", None)
    return to_log() if to_log is not None else repr(value)


_ORJSON_OPTIONS = (
    orjson.OPT_INDENT_2  # json.dumps' separators; the line breaks are taken out below
    | orjson.OPT_PASSTHROUGH_DATETIME  # to _json_default, as structlog's renderer does
    | orjson.OPT_PASSTHROUGH_DATACLASS
)
# Between items, and before a nested item. orjson escapes a line break within a string, so
# every line break in its output is layout.
_ITEM_BREAK_RE = re.compile(rb",\n *")
_LINE_BREAK_RE = re.compile(rb"\n *")


class JSONLineRenderer:
    """structlog processor: the event as one line of JSON, in bytes.

    The bytes of structlog's ``JSONRenderer(ensure_ascii=False)`` (same keys, order,
    separators and escapes), from orjson, which takes a tenth of the time. Two spellings
    differ: a float under 1e-4 may be written without an exponent (``0.00001`` for
    ``1e-05``, the same number), and one that is not finite is written ``null`` (``NaN`` is
    no JSON). An event orjson declines (a key that is no string, an integer beyond 64
    bits, a lone surrogate) is rendered by structlog's renderer.
    """

    def __init__(self) -> None:
        self._fallback = structlog.processors.JSONRenderer(ensure_ascii=False)

    def __call__(self, logger: WrappedLogger, method: str, event_dict: EventDict) -> str | bytes:
        """Render ``event_dict``."""
        try:
            pretty = orjson.dumps(event_dict, default=_json_default, option=_ORJSON_OPTIONS)
        except TypeError:  # orjson.JSONEncodeError
            return self._fallback(logger, method, event_dict)
        if b"\n    " in pretty:  # a nested object or array, indented deeper
            return _LINE_BREAK_RE.sub(b"", _ITEM_BREAK_RE.sub(b", ", pretty))
        if pretty[:2] != b"{\n":  # {}
            return pretty
        return b"{" + pretty[4:-2].replace(b",\n  ", b", ") + b"}"


def _text(renderer: Processor) -> Processor:
    """``renderer`` for stdlib logging's formatter, which needs str."""

    def render(logger: WrappedLogger, method: str, event_dict: EventDict) -> str:
        line = renderer(logger, method, event_dict)
        return line.decode() if isinstance(line, bytes) else str(line)

    return render


def processors(renderer: Literal["json", "console"]) -> list[Processor]:
    """The processor chain, masking last before rendering."""
    final: Processor = (
        JSONLineRenderer() if renderer == "json" else structlog.dev.ConsoleRenderer(colors=False)
    )
    return [
        structlog.contextvars.merge_contextvars,
        _add_line_fields,
        _format_exc_info,
        mask_phone_numbers,
        final,
    ]


class _Output:
    """What every logger writes to: one line per event on the configured stream, written
    out before the call returns, so that a server killed at any moment has logged every
    request it answered.

    Lines go to a binary buffer below the stream's text layer when there is one (lines in
    bytes skip that layer), flushed line by line: one system call a line. stdlib
    logging's lines come here too (:meth:`write`), in order with the others.
    """

    def __init__(self) -> None:
        self._text: TextIO = sys.stderr
        self._binary: io.BufferedIOBase | None = None

    def use(self, stream: TextIO) -> None:
        """Write to ``stream`` from now on."""
        stream.flush()  # nothing the text layer holds may come after a line written below it
        self._text = stream
        self._binary = _buffer_below(stream)

    def msg(self, message: str | bytes) -> None:
        """Write ``message`` as one line."""
        if isinstance(message, str):
            self.write(message + "\n")
        elif self._binary is None:
            self.write(message.decode() + "\n")
        else:
            self._binary.write(message + b"\n")
            self._binary.flush()

    def write(self, text: str) -> None:
        """Write ``text`` as it is."""
        if self._binary is None:
            self._text.write(text)
            self._text.flush()
        else:
            self._binary.write(text.encode(self._text.encoding, self._text.errors or "strict"))
            self._binary.flush()

    log = debug = info = warn = warning = msg
    fatal = failure = err = error = critical = exception = msg


def _buffer_below(stream: TextIO) -> io.BufferedIOBase | None:
    """A binary buffer writing to what ``stream`` writes to, if it has one."""
    below = getattr(stream, "buffer", None)
    if isinstance(below, io.BufferedIOBase):
        return below
    if isinstance(below, io.FileIO) and not below.closed and below.writable():
        # Standard error's text layer writes straight to its file: the lines get a buffer
        # of their own below it, over the same descriptor, which it never closes. Flushed
        # after every line, it still writes a line whole when the system takes it in parts.
        return io.BufferedWriter(io.FileIO(below.fileno(), "w", closefd=False))
    return None


_OUTPUT = _Output()
_CHAIN: list[Processor] = []
"""The processor chain configure_logging() gave structlog."""


def _output_factory(*_args: Any) -> _Output:
    return _OUTPUT


def log_fields(logger: Any, method: str, event: str, fields: dict[str, Any]) -> None:
    """``getattr(logger, method)(event, **fields)``, for a line written on every request.

    While structlog runs as configure_logging() set it up, ``fields`` (taken over, not
    copied) goes straight through the same processor chain to the same output, without
    the bound logger's layers, which cost a quarter of the line. ``logger`` must hold no
    bound values: they would be missed. The level is not checked: callers test
    is_enabled() first.
    """
    config = structlog.get_config()
    if config["processors"] is not _CHAIN or config["logger_factory"] is not _output_factory:
        getattr(logger, method)(event, **fields)  # configured elsewhere (or reset): as it says
        return
    fields["event"] = event
    line: Any = fields
    try:
        for processor in _CHAIN:
            line = processor(_OUTPUT, method, line)
    except structlog.DropEvent:
        return
    _OUTPUT.msg(line)


class _QuietBadRequests(logging.Filter):
    """aiohttp logs a malformed HTTP request (a client's fault) as an error with a traceback;
    make it one warning line instead."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if exc is not None and type(exc).__module__.startswith("aiohttp.http_exceptions"):
            record.exc_info = None
            record.exc_text = None
            record.levelno, record.levelname = logging.WARNING, "WARNING"
            record.msg, record.args = "bad_http_request: %s", (" ".join(str(exc).split())[:200],)
        return True


def _route_stdlib(renderer: Literal["json", "console"], level: int) -> None:
    """Send stdlib logging (aiohttp's own messages) through the same masking chain."""
    chain = processors(renderer)
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[structlog.stdlib.add_logger_name, *chain[:-1]],
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, _text(chain[-1])],
    )
    handler = logging.StreamHandler(_OUTPUT)  # in order with structlog's lines
    handler.setFormatter(formatter)
    handler.addFilter(_QuietBadRequests())
    root = logging.getLogger()
    root.handlers = [handler]
    root.setLevel(level)
    # aiosqlite logs every statement with its parameters at debug level: subscriber rows
    # would reach the log. Never below warning, whatever the configured level.
    logging.getLogger("aiosqlite").setLevel(max(level, logging.WARNING))


_threshold = logging.NOTSET


def is_enabled(level: int) -> bool:
    """Whether events at ``level`` are written: lets a hot path skip building one."""
    return level >= _threshold


def mask_by_default(level: str = "info") -> None:
    """Give structlog the masking chain when nothing configured it yet.

    A server built in-process (the test double, an embedding application) logs through
    structlog; left unconfigured, structlog would print every line, debug ones included,
    with phone numbers as they are. This installs the console chain (masking, ``level``
    and up, to stdout where test runners capture it). A process that configured structlog
    itself keeps its configuration, and stdlib logging is left alone.
    """
    if structlog.is_configured():
        return
    structlog.configure(
        processors=processors("console"),
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelNamesMapping()[level.upper()]
        ),
        logger_factory=structlog.PrintLoggerFactory(),
        cache_logger_on_first_use=False,
    )


def configure_logging(
    level: str = "info",
    fmt: Literal["auto", "json", "console"] = "auto",
    stream: TextIO | None = None,
) -> None:
    """Configure structlog to write one line per event to ``stream`` (stderr by default)."""
    out = stream or sys.stderr
    renderer: Literal["json", "console"] = (
        ("console" if out.isatty() else "json") if fmt == "auto" else fmt
    )
    global _threshold, _CHAIN
    level_no = logging.getLevelNamesMapping()[level.upper()]
    _threshold = level_no
    _route_stdlib(renderer, level_no)
    _CHAIN = processors(renderer)
    _OUTPUT.use(out)
    structlog.configure(
        processors=_CHAIN,
        wrapper_class=structlog.make_filtering_bound_logger(level_no),
        logger_factory=_output_factory,
        cache_logger_on_first_use=False,
    )
