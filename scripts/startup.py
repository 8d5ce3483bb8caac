"""Measure how fast `operator-sim serve --port 0` is ready on an existing database.

Prints, for each run, the real time from spawning the process to the `listening on`
line and to the first `200` from `/readyz`, then the median; with --importtime, the ten
most expensive imports on the serve path (``python -X importtime``).

    python scripts/startup.py [--runs 5] [--importtime]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path


def _one_run(db: Path, cwd: Path) -> tuple[float, float]:
    started = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "operator_sim", "serve", "--port", "0", "--db", str(db)],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        line = proc.stdout.readline().strip() if proc.stdout else ""
        listening = time.perf_counter() - started
        url = line.removeprefix("listening on ") + "/readyz"
        deadline = started + 30
        while time.perf_counter() < deadline:
            try:
                with urllib.request.urlopen(url, timeout=1) as resp:  # noqa: S310 (loopback URL we printed)
                    if resp.status == 200:
                        return listening, time.perf_counter() - started
            except OSError:
                time.sleep(0.005)
        raise SystemExit(f"not ready within 30 s: {line!r}")
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def _import_profile() -> None:
    out = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", "import operator_sim.cli, operator_sim.server"],
        capture_output=True,
        text=True,
        check=True,
    ).stderr
    rows = []
    for line in out.splitlines():
        parts = line.split("|")
        if len(parts) == 3 and parts[1].strip().isdigit():
            rows.append((int(parts[1]), parts[2].rstrip()))
    total = sum(us for us, name in rows if not name.startswith("  "))  # top-level imports
    print(f"\nimports on the serve path: {total / 1e6:.3f} s cumulative; the ten largest:")
    for us, name in sorted(rows, reverse=True)[:10]:
        print(f"  {us / 1e6:7.3f} s  {name.strip()}")


def main() -> None:
    """Run the measurement and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--importtime", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        cwd = Path(tmp)
        db = cwd / "existing.db"
        _one_run(db, cwd)  # create and migrate the database once
        ready: list[float] = []
        for i in range(args.runs):
            listening, ready_at = _one_run(db, cwd)
            ready.append(ready_at)
            print(
                f"run {i + 1}: listening after {listening:.3f} s, "
                f"/readyz 200 after {ready_at:.3f} s"
            )
        print(
            f"median ready: {statistics.median(ready):.3f} s "
            f"(min {min(ready):.3f}, max {max(ready):.3f}) on {os.cpu_count()} cores"
        )
    if args.importtime:
        _import_profile()


if __name__ == "__main__":
    main()
