"""Measure what the web console's live streams cost the server.

1. Idle streams: opens ``--streams`` (1,000) console SSE connections on loopback, waits
   until every one has its greeting, then reads the server's CPU time over ``--window``
   seconds (30: two of the streams' 15-second keep-alive comments fall in it) and prints
   it as a share of one core, next to the same window with no stream open.
2. Identification POST throughput (wrk, as scripts/bench.py drives it) with no console
   open, and with one console page open and reading its stream, in interleaved rounds;
   prints the median of each and the loss. The page is the journal (``--page``), which
   every POST changes; ``overview`` (counters over the whole request table) is the
   heaviest. On a shared machine throughput drifts by tens of percent between runs, so
   the server's CPU time per request is printed too.
3. What one update of that page costs: the CPU time of rendering it in-process on the
   database the load filled, times the updates per second the page received under load,
   is the share of a core one open page takes (a stream updates at most four times a
   second, and less often on a busy server).

Needs `wrk` (Debian: `apt-get install wrk`). Every server binds 127.0.0.1.

    python scripts/bench_console.py [--streams 1000] [--window 30] [--rounds 5]
                                    [--duration 10] [--connections 50] [--page journal]
                                    [--subscribers 100000]
"""

from __future__ import annotations

import argparse
import asyncio
import html
import re
import shutil
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import aiohttp
from aiohttp.test_utils import TestClient, TestServer
from bench import IR_PATH, Load, Server, WrkResult, numbers_file, operator_sim, seed, wrk

from operator_sim.logs import configure_logging
from operator_sim.server import create_app
from operator_sim.settings import Settings


async def _signed_in(http: aiohttp.ClientSession, url: str, page: str) -> str:
    """Open a console page (the demo token signs in on loopback); its stream's URL."""
    async with http.get(f"{url}/ui/{'' if page == 'overview' else page}") as resp:
        body = await resp.text()
    found = re.search(r'sse-connect="([^"]+)"', body)
    if found is None:
        raise SystemExit(f"/ui/{page} has no live stream: is the console signed in?")
    return html.unescape(found.group(1))


async def _open_stream(http: aiohttp.ClientSession, url: str, opened: asyncio.Event) -> None:
    """Hold one stream open, reading whatever comes; ``opened`` once its greeting came."""
    async with http.get(url, timeout=aiohttp.ClientTimeout(total=None)) as resp:
        async for line in resp.content:
            if line.startswith(b"event: hello"):
                opened.set()


async def _idle_cpu(server: Server, streams: int, window: float) -> tuple[float, float, float]:
    """(CPU % of one core with no stream, with ``streams`` idle streams, seconds to open)."""
    before = server.cpu_seconds()
    await asyncio.sleep(window)
    baseline = (server.cpu_seconds() - before) / window * 100
    connector = aiohttp.TCPConnector(limit=0)
    jar = aiohttp.CookieJar(unsafe=True)  # the cookie of a 127.0.0.1 host
    async with aiohttp.ClientSession(connector=connector, cookie_jar=jar) as http:
        stream_url = server.url + await _signed_in(http, server.url, "journal")
        started = time.perf_counter()
        flags = [asyncio.Event() for _ in range(streams)]
        tasks = [asyncio.create_task(_open_stream(http, stream_url, flag)) for flag in flags]
        async with asyncio.timeout(120):
            await asyncio.gather(*(flag.wait() for flag in flags))
        opening = time.perf_counter() - started
        before = server.cpu_seconds()
        await asyncio.sleep(window)
        idle = (server.cpu_seconds() - before) / window * 100
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    return baseline, idle, opening


@dataclass
class Watcher:
    """One console page reading its stream during a load run."""

    events: int = 0
    bytes: int = 0


async def _watch(url: str, page: str, watcher: Watcher, stop: asyncio.Event) -> None:
    jar = aiohttp.CookieJar(unsafe=True)
    async with aiohttp.ClientSession(cookie_jar=jar) as http:
        stream_url = url + await _signed_in(http, url, page)
        async with http.get(stream_url, timeout=aiohttp.ClientTimeout(total=None)) as resp:
            reader = asyncio.create_task(_count(resp, watcher))
            await stop.wait()
            reader.cancel()
            await asyncio.gather(reader, return_exceptions=True)


async def _count(resp: aiohttp.ClientResponse, watcher: Watcher) -> None:
    async for line in resp.content:
        watcher.bytes += len(line)
        if line.startswith(b"event: ") and not line.startswith(b"event: hello"):
            watcher.events += 1


@dataclass
class Run:
    """One wrk run: what wrk saw, the server's CPU per request, the page's updates."""

    result: WrkResult
    cpu_ms_per_request: float
    watcher: Watcher


async def _post_run(server: Server, env: dict[str, str], load: Load, page: str | None) -> Run:
    """One wrk run (no warm-up), with a console page open (``page``) or none."""
    watcher, stop = Watcher(), asyncio.Event()
    watching = asyncio.create_task(_watch(server.url, page, watcher, stop)) if page else None
    if watching is not None:
        await asyncio.sleep(1)  # let the page open its stream before the load starts
    before = server.cpu_seconds()
    result = await asyncio.to_thread(wrk, server.url, "post_identification.lua", env, load)
    cpu = server.cpu_seconds() - before
    stop.set()
    if watching is not None:
        await watching
    return Run(result, cpu * 1000 / max(result.requests, 1), watcher)


