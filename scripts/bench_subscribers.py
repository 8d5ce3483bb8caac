#!/usr/bin/env python3
"""Benchmark browsing subscribers over HTTP: pages and samples at 1k to 10M subscribers.

Usage: python scripts/bench_subscribers.py [--sizes 1000 100000 1000000 10000000]
                                           [--calls 200] [--limit 100] [--db PATH]

One database grows from the smallest size to the largest: each step seeds the missing
subscribers with ``operator_sim.seeding.seed_database`` (as ``operator-sim seed`` does;
10,000,000 take minutes; ``--db`` keeps the database, and a later run on it seeds only
what is missing), then starts the server on it in-process on a loopback port and
times ``GET /admin/v1/subscribers`` and ``GET /admin/v1/subscribers/sample`` through HTTP
with aiohttp, one call at a time: for each query, ``--calls`` pages at random depths (an
``after`` drawn at random in the fixture's ranges), or samples with random seeds. It prints
p50 and p99 per query and size, and the query plans of the listing's statements.

``status`` and ``data_complete`` are checked on the records a page walks past, so a rare
value (a tenth of the records are terminated here) makes a page walk about ten times as
many records as it returns: its time grows with that ratio, not with the table.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import random
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path

import aiohttp
from aiohttp import web

from operator_sim.logs import configure_logging
from operator_sim.seeding import FAKER_VERSION, seed_database
from operator_sim.server import create_app
from operator_sim.settings import Settings
from operator_sim.store import subscribers
from operator_sim.store.bulk import query_plan
from operator_sim.store.inline import raw_connection, run_batch
from operator_sim.store.subscribers import SubscriberFilter, number_spans

ADMIN = {"Authorization": "Bearer demo-admin-token-not-secret"}
QUERIES: tuple[tuple[str, str, Mapping[str, str]], ...] = (
    ("list", "unfiltered", {}),
    ("list", "operator_id=beta", {"operator_id": "beta"}),
    ("list", "msisdn_prefix=+7916", {"msisdn_prefix": "+7916"}),
    (
        "list",
        "operator_id=gamma&msisdn_prefix=+7929",
        {"operator_id": "gamma", "msisdn_prefix": "+7929"},
    ),
    ("list", "status=terminated", {"status": "terminated"}),
    ("list", "data_complete=false", {"data_complete": "false"}),
    ("sample", "n=100", {"n": "100"}),
    ("sample", "n=100&operator_id=delta", {"n": "100", "operator_id": "delta"}),
)


def _after(rng: random.Random, query: Mapping[str, str]) -> str:
    """A random cursor where the query's records are (a number, stored or not)."""
    prefix = query.get("msisdn_prefix")
    if prefix is not None:
        return prefix + "".join(str(rng.randrange(10)) for _ in range(12 - len(prefix)))
    # The default fixture's ranges start with +79 and hold numbers of 12 characters.
    return f"+79{rng.randrange(100_000_000, 1_000_000_000)}"


def _percentiles(samples: list[float]) -> str:
    cuts = statistics.quantiles(samples, n=100)
    return f"p50 {cuts[49] * 1e3:7.2f} ms  p99 {cuts[98] * 1e3:7.2f} ms"


async def _time(
    session: aiohttp.ClientSession,
    url: str,
    kind: str,
    query: Mapping[str, str],
    *,
    calls: int,
    limit: int,
    rng: random.Random,
) -> tuple[list[float], int]:
    samples: list[float] = []
    returned = 0
    for _ in range(calls):
        if kind == "list":
            params = {**query, "limit": str(limit), "after": _after(rng, query)}
            path = "/admin/v1/subscribers"
        else:
            params = {**query, "seed": str(rng.randrange(1 << 62))}
            path = "/admin/v1/subscribers/sample"
        started = time.perf_counter()
        async with session.get(f"{url}{path}", params=params, headers=ADMIN) as resp:
            body = await resp.json()
        samples.append(time.perf_counter() - started)
        if resp.status != 200:
            raise SystemExit(f"{path} {params}: {resp.status} {body}")
        returned += len(body["subscribers"])
    return samples, returned


