"""Measure operator-sim against the aiohttp ceiling, in one run, with the same load generator.

Starts (a) a bare aiohttp app with one JSON POST endpoint (scripts/bench_bare.py) and
(b) operator-sim on a fresh database seeded with 1,000,000 subscribers, drives both with
`wrk` (Lua scripts in scripts/wrk/) at 50 connections for a fixed time, and prints for
each workload requests/s, p50/p99 latency, errors and the server's peak RSS, then the
ratio operator-sim / bare. Then the cost of the default log level: operator-sim as users
run it (`info`, one JSON line per request, stderr redirected to a file so writing is
counted) against the same server at `--log-level warning`, on a copy of the same database.
Also: GET of an answered request, code registration, an SMS send through the gateway (a
one-time code to one of 50,000 numbers, so that the per-number throttle stays out of the
way), CPU of 1,000 idle long-poll waiters,
point-lookup latency at 1,000 vs 1,000,000 subscribers, and start-up time on an existing
database.

The POST comparison runs in interleaved rounds (bare, then operator-sim at `warning` and at
`info`, again and again; the two log levels swap places every round) and reports the
median ratios: a shared machine's speed drifts by tens of percent
over a minute, and interleaving exposes both servers to the same drift. Every wrk run
is preceded by a short warm-up whose figures are discarded. The bare app runs on
asyncio's own loop (the baseline); when uvloop is installed it is also measured on
uvloop, for information. wrk runs one thread by default: on a 2-core machine a second
one only competes with the server for the cores.

Needs `wrk` (Debian: `apt-get install wrk`). Every server binds 127.0.0.1.

    python scripts/bench.py [--duration 10] [--rounds 5] [--connections 50]
                            [--subscribers 1000000] [--threads 1] [--warmup 2]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

import aiohttp

SCRIPTS = Path(__file__).resolve().parent
WRK_DIR = SCRIPTS / "wrk"
KEY = "demo-messenger-key-not-secret"
ADMIN = {"Authorization": "Bearer demo-admin-token-not-secret"}
IR_PATH = "/operators/alfa/v1/identification-requests"
SMS_PATH = "/sms/v1/messages"


@dataclass
class Server:
    """A server process and its base URL."""

    proc: subprocess.Popen[str]
    url: str

    def peak_rss_mb(self) -> float:
        """VmHWM of the process, in MB."""
        status = Path(f"/proc/{self.proc.pid}/status").read_text()
        kb = int(re.search(r"VmHWM:\s+(\d+) kB", status).group(1))  # type: ignore[union-attr]
        return kb / 1024

    def cpu_seconds(self) -> float:
        """User + system CPU time used so far."""
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        """Terminate and wait."""
        self.proc.terminate()
        self.proc.wait(timeout=60)


def start(
    argv: list[str], cwd: Path, env: dict[str, str] | None = None, stderr: Path | None = None
) -> Server:
    """Start a server that prints `listening on URL` and wait for that line.

    Its stderr (the log) goes to the file ``stderr`` if given, else to /dev/null.
    """
    err = stderr.open("ab") if stderr else None
    proc = subprocess.Popen(
        argv,
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=err or subprocess.DEVNULL,
        text=True,
        env={**os.environ, **(env or {})},
    )
    if err:
        err.close()  # the child holds its own descriptor
    line = proc.stdout.readline().strip() if proc.stdout else ""
    if not line.startswith("listening on "):
        proc.kill()
        raise SystemExit(f"server did not start: {argv!r} said {line!r}")
    return Server(proc, line.removeprefix("listening on "))


def operator_sim(db: Path, cwd: Path, log: Path | None = None) -> Server:
    """operator-sim on ``db``: quiet logs, or with ``log`` as users run it (the default
    level, stderr redirected to that file, so JSON lines)."""
    level = [] if log else ["--log-level", "warning"]
    return start(
        [
            sys.executable,
            "-m",
            "operator_sim",
            "serve",
            "--port",
            "0",
            "--db",
            str(db),
            *level,
        ],
        cwd,
        stderr=log,
    )


@dataclass
class WrkResult:
    """What wrk printed, parsed."""

    rps: float
    p50_ms: float
    p99_ms: float
    errors: int
    requests: int
    cpu_us: float | None = None
    """The server's CPU time per request, when the server was given: steadier than
    requests/s on a shared machine, since another process's load slows it less."""

    def line(self) -> str:
        """One readable line."""
        cpu = f"   CPU {self.cpu_us:6.1f} us/req" if self.cpu_us is not None else ""
        return (
            f"{self.rps:9,.0f} req/s   p50 {self.p50_ms:7.2f} ms   p99 {self.p99_ms:7.2f} ms"
            f"   errors {self.errors}{cpu}"
        )