async def _update_cost(db: Path, page: str, renders: int) -> float:
    """CPU milliseconds to render ``page`` whole (its live part and the layout around it)."""
    configure_logging("error", "json")  # the server's request lines would drown the figures
    app = create_app(Settings(db=db, clock="manual"))
    path = f"/ui/{'' if page == 'overview' else page}"
    async with TestClient(TestServer(app)) as client:
        await (await client.get(path)).read()  # signs in, warms the template cache
        started = time.process_time()
        for _ in range(renders):
            async with client.get(path) as resp:
                await resp.read()
        return (time.process_time() - started) / renders * 1000


def main() -> None:
    """Run both measurements and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--streams", type=int, default=1000)
    parser.add_argument("--window", type=float, default=30.0, help="seconds of idle CPU")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved POST rounds")
    parser.add_argument("--duration", type=int, default=10, help="seconds per wrk run")
    parser.add_argument("--warmup", type=int, default=2, help="seconds of warm-up per run")
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument("--page", default="journal", choices=["journal", "overview", "rules"])
    parser.add_argument("--subscribers", type=int, default=100_000)
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is missing: install it with `apt-get install wrk` (Debian)")
    load = Load(args.connections, args.duration, 1, args.warmup)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        db = work / "console.db"
        seed(db, args.subscribers, work)
        numbers_file(db, work / "numbers.txt")
        env = {"OPSIM_NUMBERS": str(work / "numbers.txt"), "OPSIM_PATH": IR_PATH}

        server = operator_sim(db, work)
        try:
            baseline, idle, opening = asyncio.run(_idle_cpu(server, args.streams, args.window))
            print(f"no stream open:            {baseline:5.2f}% of one core over {args.window:g} s")
            print(
                f"{args.streams:,} idle console streams: {idle:5.2f}% of one core over "
                f"{args.window:g} s (opened in {opening:.1f} s), peak RSS "
                f"{server.peak_rss_mb():.1f} MB"
            )
        finally:
            server.stop()

        server = operator_sim(db, work)
        try:
            # One warm-up for the whole series; the rounds then run without one, so that
            # the CPU time read around a run belongs to the requests it counts.
            wrk(server.url, "post_identification.lua", env, load)
            bare_load = Load(load.connections, load.duration, load.threads, 0)
            alone_runs, watched_runs = [], []
            for round_ in range(1, args.rounds + 1):
                alone = asyncio.run(_post_run(server, env, bare_load, None))
                watched = asyncio.run(_post_run(server, env, bare_load, args.page))
                alone_runs.append(alone)
                watched_runs.append(watched)
                print(
                    f"[{round_}] POST, no console    {alone.result.line()}   "
                    f"{alone.cpu_ms_per_request:.3f} ms CPU/request"
                )
                print(
                    f"[{round_}] POST, /ui/{args.page} open {watched.result.line()}   "
                    f"{watched.cpu_ms_per_request:.3f} ms CPU/request   the page got "
                    f"{watched.watcher.events} updates, {watched.watcher.bytes / 1024:.0f} KiB"
                )
        finally:
            server.stop()
        update_ms = asyncio.run(_update_cost(db, args.page, 100))

    alone_rps = statistics.median(r.result.rps for r in alone_runs)
    watched_rps = statistics.median(r.result.rps for r in watched_runs)
    loss = (1 - watched_rps / alone_rps) * 100
    alone_cpu = statistics.median(r.cpu_ms_per_request for r in alone_runs)
    watched_cpu = statistics.median(r.cpu_ms_per_request for r in watched_runs)
    cpu_loss = (1 - alone_cpu / watched_cpu) * 100
    per_second = statistics.median(r.watcher.events / args.duration for r in watched_runs)
    print("\nsummary (targets in brackets)")
    print(
        f"  {args.streams:,} idle streams: {idle:.2f}% of one core  (< 5; {baseline:.2f}% "
        "with none)"
    )
    print(
        f"  POST throughput: {alone_rps:,.0f} req/s alone, {watched_rps:,.0f} req/s with "
        f"/ui/{args.page} open ({per_second:.1f} updates/s): loss {loss:.1f}%  (<= 5; median "
        f"of {args.rounds} interleaved rounds)"
    )
    print(
        f"  server CPU per request: {alone_cpu:.3f} ms alone, {watched_cpu:.3f} ms with the "
        f"page open: capacity loss {cpu_loss:.1f}%  (<= 5)"
    )
    share = per_second * update_ms / 10
    print(
        f"  one update of /ui/{args.page}: {update_ms:.1f} ms CPU (page included); at "
        f"{per_second:.1f} updates/s under load the open page takes {share:.2f}% of a core  (<= 5)"
    )


if __name__ == "__main__":
    main()
