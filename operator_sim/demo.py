"""``operator-sim demo``: a tour of every branch of the decree's flow, client and server together.

It starts a server in-process on the default fixture with a scaled clock, embeds a
``Messenger`` against it, and walks through present, absent, incomplete data, timeout,
late answer, retries after 503 and 429, termination and porting, checking each outcome.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import aiohttp
from aiohttp import web

from operator_sim.messenger import Messenger, Outcome, Reason, Step
from operator_sim.server import create_app
from operator_sim.settings import Settings
from operator_sim.wire import IDENTIFICATION_DEADLINE

__all__ = ["run_demo"]

DEMO_KEY = "demo-messenger-key-not-secret"
ADMIN_TOKEN = "demo-admin-token-not-secret"  # noqa: S105 (the default fixture's documented demo token)
_DEADLINE_MINUTES = int(IDENTIFICATION_DEADLINE.total_seconds() // 60)
SCALE = int(IDENTIFICATION_DEADLINE.total_seconds())  # the deadline passes in one real second
_NEW_SUBSCRIBER = {"full_name": "Демо Дмитрий Демович", "birth_date": "1990-05-05"}


class _Style:
    def __init__(self, colour: bool) -> None:
        self._colour = colour

    def _wrap(self, code: str, text: str) -> str:
        return f"\033[{code}m{text}\033[0m" if self._colour else text

    def bold(self, text: str) -> str:
        return self._wrap("1", text)

    def dim(self, text: str) -> str:
        return self._wrap("2", text)

    def good(self, text: str) -> str:
        return self._wrap("32", text)

    def bad(self, text: str) -> str:
        return self._wrap("31", text)

    def mark(self, ok: bool) -> str:
        if self._colour:
            # Four columns wide, like PASS and FAIL, so the table lines up.
            return self.good(" ✔  ") if ok else self.bad(" ✘  ")
        return "PASS" if ok else "FAIL"

    def arrow(self) -> str:
        return "▸" if self._colour else "*"


@dataclass
class _Result:
    title: str
    number: str
    outcome: str
    expected: str
    ok: bool


class _Tour:
    def __init__(self, base_url: str, workdir: Path, out: TextIO, colour: bool) -> None:
        self.base_url = base_url
        self.workdir = workdir
        self.out = out
        self.style = _Style(colour)
        self.results: list[_Result] = []
        self.steps: list[Step] = []
        self._changed = asyncio.Event()
        self.admin = aiohttp.ClientSession(
            base_url, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}
        )
        self.messenger = Messenger(
            base_url,
            DEMO_KEY,
            db_path=workdir / "messenger.db",
            background_feed=True,
            feed_wait=5,
            poll_wait=5,
            observer=self._observe,
        )

    def say(self, text: str = "") -> None:
        print(text, file=self.out, flush=True)

    def _observe(self, step: Step) -> None:
        self.steps.append(step)
        self._changed.set()
        who = f"[{step.user_id}] " if step.user_id else ""
        self.say(self.style.dim(f"     {step.kind:<11} {who}{step.message}"))

    async def wait_step(self, kind: str, user_id: str) -> bool:
        """Whether a step of this kind for this user shows up within five seconds."""
        try:
            async with asyncio.timeout(5.0):
                while not any(s.kind == kind and s.user_id == user_id for s in self.steps):
                    self._changed.clear()
                    await self._changed.wait()
        except TimeoutError:
            return False
        return True

    async def call_admin(self, method: str, path: str, body: Any = None) -> Any:
        async with self.admin.request(method, f"/admin/v1{path}", json=body) as resp:
            if resp.status >= 300:
                raise RuntimeError(f"{method} {path}: {resp.status} {await resp.text()}")
            return await resp.json()

    def record(self, title: str, number: str, outcome: str, expected: str, ok: bool) -> None:
        self.results.append(_Result(title, number, outcome, expected, ok))
        verdict = self.style.mark(ok)
        self.say(f"   {verdict} {outcome}  (expected: {expected})")

    async def identify(
        self, title: str, user: str, typed: str, expected: Reason, *, note: str = ""
    ) -> Outcome:
        self.say()
        self.say(
            self.style.bold(f"{self.style.arrow()} {title}") + f": user {user} types {typed!r}"
        )
        if note:
            self.say(f"   {note}")
        outcome = await self.messenger.identify(user, typed)
        can_send = await self.messenger.can_send(user)
        shown = f"{'identified' if outcome.identified else 'refused'} ({outcome.reason.value})"
        wanted = f"{'identified' if expected is Reason.PRESENT else 'refused'} ({expected.value})"
        ok = outcome.reason is expected and can_send == (expected is Reason.PRESENT)
        self.say(f"     can_send({user}) = {can_send}")
        self.record(title, outcome.msisdn or typed, shown, wanted, ok)
        return outcome

    # --- the branches ----------------------------------------------------------------

    async def present(self) -> None:
        await self.identify(
            "present",
            "alice",
            "8 (900) 000-00-01",
            Reason.PRESENT,
            note="The operator holds complete data on an active contract.",
        )

    async def absent(self) -> None:
        await self.identify(
            "absent",
            "bob",
            "+7 900 000 00 02",
            Reason.ABSENT,
            note="No subscriber record for this number.",
        )

    async def incomplete(self) -> None:
        await self.identify(
            "incomplete data",
            "carol",
            "9000000003",
            Reason.ABSENT,
            note="The operator's record lacks the birth date and passport: still only 'absent'.",
        )

    async def invalid_phone(self) -> None:
        await self.identify(
            "invalid phone",
            "dora",
            "call me maybe",
            Reason.INVALID_PHONE,
            note="Not a phone number: refused before anything is sent.",
        )

    async def timeout(self) -> None:
        await self.identify(
            "timeout",
            "dave",
            "+79000000005",
            Reason.EXPIRED,
            note="The operator never answers; the request expires at its 20-minute deadline.",
        )

    async def late(self) -> None:
        outcome = await self.identify(
            "late answer",
            "erin",
            "+79000000006",
            Reason.EXPIRED,
            note="The operator answers 'present' after 25 minutes: too late to count.",
        )
        if outcome.request_id is None:
            return
        # Five more simulated minutes: the late 'present' arrives, and changes nothing.
        await asyncio.sleep(6 * 60 / SCALE)
        late = await self.messenger.client.get_request(
            "alfa", outcome.request_id, msisdn="+79000000006"
        )
        still_refused = not await self.messenger.can_send("erin")
        self.record(
            "late answer arrives",
            "+79000000006",
            f"{late.result} at {late.answered_at:%H:%M:%S} (due {late.due_at:%H:%M:%S}) ignored",
            "late present ignored",
            late.result == "present" and still_refused,
        )

    async def slow(self) -> None:
        await self.identify(
            "slow present",
            "fay",
            "+79000000009",
            Reason.PRESENT,
            note="Answered 'present' after 5 minutes: within the deadline.",
        )

    async def retry_503(self) -> None:
        before = len([s for s in self.steps if s.kind == "retry"])
        await self.identify(
            "503 twice",
            "gus",
            "+79000000007",
            Reason.PRESENT,
            note="Two 503s with Retry-After: 1, retried with the same Idempotency-Key.",
        )
        retries = len([s for s in self.steps if s.kind == "retry"]) - before
        self.record("503 retries", "+79000000007", f"{retries} retries", "2 retries", retries == 2)

    async def retry_429(self) -> None:
        before = len([s for s in self.steps if s.kind == "retry"])
        await self.identify(
            "429 once",
            "hal",
            "+79000000008",
            Reason.PRESENT,
            note="One 429 with Retry-After: 1, then the request goes through.",
        )
        retries = len([s for s in self.steps if s.kind == "retry"]) - before
        self.record("429 retry", "+79000000008", f"{retries} retry", "1 retry", retries == 1)

    async def termination(self) -> None:
        number = "+79011118801"
        await self.call_admin(
            "POST",
            "/subscribers",
            {
                "subscribers": [
                    {
                        "msisdn": number,
                        "operator_id": "alfa",
                        "passport": "4500 880001",
                        **_NEW_SUBSCRIBER,
                    }
                ]
            },
        )
        await self.identify("termination: identify", "ivy", number, Reason.PRESENT)
        self.say("   The subscriber's contract ends; the operator notifies the messenger.")
        await self.call_admin("POST", f"/subscribers/{number}/terminate")
        suspended = await self.wait_step("suspended", "ivy")
        can_send = await self.messenger.can_send("ivy")
        self.record(
            "termination: suspended",
            number,
            f"can_send = {can_send}",
            "can_send = False",
            suspended and not can_send,
        )
        await self.identify(
            "termination: identify again",
            "ivy",
            number,
            Reason.ABSENT,
            note="With the contract ended the operator answers 'absent'.",
        )
        await self.call_admin(
            "POST",
            "/subscribers",
            {
                "subscribers": [
                    {
                        "msisdn": number,
                        "operator_id": "alfa",
                        "passport": "4500 880001",
                        **_NEW_SUBSCRIBER,
                    }
                ]
            },
        )
        await self.identify(
            "termination: new contract",
            "ivy",
            number,
            Reason.PRESENT,
            note="A new contract on the number: identification succeeds again.",
        )

    async def porting(self) -> None:
        number = "+79011118802"
        await self.call_admin(
            "POST",
            "/subscribers",
            {
                "subscribers": [
                    {
                        "msisdn": number,
                        "operator_id": "alfa",
                        "passport": "4500 880002",
                        **_NEW_SUBSCRIBER,
                    }
                ]
            },
        )
        first = await self.identify("porting: identify", "jan", number, Reason.PRESENT)
        self.say("   The number is ported from alfa to beta.")
        await self.call_admin("POST", f"/subscribers/{number}/port", {"to_operator_id": "beta"})
        suspended = await self.wait_step("suspended", "jan")
        can_send = await self.messenger.can_send("jan")
        self.record(
            "porting: suspended",
            number,
            f"can_send = {can_send}",
            "can_send = False",
            suspended and not can_send,
        )
        again = await self.identify(
            "porting: identify again",
            "jan",
            number,
            Reason.PRESENT,
            note="Routing now names beta; the new identification goes there.",
        )
        self.record(
            "porting: new operator",
            number,
            f"{first.operator_id} -> {again.operator_id}",
            "alfa -> beta",
            (first.operator_id, again.operator_id) == ("alfa", "beta"),
        )

    def branches(self) -> list[Callable[[], Awaitable[None]]]:
        return [
            self.present,
            self.absent,
            self.incomplete,
            self.invalid_phone,
            self.timeout,
            self.late,
            self.slow,
            self.retry_503,
            self.retry_429,
            self.termination,
            self.porting,
        ]

    def summary(self) -> None:
        self.say()
        self.say(self.style.bold("Summary"))
        rows = [("", "branch", "number", "outcome", "expected")]
        rows += [("", r.title, r.number, r.outcome, r.expected) for r in self.results]
        widths = [max(len(row[i]) for row in rows) for i in range(5)]
        marks = ["    "] + [self.style.mark(r.ok) for r in self.results]
        for mark, row in zip(marks, rows, strict=True):
            cells = "  ".join(f"{cell:<{widths[i]}}" for i, cell in enumerate(row) if i)
            self.say(f"  {mark}  {cells}".rstrip())


async def _run(out: TextIO, colour: bool) -> int:
    from operator_sim.logs import configure_logging

    configure_logging("error", "json")
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="operator-sim-demo-") as tmp:
        workdir = Path(tmp)
        app = create_app(Settings(db=workdir / "operator-sim.db", clock=f"scaled:{SCALE}"))
        runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await runner.setup()
        try:
            await web.TCPSite(runner, "127.0.0.1", 0).start()
            base_url = f"http://127.0.0.1:{runner.addresses[0][1]}"
            tour = _Tour(base_url, workdir, out, colour)
            tour.say(
                tour.style.bold("operator-sim demo") + ": a messenger identifying users "
                "under Decree No. 1801"
            )
            tour.say(
                f"server {base_url} (default fixture), clock scaled x{SCALE}: "
                f"{_DEADLINE_MINUTES} simulated minutes pass in "
                f"{IDENTIFICATION_DEADLINE.total_seconds() / SCALE:g} s"
            )
            try:
                async with tour.messenger:
                    for branch in tour.branches():
                        try:
                            await branch()
                        except Exception as exc:  # noqa: BLE001 (a broken branch is reported, the tour goes on)
                            tour.record(branch.__name__, "-", f"raised {exc!r}", "no error", False)
            finally:
                await tour.admin.close()
            tour.summary()
        finally:
            await runner.cleanup()
    failed = [r for r in tour.results if not r.ok]
    elapsed = time.perf_counter() - started
    tour.say()
    if failed:
        tour.say(
            tour.style.bad(f"{len(failed)} of {len(tour.results)} checks FAILED")
            + f" in {elapsed:.1f} s"
        )
        return 1
    tour.say(tour.style.good(f"all {len(tour.results)} checks passed") + f" in {elapsed:.1f} s")
    return 0


def run_demo(out: TextIO | None = None, *, colour: bool | None = None) -> int:
    """Run the tour; returns the exit status (1 when any branch behaved wrongly)."""
    stream = out or sys.stdout
    use_colour = stream.isatty() if colour is None else colour
    return asyncio.run(_run(stream, use_colour))
