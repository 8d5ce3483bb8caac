"""What the messenger did or saw, as ``Step``s: handed to the caller's observer and logged.

Every step goes to the ``operator_sim.messenger`` logger (the operator's misbehaviour
at ``WARNING``, the rest at ``DEBUG``) and to the observer, when there is one.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["WARNINGS", "Observer", "Reporter", "Step"]

_log = logging.getLogger("operator_sim.messenger")

WARNINGS = frozenset({"feed_error", "event_skipped", "cursor_reset", "cleanup_error", "lease_lost"})
"""Kinds of step that say the operator (or the messenger's own machinery) misbehaved."""


@dataclass(frozen=True, slots=True)
class Step:
    """One thing the messenger did or saw, for logs, demos and tests."""

    kind: str
    user_id: str | None
    message: str


Observer = Callable[[Step], None]
"""Receives every step, on the event loop's thread: it must not block."""


class Reporter:
    """Turns what happened into a ``Step``, logs it and hands it to the observer."""

    def __init__(self, observer: Observer | None) -> None:
        self._observer = observer

    def __call__(self, kind: str, user_id: str | None, message: str) -> None:
        """Report one step."""
        step = Step(kind, user_id, message)
        level = logging.WARNING if kind in WARNINGS else logging.DEBUG
        if _log.isEnabledFor(level):
            _log.log(level, "%s user_id=%s %s", kind, user_id, message)
        if self._observer is not None:
            try:
                self._observer(step)
            except Exception:  # noqa: BLE001 (a broken observer must not break an identification)
                _log.exception("observer_failed kind=%s", kind)
