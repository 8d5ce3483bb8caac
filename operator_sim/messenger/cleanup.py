"""Deleting at the operator the codes no user has any more, until the operator confirms.

A code is queued in the messenger's database in the same transaction that retires it
(replaced, superseded, or abandoned after a registration whose answer was lost), so a
deletion survives any crash. ``CodeCleanup.run`` tries the due ones; a failure is counted
and tried again later, with exponential back-off and jitter, across restarts, for as
long as it takes. ``204`` confirms, and so does ``404``: the operator holds no such code.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable

from operator_sim.messenger.client import OperatorClient
from operator_sim.messenger.errors import NotFound, OperatorClientError
from operator_sim.messenger.privacy import redact_code, scrub
from operator_sim.messenger.steps import Reporter
from operator_sim.messenger.store import MessengerStore

__all__ = ["CodeCleanup"]

_BASE = 5.0
_CAP = 30 * 60.0


def _jitter_rng() -> random.Random:
    return random.Random()  # noqa: S311 (back-off jitter, not security)


class CodeCleanup:
    """Deletes the queued codes at their operators."""

    def __init__(
        self,
        client: OperatorClient,
        store: MessengerStore,
        *,
        report: Reporter,
        clock: Callable[[], float],
        rng: random.Random | None = None,
    ) -> None:
        self._client = client
        self._store = store
        self._report = report
        self._clock = clock
        self._rng = rng or _jitter_rng()
        self._lock = asyncio.Lock()

    def backoff(self, attempts: int) -> float:
        """Seconds before the next try after ``attempts`` failed ones (at least one)."""
        step = min(_CAP, _BASE * 2.0 ** min(attempts - 1, 16))
        return step / 2 + self._rng.uniform(0, step / 2)

    async def run(self, *, everything: bool = False) -> int:
        """Try every due deletion (every pending one with ``everything``); returns how many
        the operator confirmed."""
        async with self._lock:
            pending = await self._store.pending_deletions(None if everything else self._clock())
            confirmed = 0
            for deletion in pending:
                shown = redact_code(deletion.code)
                try:
                    await self._client.delete_code(deletion.operator_id, deletion.code)
                except NotFound:
                    pass  # the operator holds no such code: as good as deleted
                except OperatorClientError as exc:
                    wait = self.backoff(deletion.attempts + 1)
                    error = scrub(str(exc), deletion.code)
                    await self._store.deletion_failed(
                        deletion.code, next_at=self._clock() + wait, error=error
                    )
                    self._report(
                        "cleanup_error",
                        None,
                        f"deleting {shown} at {deletion.operator_id} failed ({error}); "
                        f"again in {wait:.0f} s",
                    )
                    continue
                await self._store.deletion_done(deletion.code)
                self._report("code_deleted", None, f"{shown} deleted at {deletion.operator_id}")
                confirmed += 1
            return confirmed
