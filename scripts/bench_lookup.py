#!/usr/bin/env python3
"""Benchmark the server's subscriber lookup on 1,000 and on 1,000,000 seeded subscribers.

Usage: python scripts/bench_lookup.py [--sizes 1000 1000000] [--lookups 20000]

For each size, a fresh database is seeded, opened the way the server opens it, and
``store.subscribers.subscriber_standing`` (the lookup behind every identification request)
is timed on a mix of stored numbers and numbers that are not stored, in random order.
The same statement, captured from that call, is also timed on a bare ``sqlite3``
connection to show SQLite's own share, and its query plan is printed.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import random
import re
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path

from operator_sim.seeding import seed_database
from operator_sim.store import open_database, subscribers
from operator_sim.store.bulk import query_plan, sample_msisdns
from operator_sim.store.inline import raw_connection, run_batch

_ROUND = 500
"""Lookups per database before switching to the next one."""


def _percentiles(samples: list[float]) -> str:
    cuts = statistics.quantiles(samples, n=100)
    return f"p50 {cuts[49] * 1e6:7.1f} µs  p99 {cuts[98] * 1e6:7.1f} µs"


def _numbers(db: Path, lookups: int, seed: int) -> list[str]:
    rng = random.Random(seed)  # noqa: S311 (benchmark input, not secrets)
    stored = sample_msisdns(db, lookups // 2)
    # Numbers in the default fixture's ranges that are almost surely not stored.
    missing = [f"+7916{rng.randrange(10_000_000):07d}" for _ in range(lookups - len(stored))]
    numbers = [stored[i % len(stored)] for i in range(lookups // 2)] + missing
    rng.shuffle(numbers)
    return numbers


async def _capture_lookup(db: Path, msisdn: str) -> str:
    """The statement ``subscriber_standing`` runs, with its number as a parameter again."""
    await (await open_database(db)).close()  # migrated, as the server opens it
    raw = raw_connection(db)
    statements: list[str] = []
    try:
        raw.set_trace_callback(statements.append)
        run_batch(raw, [lambda conn: subscribers.subscriber_standing(conn, msisdn)], write=False)
    finally:
        raw.close()
    lookup = next(s for s in statements if "FROM subscribers" in s)
    return re.sub(r"'\+\d+'", "?", lookup)


async def _server_path(dbs: list[Path], numbers: list[list[str]]) -> list[list[float]]:
    """Time the lookups on every database, alternating in rounds.

    A lookup through aiosqlite costs a thread hop, whose latency drifts with scheduling
    over seconds; alternating the databases exposes them to the same drift.
    """
    databases = [await open_database(db) for db in dbs]
    samples: list[list[float]] = [[] for _ in dbs]
    try:
        for round_start in range(0, len(numbers[0]), _ROUND):
            for database, wanted, out in zip(databases, numbers, samples, strict=True):
                for msisdn in wanted[round_start : round_start + _ROUND]:
                    started = time.perf_counter()
                    await database.read(
                        functools.partial(subscribers.subscriber_standing, msisdn=msisdn)
                    )
                    out.append(time.perf_counter() - started)
    finally:
        for database in databases:
            await database.close()
    return samples


def _bare_sqlite(db: Path, sql: str, numbers: list[str]) -> list[float]:
    conn = sqlite3.connect(db)
    samples: list[float] = []
    try:
        for msisdn in numbers:
            started = time.perf_counter()
            conn.execute(sql, (msisdn,)).fetchone()
            samples.append(time.perf_counter() - started)
    finally:
        conn.close()
    return samples


def main() -> int:
    """Seed each size, time the lookups, print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000, 1_000_000])
    parser.add_argument("--lookups", type=int, default=20_000)
    args = parser.parse_args()

    print(f"bench_lookup: {args.lookups:,} lookups per size, half of them stored numbers")
    with tempfile.TemporaryDirectory(prefix="bench-lookup-") as tmp:
        dbs = [Path(tmp) / f"{size}.db" for size in args.sizes]
        for size, db in zip(args.sizes, dbs, strict=True):
            seed_database(db_path=db, count=size)
        pairs = zip(args.sizes, dbs, strict=True)
        numbers = [_numbers(db, args.lookups, seed=size) for size, db in pairs]
        sql = asyncio.run(_capture_lookup(dbs[0], numbers[0][0]))
        server = asyncio.run(_server_path(dbs, numbers))
        for size, db, wanted, timings in zip(args.sizes, dbs, numbers, server, strict=True):
            bare = _bare_sqlite(db, sql, wanted)
            print(f"{size:>10,} subscribers  server lookup  {_percentiles(timings)}")
            print(f"{'':>10}              bare sqlite3   {_percentiles(bare)}")
        print(f"statement: {sql}")
        print(f"plan:      {'; '.join(query_plan(dbs[-1], sql, (numbers[-1][0],)))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
