"""Crash loop: load, SIGKILL at a random moment, restart on the same database, verify.

Each round starts `operator-sim serve` (manual clock) on one database, runs a bounded
load of identification requests, code registrations, terminations and clock advances
from a few concurrent clients, sends SIGKILL at a random moment, checks
`PRAGMA integrity_check`, restarts and checks that every acknowledged request is still
there (and that its idempotency key still returns it). After the last round the clock
moves 25 hours and every promise is checked: each acknowledged request was answered or
expired exactly on schedule, each event was delivered to the webhook receiver (in this
process) at least once under the same id, each acknowledged code is either stored or was
ended by a delivered termination event. Canary subscribers carry personal data; no
response, webhook body or log line may contain it, nor an unmasked number in a log line.

    python scripts/crash_loop.py [--rounds 20] [--ops 60] [--seed 1801]

Prints one line per round and a tally; exits 1 on any loss, leak or corruption.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import sqlite3
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from standardwebhooks import Webhook

ADMIN = {"Authorization": "Bearer demo-admin-token-not-secret"}
IR = "/operators/alfa/v1/identification-requests"
START_TIMEOUT = 20.0
CANARIES = [
    {
        "msisdn": f"+7902555{i:04d}",
        "operator_id": "alfa",
        "full_name": f"Канарейкин{i} Агафон Пантелеймонович",
        "birth_date": "1961-02-28",
        "passport": f"4509 77{i:04d}",
        "address": f"г. Канареечный, ул. Птичья, д. {i}, кв. 77",  # noqa: RUF001 (Russian)
    }
    for i in range(8)
]
PII = sorted(
    {c[k] for c in CANARIES for k in ("full_name", "passport", "address")}
    | {"Канарейкин", "Пантелеймонович", "1961-02-28", "Канареечный", "Птичья"}
)
# Offsets from receipt at which each number is answered (None: expires at 20 minutes).
SCHEDULE: dict[str, tuple[str, timedelta | None]] = {
    "+79000000001": ("present", timedelta(0)),
    "+79000000002": ("absent", timedelta(0)),
    "+79000000005": ("expired", None),
    "+79000000006": ("present", timedelta(minutes=25)),
    "+79000000009": ("present", timedelta(minutes=5)),
}
DEADLINE = timedelta(minutes=20)


def _ts(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def digits_variants(msisdn: str) -> list[str]:
    """An unmasked number in the formattings a log line could carry it."""
    d = msisdn.removeprefix("+")
    return [d, f"%2B{d}", f"{d[0]} {d[1:4]} {d[4:7]}-{d[7:9]}-{d[9:]}", f"8{d[1:]}"]


@dataclass
class Acked:
    """A request the server answered 201 for."""

    id: str
    msisdn: str
    key: str
    received_at: datetime
    due_at: datetime


@dataclass
class Tally:
    """What the loop counted."""

    rounds: int = 0
    kills: int = 0
    requests_acked: int = 0
    requests_found: int = 0
    requests_lost: int = 0
    replays_ok: int = 0
    off_schedule: int = 0
    codes_acked: int = 0
    codes_lost: int = 0
    terminations_acked: int = 0
    events: int = 0
    events_delivered: int = 0
    events_lost: int = 0
    deliveries: int = 0
    bad_signatures: int = 0
    integrity_failures: int = 0
    pii_hits: int = 0
    problems: list[str] = field(default_factory=list)

    def failed(self) -> bool:
        """Whether anything was lost, leaked, corrupted or off schedule."""
        return bool(
            self.requests_lost
            or self.codes_lost
            or self.events_lost
            or self.off_schedule
            or self.bad_signatures
            or self.integrity_failures
            or self.pii_hits
            or self.problems
        )

    def line(self) -> str:
        """The tally as one line."""
        return (
            f"crash rounds {self.rounds} (SIGKILLs {self.kills}); "
            f"requests acknowledged {self.requests_acked}, found {self.requests_found}, "
            f"lost {self.requests_lost}, off schedule {self.off_schedule}, "
            f"idempotent replays ok {self.replays_ok}; "
            f"codes acknowledged {self.codes_acked}, lost {self.codes_lost}; "
            f"terminations {self.terminations_acked}; "
            f"events {self.events}, delivered {self.events_delivered} "
            f"({self.deliveries} webhook POSTs), lost {self.events_lost}; "
            f"bad signatures {self.bad_signatures}; integrity failures "
            f"{self.integrity_failures}; PII hits {self.pii_hits}"
        )


class Receiver:
    """The messenger's webhook endpoint: records every delivery by event id."""

    def __init__(self) -> None:
        self.secret = ""
        self.by_id: dict[str, list[dict[str, Any]]] = {}
        self.bodies: list[str] = []
        self.bad = 0
        self.url = ""
        self._runner: web.AppRunner | None = None

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        self.bodies.append(body.decode(errors="replace"))
        headers = {k.lower(): v for k, v in request.headers.items()}
        try:
            event = Webhook(self.secret).verify(body, headers)
        except Exception:  # noqa: BLE001 (any verification failure counts as bad)
            self.bad += 1
            return web.Response(status=400)
        if event["id"] != headers.get("webhook-id"):
            self.bad += 1
        self.by_id.setdefault(event["id"], []).append(event)
        return web.Response(status=204)

    async def start(self) -> None:
        """Listen on a free loopback port."""
        app = web.Application()
        app.router.add_post("/hook", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        host, port = self._runner.addresses[0][:2]
        self.url = f"http://{host}:{port}/hook"

    async def stop(self) -> None:
        """Stop listening."""
        if self._runner is not None:
            await self._runner.cleanup()


class Server:
    """One `operator-sim serve` process, its stderr appended to a log file."""

    def __init__(self, proc: asyncio.subprocess.Process, url: str) -> None:
        self.proc = proc
        self.url = url

    @classmethod
    async def start(cls, db: Path, log: Path, extra: list[str]) -> Server:
        """Start on ``db`` and wait for the address line."""
        with log.open("ab") as err:
            proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "operator_sim",
                "serve",
                "--port",
                "0",
                "--db",
                str(db),
                "--clock",
                "manual",
                "--log-format",
                "json",
                *extra,
                stdout=asyncio.subprocess.PIPE,
                stderr=err,
                cwd=db.parent,
            )
        if proc.stdout is None:
            raise SystemExit("no stdout pipe")
        async with asyncio.timeout(START_TIMEOUT):
            line = (await proc.stdout.readline()).decode().strip()
        if not line.startswith("listening on "):
            raise SystemExit(f"the server did not start: {line!r} (see {log})")
        return cls(proc, line.removeprefix("listening on "))