async def _measure(db: Path, size: int, *, calls: int, limit: int) -> None:
    app = create_app(Settings(db=db, clock="manual"))
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    try:
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        url = f"http://127.0.0.1:{runner.addresses[0][1]}"
        rng = random.Random(size)  # noqa: S311 (benchmark input, not secrets)
        async with aiohttp.ClientSession() as session:
            await _time(session, url, "list", {}, calls=20, limit=limit, rng=rng)  # warm-up
            for kind, name, query in QUERIES:
                samples, returned = await _time(
                    session, url, kind, query, calls=calls, limit=limit, rng=rng
                )
                label = f"{kind} {name}"
                print(
                    f"{size:>11,}  {label:<46} {_percentiles(samples)}  "
                    f"({returned / calls:.0f} records a call)",
                    flush=True,
                )
    finally:
        await runner.cleanup()


def _plans(db: Path) -> None:
    """The plan of every statement the store runs for a page, with and without an operator."""
    selections = {
        "unfiltered": SubscriberFilter(),
        "operator_id=beta": SubscriberFilter(operator_id="beta"),
    }
    spans = number_spans([(79100000000, 79199999999), (79800000000, 79899999999)])
    for name, selection in selections.items():
        raw = raw_connection(db)
        statements: list[str] = []
        try:
            raw.set_trace_callback(statements.append)
            page = functools.partial(
                subscribers.list_subscribers,
                selection=selection,
                after="+79100000000",
                limit=101,
                operator_spans=spans,
            )
            run_batch(raw, [page], write=False)
        finally:
            raw.close()
        for sql in statements:
            if "FROM subscribers" in sql:
                print(f"plan ({name}): {'; '.join(query_plan(db, sql))}")


def _count(db: Path) -> int:
    conn = sqlite3.connect(db)
    try:
        return int(
            conn.execute("SELECT count(*) FROM subscribers WHERE source = 'seed'").fetchone()[0]
        )
    finally:
        conn.close()


def main() -> int:
    """Grow the database size by size and time the listing at each."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "--sizes", type=int, nargs="+", default=[1_000, 100_000, 1_000_000, 10_000_000]
    )
    parser.add_argument("--calls", type=int, default=200, help="calls per query and size")
    parser.add_argument("--limit", type=int, default=100, help="page size")
    parser.add_argument("--db", type=Path, help="grow (and keep) this database file")
    args = parser.parse_args()
    configure_logging("warning", "json")  # a log line per request would be timed too
    print(
        f"bench_subscribers: sizes {', '.join(f'{s:,}' for s in args.sizes)}; {args.calls} "
        f"calls per query, pages of {args.limit}, one at a time over HTTP; seeded with 10% "
        f"incomplete and 10% terminated; SQLite {sqlite3.sqlite_version}, Faker {FAKER_VERSION}"
    )
    with tempfile.TemporaryDirectory(prefix="bench-subscribers-") as tmp:
        db = args.db or Path(tmp) / "subscribers.db"
        for step, size in enumerate(sorted(args.sizes)):
            missing = size - _count(db) if db.exists() else size
            if missing < 0:
                raise SystemExit(f"{db} holds more than {size:,} seeded subscribers")
            if missing:
                summary = seed_database(
                    db_path=db,
                    count=missing,
                    seed=1801 + step,
                    incomplete_share=0.1,
                    terminated_share=0.1,
                )
                print(
                    f"seeded {missing:,} more in {summary.seconds:.1f} s "
                    f"({summary.rows_per_second:,.0f} rows/s)",
                    flush=True,
                )
            asyncio.run(_measure(db, size, calls=args.calls, limit=args.limit))
        _plans(db)
    return 0


if __name__ == "__main__":
    sys.exit(main())
