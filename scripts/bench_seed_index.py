#!/usr/bin/env python3
"""What an index by operator costs seeding: none, the partial index, and a full one.

Usage: python scripts/bench_seed_index.py [--count 500000] [--runs 5]

Seeds ``--count`` subscribers into fresh databases of the current schema in three
variants: without the partial index ``subscribers_unseeded`` (dropped), as shipped (the
partial index, which seeded rows never enter), and with an index of every record by
operator besides (what the operator filter would use if there were no partial index).
The variants take turns, in a rotating order, ``--runs`` times each, and the script prints
every run and the medians of the CPU time of the seeding process and of the wall time.
CPU time is the steadier figure on a shared machine: it does not count the time other
jobs held the processor.
"""

from __future__ import annotations

import argparse
import resource
import sqlite3
import statistics
import sys
import tempfile
from pathlib import Path

from operator_sim.seeding import seed_database
from operator_sim.store.bulk import prepare_database

VARIANTS = {
    "no index": "DROP INDEX subscribers_unseeded",
    "partial index (shipped)": "",
    "full index": "CREATE INDEX subscribers_operator ON subscribers (operator_id, msisdn)",
}


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _run(db: Path, change: str, count: int) -> tuple[float, float]:
    prepare_database(db)
    if change:
        conn = sqlite3.connect(db)
        try:
            conn.execute(change)
        finally:
            conn.close()
    before = _cpu_seconds()
    summary = seed_database(db_path=db, count=count)
    return _cpu_seconds() - before, summary.seconds


def main() -> int:
    """Seed every variant in turn and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--count", type=int, default=500_000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    print(
        f"bench_seed_index: {args.count:,} rows, {args.runs} runs per variant, "
        f"SQLite {sqlite3.sqlite_version}"
    )
    names = list(VARIANTS)
    cpu: dict[str, list[float]] = {name: [] for name in names}
    wall: dict[str, list[float]] = {name: [] for name in names}
    with tempfile.TemporaryDirectory(prefix="bench-seed-index-") as tmp:
        for run in range(args.runs):
            for name in names[run % len(names) :] + names[: run % len(names)]:
                db = Path(tmp) / f"run{run}.db"
                spent_cpu, spent_wall = _run(db, VARIANTS[name], args.count)
                cpu[name].append(spent_cpu)
                wall[name].append(spent_wall)
                print(f"  {name:<24} cpu {spent_cpu:6.2f} s  wall {spent_wall:6.2f} s", flush=True)
                for leftover in Path(tmp).glob(f"{db.name}*"):
                    leftover.unlink()
    base = statistics.median(cpu[names[0]])
    for name in names:
        middle = statistics.median(cpu[name])
        print(
            f"{name:<24} median cpu {middle:6.2f} s ({middle / base - 1:+.0%})  "
            f"median wall {statistics.median(wall[name]):6.2f} s"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