class Loop:
    """The crash loop's state across rounds."""

    def __init__(self, args: argparse.Namespace, tmp: Path) -> None:
        self.args = args
        self.rng = random.Random(args.seed)  # noqa: S311 (load generation, not secrets)
        self.db = tmp / "crash.db"
        self.log = tmp / "server.log"
        self.receiver = Receiver()
        self.tally = Tally()
        self.acked: dict[str, Acked] = {}
        self.present: list[Acked] = []
        self.codes: dict[str, str] = {}  # code -> msisdn
        self.terminated: set[str] = set()
        self.termination_events = 0  # events promised by acknowledged terminations
        self.responses: list[str] = []
        self.key = ""

    async def _json(self, resp: aiohttp.ClientResponse) -> Any:
        text = await resp.text()
        self.responses.append(text)
        return json.loads(text) if text else None

    async def setup(self, http: aiohttp.ClientSession, url: str) -> None:
        """Register the hooked messenger and seed the canary subscribers."""
        resp = await http.post(
            f"{url}/admin/v1/messengers",
            json={"id": "crash", "name": "Crash", "webhook_url": self.receiver.url},
            headers=ADMIN,
        )
        created = await self._json(resp)
        if resp.status != 201:
            raise SystemExit(f"registering the messenger failed: {created}")
        self.key, self.receiver.secret = created["api_key"], created["webhook_secret"]
        resp = await http.post(
            f"{url}/admin/v1/subscribers", json={"subscribers": CANARIES}, headers=ADMIN
        )
        if resp.status != 200:
            raise SystemExit(f"seeding the canaries failed: {await resp.text()}")

    def _auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}

    async def _one(self, http: aiohttp.ClientSession, url: str, rng: random.Random) -> None:
        roll = rng.random()
        if roll < 0.6 or not self.present:
            pool = [*SCHEDULE, *(c["msisdn"] for c in CANARIES), "+79011234567"]
            msisdn = rng.choice(pool)
            key = f"k-{rng.getrandbits(64):016x}"
            resp = await http.post(
                f"{url}{IR}",
                json={"msisdn": msisdn},
                headers={**self._auth(), "Idempotency-Key": key},
            )
            body = await self._json(resp)
            if resp.status == 201:
                acked = Acked(
                    body["id"], msisdn, key, _ts(body["received_at"]), _ts(body["due_at"])
                )
                if acked.id not in self.acked:
                    self.acked[acked.id] = acked
                    self.tally.requests_acked += 1
                if body["result"] == "present" and body["status"] == "answered":
                    self.present.append(acked)
        elif roll < 0.8:
            req = rng.choice(self.present)
            code = f"code-{req.id}"
            resp = await http.post(
                f"{url}/operators/alfa/v1/identification-codes",
                json={"request_id": req.id, "code": code},
                headers=self._auth(),
            )
            await self._json(resp)
            if resp.status in (200, 201) and code not in self.codes:
                self.codes[code] = req.msisdn
                self.tally.codes_acked += 1
        elif roll < 0.9:
            canary = rng.choice(CANARIES)["msisdn"]
            resp = await http.post(f"{url}/admin/v1/subscribers/{canary}/terminate", headers=ADMIN)
            body = await self._json(resp)
            if resp.status == 200:
                self.terminated.add(canary)
                self.tally.terminations_acked += 1
                self.termination_events += body["events"]
        else:
            resp = await http.post(f"{url}/admin/v1/clock/advance", json={"by": 30}, headers=ADMIN)
            await self._json(resp)

    async def _client(self, http: aiohttp.ClientSession, url: str, seed: int, ops: int) -> None:
        rng = random.Random(seed)  # noqa: S311 (load generation, not secrets)
        for _ in range(ops):
            try:
                await self._one(http, url, rng)
            except (aiohttp.ClientError, ConnectionError, json.JSONDecodeError):
                return  # the server died under us: what was acknowledged counts

    def _integrity(self) -> None:
        with sqlite3.connect(self.db) as conn:
            result = conn.execute("PRAGMA integrity_check").fetchone()[0]
        if result != "ok":
            self.tally.integrity_failures += 1
            self.tally.problems.append(f"integrity_check: {result}")

    async def _found(self, http: aiohttp.ClientSession, url: str) -> int:
        """Check every acknowledged request exists; replay a sample of idempotency keys."""
        lost = 0
        for acked in self.acked.values():
            resp = await http.get(f"{url}{IR}/{acked.id}", headers=self._auth())
            body = await self._json(resp)
            if resp.status != 200 or body["msisdn"] != acked.msisdn:
                lost += 1
                self.tally.problems.append(f"request {acked.id} lost ({resp.status})")
            elif _ts(body["received_at"]) != acked.received_at:
                self.tally.problems.append(f"request {acked.id} changed its received_at")
        for acked in self.rng.sample(list(self.acked.values()), min(5, len(self.acked))):
            resp = await http.post(
                f"{url}{IR}",
                json={"msisdn": acked.msisdn},
                headers={**self._auth(), "Idempotency-Key": acked.key},
            )
            body = await self._json(resp)
            if resp.status == 201 and body["id"] == acked.id:
                self.tally.replays_ok += 1
            else:
                self.tally.problems.append(f"idempotency key of {acked.id} lost")
        return lost

    async def round(self, http: aiohttp.ClientSession, number: int) -> None:
        """Start, verify what earlier rounds were promised, load, SIGKILL."""
        server = await Server.start(self.db, self.log, self.args.server_arg)
        if number == 0:
            await self.setup(http, server.url)
        lost = await self._found(http, server.url)
        before = len(self.acked)
        clients = [
            asyncio.create_task(
                self._client(http, server.url, self.rng.getrandbits(32), self.args.ops)
            )
            for _ in range(self.args.clients)
        ]
        await asyncio.sleep(self.rng.uniform(0.02, self.args.kill_within))
        server.proc.send_signal(signal.SIGKILL)
        await server.proc.wait()
        await asyncio.gather(*clients)
        self.tally.kills += 1
        self._integrity()
        self.tally.rounds += 1
        print(
            f"round {number + 1:>2}: found {before - lost}/{before} earlier requests, "
            f"{len(self.acked) - before} acknowledged before SIGKILL, integrity "
            f"{'failed' if self.tally.integrity_failures else 'ok'}",
            flush=True,
        )

    def _check_schedule(self, acked: Acked, body: dict[str, Any]) -> bool:
        if acked.due_at - acked.received_at != DEADLINE:
            return False
        status, result = body["status"], body["result"]
        answered = _ts(body["answered_at"]) if body["answered_at"] else None
        if acked.msisdn in SCHEDULE:
            expected, delay = SCHEDULE[acked.msisdn]
            if delay is None:
                return status == "expired" and answered is None
            return (
                status == "answered"
                and result == expected
                and answered == acked.received_at + delay
            )
        # Canaries answer at once, present until terminated; other numbers absent.
        return (
            status == "answered"
            and answered == acked.received_at
            and result
            in (("present", "absent") if acked.msisdn.startswith("+7902555") else ("absent",))
        )

    async def finish(self, http: aiohttp.ClientSession) -> None:
        """Restart, let 25 simulated hours pass, check every promise."""
        server = await Server.start(self.db, self.log, self.args.server_arg)
        try:
            lost = await self._found(http, server.url)
            self.tally.requests_lost = lost
            self.tally.requests_found = len(self.acked) - lost
            for by in (5 * 60, 20 * 60, 60 * 60, 24 * 3600):
                resp = await http.post(
                    f"{server.url}/admin/v1/clock/advance", json={"by": by}, headers=ADMIN
                )
                if resp.status != 200:
                    raise SystemExit(f"advancing the clock failed: {await resp.text()}")
            for acked in self.acked.values():
                resp = await http.get(f"{server.url}{IR}/{acked.id}", headers=self._auth())
                body = await self._json(resp)
                if resp.status == 200 and not self._check_schedule(acked, body):
                    self.tally.off_schedule += 1
                    self.tally.problems.append(f"off schedule: {acked.msisdn} {body}")
            # Webhook attempts that fell due are made before advance returns; give the
            # last ones a bounded moment to land.
            deliveries: list[dict[str, Any]] = []
            for _ in range(200):
                resp = await http.get(
                    f"{server.url}/admin/v1/deliveries?messenger_id=crash&limit=10000",
                    headers=ADMIN,
                )
                deliveries = (await resp.json())["deliveries"]
                if all(d["webhook"]["state"] == "delivered" for d in deliveries) and all(
                    d["event_id"] in self.receiver.by_id for d in deliveries
                ):
                    break
                await asyncio.sleep(0.05)
        finally:
            server.proc.terminate()
            code = await server.proc.wait()
        if code != 0:
            self.tally.problems.append(f"the final server exited {code}")
        self._integrity()
        self._check_events(deliveries)
        self._check_codes()
        self._check_pii()

    def _check_events(self, deliveries: list[dict[str, Any]]) -> None:
        ids = {d["event_id"] for d in deliveries}
        self.tally.events = len(ids)
        self.tally.events_delivered = len(ids & set(self.receiver.by_id))
        self.tally.events_lost = len(ids - set(self.receiver.by_id))
        self.tally.deliveries = sum(len(v) for v in self.receiver.by_id.values())
        self.tally.bad_signatures = self.receiver.bad
        late = [d["event_id"] for d in deliveries if d["webhook"]["met_deadline"] is False]
        if late:
            self.tally.problems.append(f"{len(late)} events delivered after deliver_by")
        for event_id, copies in self.receiver.by_id.items():
            if any(c != copies[0] for c in copies):
                self.tally.problems.append(f"event {event_id} delivered with different bodies")
        answered = {
            c[0]["data"]["id"]
            for c in self.receiver.by_id.values()
            if c[0]["type"] == "identification.answered"
        }
        ended = sum(
            1
            for c in self.receiver.by_id.values()
            if c[0]["type"] == "subscriber.contract_terminated"
        )
        if ended < self.termination_events:
            self.tally.events_lost += self.termination_events - ended
            self.tally.problems.append(
                f"{self.termination_events} termination events promised, {ended} delivered"
            )
        missing = set(self.acked) - answered
        if missing:
            self.tally.events_lost += len(missing)
            self.tally.problems.append(f"{len(missing)} requests without an answered event")

    def _check_codes(self) -> None:
        with sqlite3.connect(self.db) as conn:
            stored = {r[0] for r in conn.execute("SELECT code FROM identification_codes")}
        ended = {
            c[0]["data"]["code"]
            for c in self.receiver.by_id.values()
            if c[0]["type"] == "subscriber.contract_terminated"
        }
        for code in self.codes:
            if code not in stored and code not in ended:
                self.tally.codes_lost += 1
                self.tally.problems.append(f"code {code} lost")

    def _check_pii(self) -> None:
        log = self.log.read_text(errors="replace")
        texts = [("log", log), *(("webhook", b) for b in self.receiver.bodies)]
        texts += [("response", r) for r in self.responses]
        for where, text in texts:
            for pii in PII:
                if pii in text:
                    self.tally.pii_hits += 1
                    self.tally.problems.append(f"{where} carries personal data {pii!r}")
        numbers = {c["msisdn"] for c in CANARIES} | set(SCHEDULE) | {"+79011234567"}
        for msisdn in numbers:
            for variant in digits_variants(msisdn):
                if variant in log:
                    self.tally.pii_hits += 1
                    self.tally.problems.append(f"log carries an unmasked number ({variant[:4]}...)")
        if log.count('"event": "request"') < len(self.responses):
            self.tally.problems.append("the server log misses request lines: nothing to grep")
        if "Traceback" in log or "Task was destroyed" in log:
            self.tally.problems.append("the server log has a traceback or a destroyed task")


