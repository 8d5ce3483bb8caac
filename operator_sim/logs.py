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
from typing import Any, Literal, TextIO

import structlog
from structlog.typing import EventDict, Processor, WrappedLogger

__all__ = ["configure_logging", "mask_phone_numbers", "mask_text", "processors"]

# A run of 10 to 15 digits, each optionally preceded by up to two separators, optionally
# led by '+' or its URL encoding. Separators let formatted numbers be caught as well.
_PHONE_RE = re.compile(r"(?<![\w])(\+|%2[Bb])?\d(?:[\s().\-]{0,2}\d){9,14}(?![\d])")
_UNMASKED_KEYS = frozenset({"timestamp", "level"})


def _mask_match(match: re.Match[str]) -> str:
    digits = re.sub(r"\D", "", match.group(0).removeprefix(match.group(1) or ""))
    lead = match.group(1) or ""
    return f"{lead}{digits[:4]}{'*' * (len(digits) - 6)}{digits[-2:]}"


def mask_text(text: str) -> str:
    """Mask every phone-number-like run in ``text``, keeping 4 leading and 2 trailing digits."""
    return _PHONE_RE.sub(_mask_match, text)


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


def processors(renderer: Literal["json", "console"]) -> list[Processor]:
    """The processor chain, masking last before rendering."""
    final: Processor = (
        structlog.processors.JSONRenderer(ensure_ascii=False)
        if renderer == "json"
        else structlog.dev.ConsoleRenderer(colors=False)
    )
    return [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.format_exc_info,
        mask_phone_numbers,
        final,
    ]


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
    structlog.configure(
        processors=processors(renderer),
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelNamesMapping()[level.upper()]
        ),
        logger_factory=structlog.WriteLoggerFactory(file=out),
        cache_logger_on_first_use=False,
    )
