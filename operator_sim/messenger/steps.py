"""What the messenger did or saw, as ``Step``s: handed to the caller's observer and logged.

Every step goes to the ``operator_sim.messenger`` logger (the operator's misbehaviour
at ``WARNING``, the rest at ``DEBUG``) and to the observer, when there is one. Phone
numbers in steps are masked and what a user typed is not shown, unless the messenger
was built with ``reveal_numbers=True``; codes never appear (see ``privacy``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from operator_sim.messenger.privacy import mask_text

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

    def __init__(self, observer: Observer | None, *, reveal_numbers: bool = False) -> None:
        self._observer = observer
        self._reveal = reveal_numbers

    def text(self, message: str) -> str:
        """A message as steps, log lines and refusal details show it: numbers masked."""
        return message if self._reveal else mask_text(message)

    def typed(self, text: str) -> str:
        """What a user typed, as shown: not at all unless numbers are revealed."""
        return repr(text) if self._reveal else f"what the user typed ({len(text)} characters)"

    def __call__(self, kind: str, user_id: str | None, message: str) -> None:
        """Report one step."""
        step = Step(kind, user_id, self.text(message))
        level = logging.WARNING if kind in WARNINGS else logging.DEBUG
        if _log.isEnabledFor(level):
            _log.log(level, "%s user_id=%s %s", kind, user_id, step.message)
        if self._observer is not None:
            try:
                self._observer(step)
            except Exception:  # noqa: BLE001 (a broken observer must not break an identification)
                _log.exception("observer_failed kind=%s", kind)
