"""The simulation clock: the only place that reads wall time.

Simulation time is kept in integer milliseconds since the Unix epoch. The clock is
anchored: ``now = sim_anchor + elapsed_real * scale`` in the ``real`` (scale 1) and
``scaled`` modes, and ``now = sim_anchor`` in ``manual`` mode. Changing mode or advancing
re-anchors at the current simulation time, so simulation time never moves backwards.
Within a process elapsed time is read from the monotonic clock; across restarts the
stored wall-clock anchor tells how much time passed while the server was down.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

ClockMode = Literal["real", "scaled", "manual"]
MAX_SCALE = 1_000_000.0
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def wall_time() -> float:
    """Wall-clock seconds since the epoch (for webhook timestamps and clock anchors)."""
    return time.time()


def ms_to_datetime(ms: int) -> datetime:
    """An aware UTC datetime for integer epoch milliseconds (exact: no float on the way)."""
    return _EPOCH + timedelta(milliseconds=ms)


def parse_clock_spec(spec: str) -> tuple[ClockMode, float]:
    """Parse the command line's ``real``, ``scaled:N`` or ``manual``.

    Raises ``ValueError`` with a readable message for anything else.
    """
    text = spec.strip().lower()
    if text == "real":
        return "real", 1.0
    if text == "manual":
        return "manual", 1.0
    if text.startswith("scaled:"):
        try:
            scale = float(text.removeprefix("scaled:"))
        except ValueError:
            raise ValueError(
                f"clock {spec!r}: the scale after 'scaled:' must be a number"
            ) from None
        if not 0 < scale <= MAX_SCALE:
            raise ValueError(f"clock {spec!r}: the scale must be above 0 and at most {MAX_SCALE:g}")
        return "scaled", scale
    raise ValueError(f"clock {spec!r}: expected real, scaled:N or manual")


@dataclass(frozen=True, slots=True)
class ClockState:
    """What the store keeps of the clock."""

    mode: ClockMode
    scale: float
    sim_anchor_ms: int
    wall_anchor: float


class SimClock:
    """Simulation time in one of three modes; see the module docstring."""

    def __init__(
        self, mode: ClockMode = "real", scale: float = 1.0, *, start_ms: int | None = None
    ):
        self._mode: ClockMode = mode
        self._scale = 1.0 if mode == "real" else scale
        self._sim_anchor_ms = round(wall_time() * 1000) if start_ms is None else start_ms
        self._wall_anchor = wall_time()
        self._mono_anchor = time.monotonic()
        self._last_ms = self._sim_anchor_ms

    @classmethod
    def resume(cls, state: ClockState) -> SimClock:
        """Continue from a stored state, counting the time that passed while stopped."""
        clock = cls(state.mode, state.scale, start_ms=state.sim_anchor_ms)
        if state.mode != "manual":
            down = max(0.0, wall_time() - state.wall_anchor)
            clock._sim_anchor_ms = state.sim_anchor_ms + round(down * 1000 * clock._scale)
            clock._last_ms = clock._sim_anchor_ms
        return clock

    @property
    def mode(self) -> ClockMode:
        """The current mode."""
        return self._mode

    @property
    def scale(self) -> float:
        """Simulation seconds per real second (1 in real mode, unused in manual mode)."""
        return self._scale

    def now_ms(self) -> int:
        """Simulation time in epoch milliseconds; never decreases."""
        if self._mode == "manual":
            current = self._sim_anchor_ms
        else:
            elapsed = time.monotonic() - self._mono_anchor
            current = self._sim_anchor_ms + int(elapsed * 1000 * self._scale)
        self._last_ms = max(self._last_ms, current)
        return self._last_ms

    def now(self) -> datetime:
        """Simulation time as an aware UTC datetime."""
        return ms_to_datetime(self.now_ms())

    def _reanchor(self, sim_ms: int) -> None:
        self._sim_anchor_ms = sim_ms
        self._last_ms = max(self._last_ms, sim_ms)
        self._wall_anchor = wall_time()
        self._mono_anchor = time.monotonic()

    def set_mode(self, mode: ClockMode, scale: float = 1.0) -> None:
        """Switch mode, continuing from the current simulation time."""
        now = self.now_ms()
        self._mode = mode
        self._scale = 1.0 if mode == "real" else scale
        self._reanchor(now)

    def advance(self, ms: int) -> None:
        """Move simulation time forward by ``ms`` milliseconds (any mode)."""
        if ms < 0:
            raise ValueError("the clock only moves forward")
        self._reanchor(self.now_ms() + ms)

    def real_seconds_until(self, sim_ms: int) -> float | None:
        """Real seconds until simulation time reaches ``sim_ms``; None when only an advance can."""
        remaining = sim_ms - self.now_ms()
        if remaining <= 0:
            return 0.0
        if self._mode == "manual":
            return None
        return remaining / 1000 / self._scale

    def state(self) -> ClockState:
        """A snapshot to store: anchored at the current simulation time."""
        now = self.now_ms()
        self._reanchor(now)
        return ClockState(self._mode, self._scale, now, self._wall_anchor)
