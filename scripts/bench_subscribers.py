#!/usr/bin/env python3
"""Benchmark browsing subscribers over HTTP: pages and samples at 1k to 10M subscribers.

Usage: python scripts/bench_subscribers.py [--sizes 1000 100000 1000000 10000000]
                                           [--calls 200] [--limit 100] [--dir DIR]
                                           [--kinds list sample console]

One database per size is seeded with ``operator_sim.seeding.seed_database`` (as
``operator-sim seed`` does; 10,000,000 take minutes and about 8 GB; ``--dir`` keeps the
databases, and a later run seeds only what is missing). A server is started on each, in
process on loopback ports, and ``GET /admin/v1/subscribers`` and
``GET /admin/v1/subscribers/sample`` are timed through HTTP with aiohttp, one call at a
time: pages at random depths (an ``after`` drawn at random in the fixture's ranges), and
samples with random seeds; ``console`` is the web console's list (``GET /ui/subscribers``:
the same listing, 50 a page, as HTML) at random depths. The sizes take turns, ten calls
each, until every size had ``--calls`` calls of a query: the speed of a shared machine
drifts within seconds, and taking turns exposes every size to the same drift. It prints
p50 and p99 per query and size, and the query plans of the listing's statements.

``status`` and ``data_complete`` are checked on the records a page walks past, so a rare
value (a tenth of the records are terminated here) makes a page walk about ten times as
many records as it returns: its time grows with that ratio, not with the table.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import json
import random
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Mapping
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
    ("console", "unfiltered", {}),
    ("console", "operator_id=beta", {"operator_id": "beta"}),
    ("console", "msisdn_prefix=+7916", {"msisdn_prefix": "+7916"}),
)
KINDS = ("list", "sample", "console")
_ROW = 'data-testid="subscriber-row"'
"""How a subscriber is marked in the console's list."""
_TURN = 10
"""Calls of one size before the next size's turn."""


def _after(rng: random.Random, query: Mapping[str, str]) -> str:
    """A random cursor where the query's records are (a number, stored or not)."""
    prefix = query.get("msisdn_prefix")
    if prefix is not None:
        return prefix + "".join(str(rng.randrange(10)) for _ in range(12 - len(prefix)))
    # The default fixture's ranges start with +79 and hold numbers of 12 characters.
    return f"+79{rng.randrange(100_000_000, 1_000_000_000)}"


def _percentiles(samples: list[float]) -> str:
    cuts = statistics.quantiles(samples, n=100)
    return f"p50 {cuts[49] * 1e3:6.2f} ms  p99 {cuts[98] * 1e3:6.2f} ms"


async def _call(
    session: aiohttp.ClientSession,
    url: str,
    kind: str,
    query: Mapping[str, str],
    *,
    limit: int,
    rng: random.Random,
) -> tuple[float, int]:
    """One timed call: its duration and how many subscribers it returned."""
    if kind == "list":
        params = {**query, "limit": str(limit), "after": _after(rng, query)}
        path = "/admin/v1/subscribers"
    elif kind == "console":
        params = {**query, "after": _after(rng, query)}
        path = "/ui/subscribers"
    else:
        params = {**query, "seed": str(rng.randrange(1 << 62))}
        path = "/admin/v1/subscribers/sample"
    started = time.perf_counter()
    async with session.get(f"{url}{path}", params=params, headers=ADMIN) as resp:
        text = await resp.text()
    spent = time.perf_counter() - started
    if resp.status != 200:
        raise SystemExit(f"{path} {params}: {resp.status} {text[:500]}")
    if kind == "console":
        return spent, text.count(_ROW)
    return spent, len(json.loads(text)["subscribers"])


@contextlib.asynccontextmanager
async def _server(db: Path) -> AsyncIterator[str]:
    runner = web.AppRunner(create_app(Settings(db=db, clock="manual")), access_log=None)
    await runner.setup()
    try:
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    finally:
        await runner.cleanup()


