"""Rate-limit policies: ``"demo=50/s,*=1000/m"`` parsed into quotas and windows."""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["RatePolicy", "parse_rate_limits"]

_ENTRY_RE = re.compile(
    r"^\s*([a-z0-9][a-z0-9_-]{0,62}|\*)\s*=\s*(\d{1,9})\s*/\s*(\d{0,6})([smh])\s*$"
)
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600}


@dataclass(frozen=True)
class RatePolicy:
    """``quota`` calls per ``window`` seconds."""

    quota: int
    window: int

    @property
    def rate(self) -> float:
        """Tokens refilled per second."""
        return self.quota / self.window


def parse_rate_limits(spec: str) -> dict[str, RatePolicy]:
    """Parse ``"demo=50/s,*=1000/m"``; raises ``ValueError`` naming the bad entry."""
    policies: dict[str, RatePolicy] = {}
    for entry in (part for part in spec.split(",") if part.strip()):
        match = _ENTRY_RE.fullmatch(entry)
        if match is None:
            raise ValueError(
                f"rate limit {entry.strip()!r}: expected MESSENGER=QUOTA/WINDOW "
                "such as demo=50/s, *=1000/m or ci=10/30s"
            )
        who, quota, count, unit = match.groups()
        window = (int(count) if count else 1) * _UNIT_SECONDS[unit]
        if int(quota) < 1 or window < 1:
            raise ValueError(f"rate limit {entry.strip()!r}: quota and window must be positive")
        if who in policies:
            raise ValueError(f"rate limit {entry.strip()!r}: {who} is given twice")
        policies[who] = RatePolicy(int(quota), window)
    return policies