async def run(args: argparse.Namespace) -> Tally:
    """Run the loop; returns the tally."""
    with tempfile.TemporaryDirectory(prefix="crash-loop-") as tmp:
        loop = Loop(args, Path(tmp))
        await loop.receiver.start()
        try:
            async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as http:
                for number in range(args.rounds):
                    await loop.round(http, number)
                await loop.finish(http)
        finally:
            await loop.receiver.stop()
        return loop.tally


def main(argv: list[str] | None = None) -> int:
    """Parse options, run, print the tally; 1 on any failure."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20, help="SIGKILL rounds (default 20)")
    parser.add_argument("--ops", type=int, default=40, help="calls per client per round")
    parser.add_argument("--clients", type=int, default=6, help="concurrent clients")
    parser.add_argument(
        "--kill-within", type=float, default=0.4, help="SIGKILL within this many seconds"
    )
    parser.add_argument("--seed", type=int, default=1801, help="random seed")
    parser.add_argument(
        "--server-arg",
        action="append",
        default=[],
        help="extra option for `operator-sim serve` (repeatable)",
    )
    args = parser.parse_args(argv)
    started = time.perf_counter()
    os.environ.setdefault("OPERATOR_SIM_LOG_LEVEL", "info")
    tally = asyncio.run(run(args))
    print(f"crash loop: {tally.line()} ({time.perf_counter() - started:.1f} s)")
    for problem in tally.problems[:20]:
        print(f"  problem: {problem}", file=sys.stderr)
    return 1 if tally.failed() else 0


if __name__ == "__main__":
    raise SystemExit(main())
