#!/usr/bin/env python3
"""Benchmark seeding: Faker generation, the insert alone, end to end, and plain sqlite3.

Usage: python scripts/bench_seed.py [--count 1000000] [--seed 1801] [--fixture PATH]

Every phase works on a fresh database in a temporary directory. The end-to-end run
goes first, so the peak RSS printed after it is the seeding run's own (the later
phases also hold one batch at a time). The plain-sqlite3 baseline inserts exactly the
rows seeding writes, in the same order and batches, with nothing else: the ratio is
what generation, number drawing and bookkeeping add on top of SQLite's own work.
"""

from __future__ import annotations

import argparse
import platform
import resource
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

from operator_sim.seeding import (
    DEFAULT_BATCH_SIZE,
    DEFAULT_SEED,
    FAKER_VERSION,
    generate_rows,
    seed_database,
)
from operator_sim.store.bulk import INSERT_SUBSCRIBERS, BulkWriter, prepare_database


def _peak_rss_mib() -> float:
    # ru_maxrss is KiB on Linux (bytes on macOS).
    scale = 1 / (1024 * 1024) if sys.platform == "darwin" else 1 / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale


def _rate(rows: int, seconds: float) -> str:
    return f"{rows / seconds:>12,.0f} rows/s  ({seconds:6.2f} s)"


def _generation(count: int, seed: int, fixture: Path | None) -> float:
    started = time.perf_counter()
    for _batch in generate_rows(count=count, seed=seed, fixture_path=fixture):
        pass
    return time.perf_counter() - started


def _insert_only(db: Path, count: int, seed: int, fixture: Path | None) -> float:
    prepare_database(db)
    spent = 0.0
    with BulkWriter(db) as writer:
        for batch in generate_rows(count=count, seed=seed, fixture_path=fixture):
            started = time.perf_counter()
            with writer.transaction():
                writer.insert_subscribers(batch)
            spent += time.perf_counter() - started
    return spent


def _plain_sqlite3(db: Path, count: int, seed: int, fixture: Path | None) -> float:
    prepare_database(db)  # the same schema; creating it is not part of the timing
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("PRAGMA synchronous = NORMAL")
    spent = 0.0
    try:
        for batch in generate_rows(count=count, seed=seed, fixture_path=fixture):
            started = time.perf_counter()
            conn.execute("BEGIN")
            conn.executemany(INSERT_SUBSCRIBERS, batch)
            conn.execute("COMMIT")
            spent += time.perf_counter() - started
    finally:
        conn.close()
    return spent


def main() -> int:
    """Run every phase and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--count", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument("--fixture", type=Path)
    args = parser.parse_args()
    count, seed, fixture = args.count, args.seed, args.fixture

    print(
        f"bench_seed: {count:,} rows, seed {seed}, batch {DEFAULT_BATCH_SIZE:,}, "
        f"Python {platform.python_version()}, SQLite {sqlite3.sqlite_version}, "
        f"Faker {FAKER_VERSION}"
    )
    with tempfile.TemporaryDirectory(prefix="bench-seed-") as tmp:
        work = Path(tmp)
        summary = seed_database(
            db_path=work / "e2e.db", count=count, seed=seed, fixture_path=fixture
        )
        end_to_end = summary.seconds
        rss = _peak_rss_mib()
        generation = _generation(count, seed, fixture)
        insert = _insert_only(work / "insert.db", count, seed, fixture)
        plain = _plain_sqlite3(work / "plain.db", count, seed, fixture)

    print(f"generation (Faker)     {_rate(count, generation)}")
    print(f"insert only            {_rate(count, insert)}")
    print(f"end to end             {_rate(count, end_to_end)}")
    print(f"plain sqlite3 insert   {_rate(count, plain)}")
    print(f"end to end / plain sqlite3: {end_to_end / plain:.2f}x")
    print(f"peak RSS after the end-to-end run: {rss:.0f} MiB")
    print(summary.line())
    return 0


if __name__ == "__main__":
    sys.exit(main())