async def _measure(dbs: dict[int, Path], *, calls: int, limit: int, kinds: frozenset[str]) -> None:
    rng = random.Random(1801)  # noqa: S311 (benchmark input, not secrets)
    # The console signs in on loopback with the demo token; its cookie is kept for an IP.
    jar = aiohttp.CookieJar(unsafe=True)
    async with (
        contextlib.AsyncExitStack() as stack,
        aiohttp.ClientSession(cookie_jar=jar) as session,
    ):
        urls = {size: await stack.enter_async_context(_server(db)) for size, db in dbs.items()}
        for url in urls.values():  # warm-up
            for _ in range(_TURN):
                await _call(session, url, "list", {}, limit=limit, rng=rng)
                await _call(session, url, "console", {}, limit=limit, rng=rng)
        for kind, name, query in QUERIES:
            if kind not in kinds:
                continue
            samples: dict[int, list[float]] = {size: [] for size in urls}
            returned = dict.fromkeys(urls, 0)
            while any(len(s) < calls for s in samples.values()):
                for size, url in urls.items():
                    for _ in range(min(_TURN, calls - len(samples[size]))):
                        spent, count = await _call(session, url, kind, query, limit=limit, rng=rng)
                        samples[size].append(spent)
                        returned[size] += count
            for size in urls:
                label = f"{kind} {name}"
                print(
                    f"{label:<44} {size:>11,}  {_percentiles(samples[size])}  "
                    f"({returned[size] / calls:.0f} a call)",
                    flush=True,
                )


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
                after="+79150000000",
                limit=101,
                operator_spans=spans,
            )
            run_batch(raw, [page], write=False)
        finally:
            raw.close()
        for sql in statements:
            if "FROM subscribers" in sql:
                print(f"plan ({name}): {'; '.join(query_plan(db, sql))}")


def _seeded(db: Path) -> int:
    if not db.exists():
        return 0
    conn = sqlite3.connect(db)
    try:
        row = conn.execute("SELECT count(*) FROM subscribers WHERE source = 'seed'").fetchone()
        return int(row[0])
    finally:
        conn.close()


def main() -> int:
    """Seed a database per size, then time the listing on all of them, taking turns."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "--sizes", type=int, nargs="+", default=[1_000, 100_000, 1_000_000, 10_000_000]
    )
    parser.add_argument("--calls", type=int, default=200, help="calls per query and size")
    parser.add_argument("--limit", type=int, default=100, help="page size")
    parser.add_argument("--dir", type=Path, help="keep (and reuse) the databases here")
    parser.add_argument("--kinds", nargs="+", choices=KINDS, default=list(KINDS))
    args = parser.parse_args()
    configure_logging("warning", "json")  # a log line per request would be timed too
    print(
        f"bench_subscribers: sizes {', '.join(f'{s:,}' for s in args.sizes)}; {args.calls} "
        f"calls per query and size, pages of {args.limit}, one at a time over HTTP; seeded "
        f"with 10% incomplete and 10% terminated; SQLite {sqlite3.sqlite_version}, "
        f"Faker {FAKER_VERSION}"
    )
    with tempfile.TemporaryDirectory(prefix="bench-subscribers-") as tmp:
        where = args.dir or Path(tmp)
        where.mkdir(parents=True, exist_ok=True)
        dbs = {size: where / f"subscribers-{size}.db" for size in sorted(args.sizes)}
        for size, db in dbs.items():
            missing = size - _seeded(db)
            if missing < 0:
                raise SystemExit(f"{db} holds more than {size:,} seeded subscribers")
            if missing:
                summary = seed_database(
                    db_path=db, count=missing, incomplete_share=0.1, terminated_share=0.1
                )
                print(
                    f"seeded {missing:,} into {db.name} in {summary.seconds:.1f} s "
                    f"({summary.rows_per_second:,.0f} rows/s)",
                    flush=True,
                )
        asyncio.run(_measure(dbs, calls=args.calls, limit=args.limit, kinds=frozenset(args.kinds)))
        _plans(dbs[max(dbs)])
    return 0


if __name__ == "__main__":
    sys.exit(main())
