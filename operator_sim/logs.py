"""Logging: the only ``structlog.configure()``, and the phone-number masking processor.

Every line goes through :func:`mask_phone_numbers` before it is rendered, so a number
that reaches a log line in any formatting (``+79161234567``, ``%2B79161234567``,
``8 (916) 123-45-67``) comes out as ``+7916*****67``.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import MutableMapping
from contextvars import ContextVar
from typing import Any, Literal, TextIO

import structlog
from structlog.typing import EventDict, Processor, WrappedLogger

__all__ = [
    "CURRENT_REQUEST_ID",
    "configure_logging",
    "is_enabled",
    "mask_phone_numbers",
    "mask_text",
    "processors",
]

# A run of 10 to 15 digits, each optionally preceded by up to two separators, optionally
# led by '+' or its URL encoding. Separators let formatted numbers be caught as well.
_PHONE_RE = re.compile(r"(?<![\w])(\+|%2[Bb])?\d(?:[\s().\-]{0,2}\d){9,14}(?![\d])")
# E.164 allows numbers as short as 7 digits: with a '+' in front, any length is masked.
_SHORT_E164_RE = re.compile(r"(?<![\w])(\+|%2[Bb])\d{7,9}(?![\d])")
_UNMASKED_KEYS = frozenset({"timestamp", "level"})


def _mask_match(match: re.Match[str]) -> str:
    digits = re.sub(r"\D", "", match.group(0).removeprefix(match.group(1) or ""))
    lead = match.group(1) or ""
    head = 4 if len(digits) >= 10 else 2  # short numbers show less
    return f"{lead}{digits[:head]}{'*' * (len(digits) - head - 2)}{digits[-2:]}"


def mask_text(text: str) -> str:
    """Mask every phone-number-like run in ``text``, keeping 4 leading and 2 trailing digits
    (2 and 2 for numbers shorter than 10 digits)."""
    return _SHORT_E164_RE.sub(_mask_match, _PHONE_RE.sub(_mask_match, text))


def _mask_value(value: Any) -> Any:
    if isinstance(value, str):
        return mask_text(value)
    if isinstance(value, int) and not isinstance(value, bool) and 10 <= len(str(abs(value))) <= 15:
        return mask_text(str(value))
    if isinstance(value, list | tuple):
        return [_mask_value(v) for v in value]
    if isinstance(value, dict):
        return {k: _mask_value(v) for k, v in value.items()}
    return value


def mask_phone_numbers(
    _logger: WrappedLogger, _method: str, event_dict: EventDict
) -> MutableMapping[str, Any]:
    """structlog processor: mask phone numbers in every value (and the event text)."""
    for key, value in list(event_dict.items()):
        if key not in _UNMASKED_KEYS:
            event_dict[key] = _mask_value(value)
    return event_dict


CURRENT_REQUEST_ID: ContextVar[str | None] = ContextVar("operator_sim_request_id", default=None)
"""The id of the HTTP request being handled: every log line written meanwhile carries it.

Set by the HTTP middleware; a plain context variable rather than structlog's bound
context variables, which cost every request a dictionary of tokens."""


def _add_request_id(
    _logger: WrappedLogger, _method: str, event_dict: EventDict
) -> MutableMapping[str, Any]:
    request_id = CURRENT_REQUEST_ID.get()
    if request_id is not None:
        event_dict.setdefault("request_id", request_id)
    return event_dict


def processors(renderer: Literal["json", "console"]) -> list[Processor]:
    """The processor chain, masking last before rendering."""
    final: Processor = (
        structlog.processors.JSONRenderer(ensure_ascii=False)
        if renderer == "json"
        else structlog.dev.ConsoleRenderer(colors=False)
    )
    return [
        structlog.contextvars.merge_contextvars,
        _add_request_id,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.format_exc_info,
        mask_phone_numbers,
        final,
    ]


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


def _route_stdlib(out: TextIO, renderer: Literal["json", "console"], level: int) -> None:
    """Send stdlib logging (aiohttp's own messages) through the same masking chain."""
    chain = processors(renderer)
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[structlog.stdlib.add_logger_name, *chain[:-1]],
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, chain[-1]],
    )
    handler = logging.StreamHandler(out)
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
    global _threshold
    level_no = logging.getLevelNamesMapping()[level.upper()]
    _threshold = level_no
    _route_stdlib(out, renderer, level_no)
    structlog.configure(
        processors=processors(renderer),
        wrapper_class=structlog.make_filtering_bound_logger(level_no),
        logger_factory=structlog.WriteLoggerFactory(file=out),
        cache_logger_on_first_use=False,
    )