def _ms(value: str) -> float:
    number, unit = re.fullmatch(r"([\d.]+)(us|ms|s|m)", value).groups()  # type: ignore[union-attr]
    return float(number) * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}[unit]


@dataclass(frozen=True)
class Load:
    """How wrk drives every run."""

    connections: int
    duration: int
    threads: int
    warmup: int


def _run_wrk(
    url: str, script: str, env: dict[str, str], connections: int, seconds: int, threads: int
) -> str:
    return subprocess.run(
        [
            "wrk",
            f"-t{threads}",
            f"-c{connections}",
            f"-d{seconds}s",
            "--latency",
            "-s",
            str(WRK_DIR / script),
            url,
        ],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "OPSIM_WRK_DIR": str(WRK_DIR), "OPSIM_KEY": KEY, **env},
    ).stdout


def wrk(
    url: str,
    script: str,
    env: dict[str, str],
    load: Load,
    *,
    connections: int | None = None,
    duration: int | None = None,
    server: Server | None = None,
) -> WrkResult:
    """Warm up, then run wrk with a Lua script and parse its report (with the CPU time
    ``server`` used per request, if given)."""
    c = connections or load.connections
    threads = min(load.threads, c)
    if load.warmup:
        _run_wrk(url, script, env, c, load.warmup, threads)
    cpu_before = server.cpu_seconds() if server else 0.0
    out = _run_wrk(url, script, env, c, duration or load.duration, threads)
    cpu = server.cpu_seconds() - cpu_before if server else None
    requests = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    latency = dict(re.findall(r"^\s+(50|99)%\s+(\S+)$", out, re.M))
    errors = sum(int(n) for n in re.findall(r"(?:connect|read|write|timeout) (\d+)", out))
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return WrkResult(
        rps=float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),  # type: ignore[union-attr]
        p50_ms=_ms(latency["50"]),
        p99_ms=_ms(latency["99"]),
        errors=errors + (int(non_2xx.group(1)) if non_2xx else 0),
        requests=requests,
        cpu_us=cpu / requests * 1e6 if cpu is not None and requests else None,
    )


def seed(db: Path, count: int, cwd: Path) -> None:
    """Fill a fresh database through `operator-sim seed`."""
    subprocess.run(
        [sys.executable, "-m", "operator_sim", "seed", "--db", str(db), "--count", str(count)],
        cwd=cwd,
        check=True,
        stdout=subprocess.DEVNULL,
    )


def copy_db(src: Path, dst: Path) -> None:
    """A consistent copy of a database (SQLite's online backup)."""
    with closing(sqlite3.connect(src)) as source, closing(sqlite3.connect(dst)) as target:
        source.backup(target)


