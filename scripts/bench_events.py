"""Measure event delivery: N webhook deliveries to one local receiver, and long-poll wake-up.

Starts `operator-sim serve` on a fresh database (real clock) in a subprocess and a
webhook receiver in this process, both on loopback. Creates N events (identification
answers) for a messenger with a webhook and prints how long until the receiver has
every one; then measures how soon a feed long-poll returns after an event is written.

    python scripts/bench_events.py [--events 10000] [--polls 50]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
from aiohttp import web

ADMIN = {"Authorization": "Bearer demo-admin-token-not-secret"}


async def _start_server(tmp: Path) -> tuple[asyncio.subprocess.Process, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "operator_sim",
        "serve",
        "--port",
        "0",
        "--db",
        str(tmp / "bench.db"),
        "--log-level",
        "warning",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )
    assert proc.stdout is not None  # noqa: S101 (PIPE was asked for)
    line = (await proc.stdout.readline()).decode().strip()
    return proc, line.removeprefix("listening on ")


async def _receiver(seen: set[str], done: asyncio.Event, want: int) -> tuple[web.AppRunner, str]:
    async def hook(request: web.Request) -> web.Response:
        seen.add(request.headers["webhook-id"])
        await request.read()
        if len(seen) >= want:
            done.set()
        return web.Response(status=204)

    app = web.Application()
    app.router.add_post("/hook", hook)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    return runner, f"http://{host}:{port}/hook"


async def _register(http: aiohttp.ClientSession, base: str, ident: str, url: str | None) -> str:
    body = {"id": ident, "name": ident} | ({"webhook_url": url} if url else {})
    async with http.post(f"{base}/admin/v1/messengers", json=body, headers=ADMIN) as resp:
        return str((await resp.json())["api_key"])


async def _deliveries(http: aiohttp.ClientSession, base: str, url: str, n: int) -> None:
    seen: set[str] = set()
    done = asyncio.Event()
    runner, hook_url = await _receiver(seen, done, n)
    try:
        key = await _register(http, base, "bench-hooked", hook_url)
        headers = {"Authorization": f"Bearer {key}"}
        numbers = [f"+7900{i:07d}" for i in range(1_000_000, 1_000_000 + n)]
        queue = iter(numbers)
        started = time.perf_counter()

        async def client() -> None:
            for msisdn in queue:
                async with http.post(url, json={"msisdn": msisdn}, headers=headers) as resp:
                    await resp.read()

        await asyncio.gather(*(client() for _ in range(50)))
        created = time.perf_counter() - started
        await asyncio.wait_for(done.wait(), timeout=600)
        total = time.perf_counter() - started
        print(
            f"{n:,} events created in {created:.2f} s ({n / created:,.0f} requests/s, 50 clients)"
        )
        print(
            f"{len(seen):,} distinct events delivered to one local receiver in {total:.2f} s "
            f"({len(seen) / total:,.0f} deliveries/s)"
        )
    finally:
        await runner.cleanup()


async def _long_polls(http: aiohttp.ClientSession, base: str, url: str, polls: int) -> None:
    key = await _register(http, base, "bench-poller", None)
    headers = {"Authorization": f"Bearer {key}"}
    feed = f"{base}/operators/alfa/v1/events"
    async with http.get(feed, headers=headers) as resp:
        cursor = (await resp.json())["next_cursor"]
    latencies: list[float] = []
    for i in range(polls):
        poll = asyncio.create_task(
            http.get(f"{feed}?after={cursor}", headers={**headers, "Prefer": "wait=30"})
        )
        await asyncio.sleep(0.02)  # let the poll park on the server
        async with http.post(url, json={"msisdn": f"+7900200{i:04d}"}, headers=headers) as resp:
            await resp.read()
        written = time.perf_counter()
        resp = await poll
        body = await resp.json()
        latencies.append(time.perf_counter() - written)
        cursor = body["next_cursor"]
    latencies.sort()
    p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
    print(
        f"long-poll wake after an event is written ({polls} polls): "
        f"p50 {statistics.median(latencies) * 1000:.1f} ms, p99 {p99 * 1000:.1f} ms, "
        f"max {latencies[-1] * 1000:.1f} ms"
    )


async def main() -> None:
    """Run both measurements."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=10_000)
    parser.add_argument("--polls", type=int, default=50)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        proc, base = await _start_server(Path(tmp))
        try:
            url = f"{base}/operators/alfa/v1/identification-requests"
            async with aiohttp.ClientSession() as http:
                await _deliveries(http, base, url, args.events)
                await _long_polls(http, base, url, args.polls)
        finally:
            proc.terminate()
            await proc.wait()


if __name__ == "__main__":
    asyncio.run(main())
