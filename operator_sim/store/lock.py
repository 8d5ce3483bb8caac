"""One server per database file: an exclusive lock held for as long as a server serves it.

Two servers on one file would each run their own clock and scheduler and disagree about
everything. The lock is ``flock`` on ``<db>.lock`` beside the database: the kernel drops
it when the process ends however it ends (``kill -9`` included), so a restart is never
blocked by a stale lock. The file holds the holder's pid, to name it in the refusal.
Only serving takes it; seeding writes through SQLite's own locking and stays safe next
to a running server. Where ``fcntl`` does not exist (Windows) no lock is taken.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from operator_sim.errors import StartupError

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

__all__ = ["ServeLock"]


def _describe(pid: str) -> str:
    """``pid N`` and, where /proc tells it, the command that holds the lock."""
    try:
        raw = Path(f"/proc/{int(pid)}/cmdline").read_bytes()
    except (OSError, ValueError):
        return f"pid {pid}" if pid else "another process"
    command = " ".join(part.decode(errors="replace") for part in raw.split(b"\0") if part)
    return f"pid {pid}: {command[:200]}" if command else f"pid {pid}"


class ServeLock:
    """The serving lock of one database file."""

    def __init__(self, db: Path | str) -> None:
        self._db = str(db)
        self.path = Path(f"{db}.lock")
        self._fd: int | None = None

    def acquire(self) -> None:
        """Take the lock, or raise ``StartupError`` naming the process that holds it."""
        db = self._db
        if fcntl is None or db == ":memory:":
            return
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 64).decode(errors="replace").strip()
            os.close(fd)
            raise StartupError(
                f"{db} is being served by another operator-sim ({_describe(holder)}); "
                "stop it first or use another --db"
            ) from None
        except BaseException:
            os.close(fd)
            raise
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd

    def release(self) -> None:
        """Let another server take the database (closing the file drops the lock)."""
        if self._fd is None:
            return
        with contextlib.suppress(OSError):
            os.ftruncate(self._fd, 0)
        os.close(self._fd)
        self._fd = None
