"""Keeping codes and phone numbers out of what the messenger says.

Identification codes are credentials: only the field that returns one (``Outcome.code``,
``UserRecord.code``, ...) holds it. Everywhere else (reprs, steps, log lines, error
messages, an operator's echo in a refusal's detail) a code shows as :func:`redact_code`,
a fingerprint that tells two codes apart and gives nothing away. Phone numbers in steps,
log lines and reprs are masked as the server's logs mask them (``+7916*****67``).
"""

from __future__ import annotations

import dataclasses
import hashlib
from typing import Any
from urllib.parse import quote

from operator_sim.logs import mask_text

__all__ = ["mask_text", "redact_code", "safe_repr", "scrub"]


def redact_code(code: str) -> str:
    """How a code is shown outside the field that returns it: ``[code 1a2b3c4d]``."""
    return f"[code {hashlib.sha256(code.encode()).hexdigest()[:8]}]"


def scrub(text: str, *codes: str | None) -> str:
    """``text`` with every given code (as is, or URL-encoded) replaced by its fingerprint."""
    for code in codes:
        if code:
            for form in {code, quote(code, safe="")}:
                text = text.replace(form, redact_code(code))
    return text


def _shown(name: str, value: Any) -> str:
    if isinstance(value, str) and name == "code":
        return redact_code(value)
    if isinstance(value, str) and name in ("msisdn", "detail"):
        return repr(mask_text(value))
    return repr(value)


def safe_repr(record: Any) -> str:
    """A dataclass's repr with its code redacted and its numbers masked."""
    fields = ", ".join(
        f"{field.name}={_shown(field.name, getattr(record, field.name))}"
        for field in dataclasses.fields(record)
    )
    return f"{type(record).__name__}({fields})"
