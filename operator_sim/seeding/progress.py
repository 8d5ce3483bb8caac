"""A small terminal progress bar: rows, rate and ETA on one line, silent off a terminal."""

from __future__ import annotations

import sys
import time
from typing import TextIO

__all__ = ["ProgressBar"]

_WIDTH = 30
# Redrawing more often than this only costs time; the eye cannot follow it anyway.
_MIN_INTERVAL = 0.1


def _duration(seconds: float) -> str:
    seconds = max(0, round(seconds))
    minutes, secs = divmod(seconds, 60)
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


class ProgressBar:
    """Draws ``[#####.....]  42%  420,000/1,000,000 rows  180,000 rows/s  ETA 3s``.

    Call it with (done, total) as work advances and ``close()`` at the end. It draws
    only when ``stream`` is a terminal, so piped or captured output stays clean.
    """

    def __init__(self, stream: TextIO | None = None, *, enabled: bool | None = None) -> None:
        self._stream = stream or sys.stdout
        self.enabled = self._stream.isatty() if enabled is None else enabled
        self._started = time.perf_counter()
        self._last_draw = 0.0
        self._drawn = False

    def __call__(self, done: int, total: int) -> None:
        """Record progress; redraws at most every 0.1 s, and always at the end."""
        if not self.enabled:
            return
        now = time.perf_counter()
        if done < total and now - self._last_draw < _MIN_INTERVAL:
            return
        self._last_draw = now
        self._stream.write("\r" + self.render(done, total, now - self._started) + "\x1b[K")
        self._stream.flush()
        self._drawn = True

    @staticmethod
    def render(done: int, total: int, elapsed: float) -> str:
        """The bar's text for this much work done after ``elapsed`` seconds."""
        fraction = done / total if total else 1.0
        filled = int(fraction * _WIDTH)
        rate = done / elapsed if elapsed > 0 else 0.0
        eta = (total - done) / rate if rate > 0 else 0.0
        return (
            f"[{'#' * filled}{'.' * (_WIDTH - filled)}] {fraction:4.0%}  "
            f"{done:,}/{total:,} rows  {rate:,.0f} rows/s  ETA {_duration(eta)}"
        )

    def close(self) -> None:
        """Clear the bar's line, so the next output starts on a clean line."""
        if self._drawn:
            self._stream.write("\r\x1b[K")
            self._stream.flush()
            self._drawn = False