def numbers_file(db: Path, path: Path, n: int = 2000) -> None:
    """Half present (active, complete, at alfa) and half absent numbers, shuffled; the same
    ones for the same database."""
    with sqlite3.connect(db) as conn:
        eligible = [
            r[0]
            for r in conn.execute(
                "SELECT msisdn FROM subscribers WHERE operator_id = 'alfa' AND status = 'active' "
                "AND data_complete = 1 AND source = 'seed' ORDER BY msisdn"
            )
        ]
        stored = {r[0] for r in conn.execute("SELECT msisdn FROM subscribers")} if n else set()
    rng = random.Random(1801)  # noqa: S311 (test data)
    present = rng.sample(eligible, min(n // 2, len(eligible)))
    absent: list[str] = []
    while len(absent) < n // 2:
        candidate = f"+7900{rng.randrange(10_000_000):07d}"
        if candidate not in stored:
            absent.append(candidate)
    mixed = present + absent
    rng.shuffle(mixed)
    path.write_text("\n".join(mixed) + "\n")


def sms_numbers_file(db: Path, path: Path, n: int = 50_000) -> None:
    """Numbers to send codes to: subscribers of every kind (delivered, undelivered) and
    numbers without a record, enough that --sms-throttle (per number) rarely refuses."""
    with sqlite3.connect(db) as conn:
        stored = [
            r[0]
            for r in conn.execute(
                "SELECT msisdn FROM subscribers WHERE source = 'seed' ORDER BY random() LIMIT ?",
                (n * 3 // 4,),
            )
        ]
    rng = random.Random(1801)  # noqa: S311 (test data)
    unknown = [f"+7901{rng.randrange(10_000_000):07d}" for _ in range(n - len(stored))]
    mixed = stored + unknown
    rng.shuffle(mixed)
    path.write_text("\n".join(mixed) + "\n")


async def _create(url: str, numbers: list[str], n: int) -> list[str]:
    ids: list[str] = []
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {KEY}"}) as http:
        for msisdn in numbers[:n]:
            async with http.post(f"{url}{IR_PATH}", json={"msisdn": msisdn}) as resp:
                ids.append((await resp.json())["id"])
    return ids


async def _idle_waiters(url: str, waiters: int, seconds: float, server: Server) -> float:
    """CPU share of one core the server spends while ``waiters`` long polls are parked."""
    per = 50
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as http:
        keys = []
        for i in range((waiters + per - 1) // per):
            async with http.post(
                f"{url}/admin/v1/messengers",
                headers=ADMIN,
                json={"id": f"idle-{i}", "name": f"Idle {i}"},
            ) as resp:
                keys.append((await resp.json())["api_key"])
        polls = [
            asyncio.create_task(
                http.get(
                    f"{url}/operators/alfa/v1/events?after=c{10**9:x}",
                    headers={"Authorization": f"Bearer {keys[i // per]}", "Prefer": "wait=60"},
                )
            )
            for i in range(waiters)
        ]
        await asyncio.sleep(2)  # let every poll park
        before = server.cpu_seconds()
        await asyncio.sleep(seconds)
        used = server.cpu_seconds() - before
        for poll in polls:
            poll.cancel()
        await asyncio.gather(*polls, return_exceptions=True)
    return used / seconds * 100


def startup_seconds(db: Path, cwd: Path, runs: int = 5) -> float:
    """Median time from spawning `serve --port 0` to the first 200 from /readyz."""
    import urllib.request

    times = []
    for _ in range(runs):
        started = time.perf_counter()
        server = operator_sim(db, cwd)
        while True:
            try:
                with urllib.request.urlopen(f"{server.url}/readyz", timeout=1) as resp:  # noqa: S310 (loopback)
                    if resp.status == 200:
                        break
            except OSError:
                time.sleep(0.002)
        times.append(time.perf_counter() - started)
        server.stop()
    return statistics.median(times)


def _request_lines(log: Path) -> tuple[int, int]:
    """How many canonical request lines the log holds, and how many lines are not JSON."""
    requests = not_json = 0
    with log.open("rb") as lines:
        for line in lines:
            try:
                requests += json.loads(line).get("event") == "request"
            except ValueError:
                not_json += 1
    return requests, not_json


def _bare(work: Path, env: dict[str, str], load: Load, *, uvloop: bool) -> tuple[WrkResult, float]:
    argv = [sys.executable, str(SCRIPTS / "bench_bare.py"), *(["--uvloop"] if uvloop else [])]
    bare = start(argv, work)
    try:
        return wrk(bare.url, "post_identification.lua", env, load), bare.peak_rss_mb()
    finally:
        bare.stop()


def _has_uvloop() -> bool:
    try:
        import uvloop  # noqa: F401
    except ImportError:
        return False
    return True


def main() -> None:
    """Run every workload and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=10, help="seconds per wrk run")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved POST rounds")
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument("--threads", type=int, default=1, help="wrk threads")
    parser.add_argument("--warmup", type=int, default=2, help="seconds of warm-up per run")
    parser.add_argument("--subscribers", type=int, default=1_000_000)
    parser.add_argument("--waiters", type=int, default=1000)
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is missing: install it with `apt-get install wrk` (Debian)")
    load = Load(args.connections, args.duration, args.threads, args.warmup)
    uv = _has_uvloop()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        big, small = work / "big.db", work / "small.db"
        t0 = time.perf_counter()
        seed(big, args.subscribers, work)
        seed(small, 1000, work)
        print(
            f"seeded {args.subscribers:,} and 1,000 subscribers in {time.perf_counter() - t0:.1f} s"
        )
        # The server at the default log level gets a copy: one server per database.
        logged_db, log_file = work / "big-info.db", work / "info.log"
        copy_db(big, logged_db)
        numbers_file(big, work / "numbers.txt")
        numbers_file(small, work / "numbers-small.txt", 200)
        sms_numbers_file(big, work / "sms-numbers.txt")
        env = {"OPSIM_NUMBERS": str(work / "numbers.txt"), "OPSIM_PATH": IR_PATH}
        print(
            f"wrk: {load.connections} connections, {load.threads} thread(s), {load.duration} s "
            f"per run after {load.warmup} s of warm-up; operator-sim on "
            f"{'uvloop' if uv else 'asyncio'}\n"
        )

        server = operator_sim(big, work)
        try:
            ratios, posts, ceilings, logged_posts = [], [], [], []
            logged = operator_sim(logged_db, work, log=log_file)
            try:
                for round_ in range(1, args.rounds + 1):
                    ceiling, bare_rss = _bare(work, env, load, uvloop=False)
                    print(
                        f"[{round_}] bare aiohttp POST (asyncio)   {ceiling.line()}   "
                        f"peak RSS {bare_rss:5.1f} MB"
                    )
                    if uv:
                        fast, fast_rss = _bare(work, env, load, uvloop=True)
                        print(
                            f"[{round_}] bare aiohttp POST (uvloop)    {fast.line()}   "
                            f"peak RSS {fast_rss:5.1f} MB"
                        )
                        ceilings.append(fast.rps)
                    # The two log levels swap places each round: neither always runs first.
                    for logs_on in (False, True) if round_ % 2 else (True, False):
                        target = logged if logs_on else server
                        post = wrk(target.url, "post_identification.lua", env, load, server=target)
                        if logs_on:
                            logged_posts.append(post)
                            label, tail = "operator-sim POST, log info", ""
                        else:
                            posts.append(post)
                            ratios.append(post.rps / ceiling.rps)
                            label, tail = "operator-sim POST", f"   ratio {ratios[-1]:.2f}x"
                        print(
                            f"[{round_}] {label:<29} {post.line()}   peak RSS "
                            f"{target.peak_rss_mb():5.1f} MB{tail}"
                        )
            finally:
                logged.stop()
            log_lines, not_json = _request_lines(log_file)
            sms = wrk(
                server.url,
                "post_sms.lua",
                {"OPSIM_NUMBERS": str(work / "sms-numbers.txt"), "OPSIM_PATH": SMS_PATH},
                load,
            )
            print(
                f"operator-sim SMS send            {sms.line()}   peak RSS "
                f"{server.peak_rss_mb():5.1f} MB"
            )
            ids = asyncio.run(_create(server.url, (work / "numbers.txt").read_text().split(), 1000))
            (work / "ids.txt").write_text("\n".join(ids) + "\n")
            get = wrk(
                server.url,
                "get_request.lua",
                {"OPSIM_IDS": str(work / "ids.txt"), "OPSIM_PATH": IR_PATH},
                load,
            )
            print(
                f"operator-sim GET request         {get.line()}   peak RSS "
                f"{server.peak_rss_mb():5.1f} MB"
            )
            with sqlite3.connect(big) as conn:
                present = [
                    r[0]
                    for r in conn.execute(
                        "SELECT id FROM identification_requests WHERE result = 'present' "
                        "AND answered_at <= due_at LIMIT 5000"
                    )
                ]
            (work / "present.txt").write_text("\n".join(present) + "\n")
            code = wrk(
                server.url,
                "post_code.lua",
                {
                    "OPSIM_IDS": str(work / "present.txt"),
                    "OPSIM_PATH": "/operators/alfa/v1/identification-codes",
                },
                load,
            )
            print(
                f"operator-sim code register       {code.line()}   peak RSS "
                f"{server.peak_rss_mb():5.1f} MB"
            )
            idle = asyncio.run(_idle_waiters(server.url, args.waiters, args.duration, server))
            print(
                f"{args.waiters:,} idle long-poll waiters: {idle:.2f}% of one core, peak RSS "
                f"{server.peak_rss_mb():5.1f} MB"
            )
            big_rss = server.peak_rss_mb()
        finally:
            server.stop()

        lookups = {}
        for label, db, numbers in (
            ("1,000", small, "numbers-small.txt"),
            (f"{args.subscribers:,}", big, "numbers.txt"),
        ):
            server = operator_sim(db, work)
            try:
                lookups[label] = wrk(
                    server.url,
                    "post_identification.lua",
                    {**env, "OPSIM_NUMBERS": str(work / numbers)},
                    load,
                    connections=1,
                    duration=max(3, args.duration // 2),
                )
            finally:
                server.stop()
            print(f"lookup at {label:>9} subscribers (1 connection)  {lookups[label].line()}")

        ready = startup_seconds(big, work)
        labels = list(lookups)
        ratio = statistics.median(ratios)
        p99s = sorted(p.p99_ms for p in posts)
        print("\nsummary (targets in brackets)")
        print(
            f"  POST throughput ratio operator-sim / bare: {ratio:.2f}x  (>= 0.35; median of "
            f"{len(ratios)} rounds: {', '.join(f'{r:.2f}' for r in ratios)})"
        )
        costs = [1 - i.rps / p.rps for p, i in zip(posts, logged_posts, strict=True)]
        cpu_costs = [
            i.cpu_us / p.cpu_us - 1
            for p, i in zip(posts, logged_posts, strict=True)
            if i.cpu_us and p.cpu_us
        ]
        print(
            f"  POST at the default log level (info, JSON lines to a file): "
            f"{statistics.median(i.rps for i in logged_posts):,.0f} req/s against "
            f"{statistics.median(p.rps for p in posts):,.0f} at warning; cost "
            f"{statistics.median(costs) * 100:.1f}%  (< 10; median of {len(costs)} rounds: "
            f"{', '.join(f'{c * 100:.1f}' for c in costs)})"
        )
        print(
            f"    server CPU per request: +{statistics.median(cpu_costs) * 100:.1f}% at info "
            f"(median of {', '.join(f'{c * 100:.1f}' for c in cpu_costs)}); "
            f"{log_lines:,} request lines written, {not_json} not JSON, "
            f"errors: {sum(i.errors for i in logged_posts)}"
        )
        if ceilings:
            fast_ratio = statistics.median(p.rps / c for p, c in zip(posts, ceilings, strict=True))
            print(f"  (against bare aiohttp on uvloop: {fast_ratio:.2f}x, for information)")
        print(
            f"  POST p99: {statistics.median(p99s):.2f} ms median, {p99s[-1]:.2f} ms worst "
            f"(<= 20), errors: {sum(p.errors for p in posts)} (0)"
        )
        print(
            f"  SMS send: {sms.rps:,.0f} req/s, p99 {sms.p99_ms:.2f} ms, errors {sms.errors} "
            f"(identification POST: {statistics.median(p.rps for p in posts):,.0f} req/s, "
            f"p99 {statistics.median(p99s):.2f} ms)"
        )
        print(f"  peak RSS with {args.subscribers:,} subscribers: {big_rss:.1f} MB  (<= 100)")
        print(
            f"  p50 lookup {labels[1]} / {labels[0]}: "
            f"{lookups[labels[1]].p50_ms / lookups[labels[0]].p50_ms:.2f}x  (<= 1.2)"
        )
        print(f"  {args.waiters:,} idle waiters: {idle:.2f}% of one core  (< 5)")
        print(f"  ready on an existing database: {ready:.3f} s  (<= 0.5)")


if __name__ == "__main__":
    main()
