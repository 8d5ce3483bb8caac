"""``operator-sim demo``: a tour of every branch of the decree's flow, client and server together.

It starts a server in-process on the default fixture with a scaled clock, embeds a
``Messenger`` against it, and walks through proof of possession (a one-time code read from
the phone's inbox) and the SMS gateway's branches (undelivered, phone off, blocked,
throttled, a report that never comes, wrong codes, a SIM swap), then present, absent,
incomplete data, timeout, late answer, retries after 503 and 429, termination and
porting, checking each outcome.
"""

from __future__ import annotations

import asyncio
import re
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import aiohttp
from aiohttp import web

from operator_sim.messenger import (
    Confirmation,
    Messenger,
    Outcome,
    RateLimited,
    Reason,
    Step,
    Verification,
)
from operator_sim.server import create_app
from operator_sim.settings import Settings
from operator_sim.wire import IDENTIFICATION_DEADLINE

__all__ = ["run_demo"]

DEMO_KEY = "demo-messenger-key-not-secret"
ADMIN_TOKEN = "demo-admin-token-not-secret"  # noqa: S105 (the default fixture's documented demo token)
_DEADLINE_MINUTES = int(IDENTIFICATION_DEADLINE.total_seconds() // 60)
SCALE = int(IDENTIFICATION_DEADLINE.total_seconds())  # the deadline passes in one real second
_NEW_SUBSCRIBER = {"full_name": "Демо Дмитрий Демович", "birth_date": "1990-05-05"}
# At a scaled clock the gateway's ten-minute window per number passes in half a second:
# the demo counts a simulated day, so that the limit stays visible at its speed.
_SMS_THROTTLE = "5/P1D"
_THROTTLED = "+79011118803"
_CODE_RE = re.compile(r"(?<![0-9])[0-9]{6}(?![0-9])")
_FINAL = ("delivered", "undelivered", "expired", "rejected")


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

    def heading(self, title: str, line: str, note: str = "") -> None:
        self.say()
        self.say(self.style.bold(f"{self.style.arrow()} {title}") + f": {line}")
        if note:
            self.say(f"   {note}")

    async def identify(
        self,
        title: str,
        user: str,
        typed: str,
        expected: Reason,
        *,
        note: str = "",
        require_possession: bool = False,
        max_sim_swap_age: int | None = None,
    ) -> Outcome:
        self.heading(title, f"user {user} types {typed!r}", note)
        outcome = await self.messenger.identify(
            user, typed, require_possession=require_possession, max_sim_swap_age=max_sim_swap_age
        )
        can_send = await self.messenger.can_send(user)
        shown = f"{'identified' if outcome.identified else 'refused'} ({outcome.reason.value})"
        wanted = f"{'identified' if expected is Reason.PRESENT else 'refused'} ({expected.value})"
        ok = outcome.reason is expected and can_send == (expected is Reason.PRESENT)
        self.say(f"     can_send({user}) = {can_send}")
        self.record(title, outcome.msisdn or typed, shown, wanted, ok)
        return outcome

    # --- proof of possession ------------------------------------------------------------

    async def read_code(self, verification: Verification) -> str | None:
        """The code in the phone's inbox, once the message reached it (None: it did not)."""
        path = f"/admin/v1/phones/{verification.msisdn}/messages"
        cursor: str | None = None
        try:
            async with asyncio.timeout(5.0):
                while True:
                    query = {"after": cursor} if cursor else {}
                    async with self.admin.get(
                        path, params=query, headers={"Prefer": "wait=1"}
                    ) as resp:
                        page = await resp.json()
                    for message in page["messages"]:
                        if message["sms_id"] == verification.sms_id:
                            found = _CODE_RE.search(message["text"])
                            return None if found is None else found.group(0)
                    cursor = page["next_cursor"]
        except TimeoutError:
            return None

    async def sms_status(self, verification: Verification, *, final: bool = True) -> str:
        """The message's status, once final (or after five seconds of waiting for it)."""
        shown = ""
        try:
            async with asyncio.timeout(5.0):
                while True:
                    sms = await self.messenger.sms_report(verification.user_id)
                    if sms is not None:
                        shown = sms.status + (f" ({sms.reason})" if sms.reason else "")
                        if not final or sms.status in _FINAL:
                            return shown
                    await asyncio.sleep(0.05)  # a scaled clock: a few real milliseconds
        except TimeoutError:
            return shown

    async def send_code(self, title: str, user: str, typed: str, note: str) -> Verification:
        self.heading(title, f"user {user} asks for a code to {typed!r}", note)
        return await self.messenger.start_verification(user, typed)

    async def confirm(
        self, title: str, verification: Verification, code: str, expected: Confirmation
    ) -> None:
        got = await self.messenger.confirm_phone(verification.user_id, code)
        self.record(title, verification.msisdn, got.value, expected.value, got is expected)

    # --- the branches ----------------------------------------------------------------

    async def present(self) -> None:
        verification = await self.send_code(
            "possession",
            "alice",
            "8 (900) 000-00-01",
            "A one-time code by SMS; the user reads it on the phone and types it back.",
        )
        code = await self.read_code(verification)
        self.say(f"     the phone shows a code: {'yes' if code else 'no'}")
        if code is not None:
            await self.confirm("possession", verification, code, Confirmation.CONFIRMED)
        await self.identify(
            "present",
            "alice",
            "8 (900) 000-00-01",
            Reason.PRESENT,
            note="Possession proven; the operator holds complete data on an active contract.",
            require_possession=True,
        )

    async def sms_undelivered(self) -> None:
        verification = await self.send_code(
            "SMS undelivered",
            "bea",
            "+79000000012",
            "No subscriber has this number: the network cannot deliver the code.",
        )
        status = await self.sms_status(verification)
        wanted = "undelivered (unknown_subscriber)"
        self.record("SMS undelivered", verification.msisdn, status, wanted, status == wanted)
        await self.identify(
            "SMS undelivered: identify",
            "bea",
            "+79000000012",
            Reason.POSSESSION_UNPROVEN,
            note="No code was typed back: identification is refused before the operator is asked.",
            require_possession=True,
        )

    async def sms_phone_off(self) -> None:
        verification = await self.send_code(
            "SMS phone off",
            "cid",
            "+79000000013",
            "The phone is switched off: the message stays sent, then expires with the code.",
        )
        status = await self.sms_status(verification)
        wanted = "expired (phone_unreachable)"
        self.record("SMS phone off", verification.msisdn, status, wanted, status == wanted)

    async def sms_blocked(self) -> None:
        verification = await self.send_code(
            "SMS blocked", "deb", "+79000000015", "The gateway refuses to carry the message."
        )
        status = await self.sms_status(verification)
        wanted = "rejected (blocked)"
        self.record("SMS blocked", verification.msisdn, status, wanted, status == wanted)

    async def sms_throttled(self) -> None:
        self.heading(
            "SMS throttled",
            "user eli asks for six codes in a row",
            f"The gateway takes at most {_SMS_THROTTLE.split('/')[0]} messages to one number "
            "per window; the sixth is refused with 429 and Retry-After.",
        )
        sent = 0
        refused = ""
        for _ in range(6):
            try:
                await self.messenger.start_verification("eli", _THROTTLED)
                sent += 1
            except RateLimited as exc:
                refused = f"429 after {sent} (retry after {exc.retry_after:g} s)"
        self.record(
            "SMS throttled",
            _THROTTLED,
            refused or f"{sent} sent",
            "429 after 5",
            refused.startswith("429 after 5"),
        )

    async def sms_report_lost(self) -> None:
        verification = await self.send_code(
            "SMS report lost",
            "fox",
            "+79000000017",
            "The phone gets the code, but no delivery report ever comes: reports are advisory.",
        )
        code = await self.read_code(verification)
        status = await self.sms_status(verification, final=False)
        self.say(
            f"     the message is still {status!r}; the phone shows a code: {code is not None}"
        )
        if code is not None:
            await self.confirm("SMS report lost", verification, code, Confirmation.CONFIRMED)
        await self.identify(
            "SMS report lost: identify",
            "fox",
            "+79000000017",
            Reason.PRESENT,
            require_possession=True,
        )

    async def wrong_code(self) -> None:
        verification = await self.send_code(
            "wrong code", "gia", "+79000000011", "The user mistypes the code."
        )
        code = await self.read_code(verification) or "000000"
        wrong = f"{(int(code) + 1) % 1_000_000:06d}"
        await self.confirm("wrong code", verification, wrong, Confirmation.WRONG_CODE)
        await self.identify(
            "wrong code: identify",
            "gia",
            "+79000000011",
            Reason.POSSESSION_UNPROVEN,
            require_possession=True,
        )
        await self.confirm("wrong code, then right", verification, code, Confirmation.CONFIRMED)

    async def too_many_attempts(self) -> None:
        verification = await self.send_code(
            "too many attempts",
            "hana",
            "+79000000014",
            "Five wrong codes void the verification; the right one is refused after that. "
            "(This number's SMS takes two simulated minutes.)",
        )
        code = await self.read_code(verification) or "000000"
        wrong = f"{(int(code) + 1) % 1_000_000:06d}"
        results = [await self.messenger.confirm_phone("hana", wrong) for _ in range(5)]
        last = results[-1]
        self.record(
            "too many attempts",
            verification.msisdn,
            f"{results.count(Confirmation.WRONG_CODE)} wrong, then {last.value}",
            "4 wrong, then too_many_attempts",
            results == [Confirmation.WRONG_CODE] * 4 + [Confirmation.TOO_MANY_ATTEMPTS],
        )
        await self.confirm(
            "too many attempts: right code", verification, code, Confirmation.TOO_MANY_ATTEMPTS
        )

    async def sim_swapped(self) -> None:
        verification = await self.send_code(
            "SIM swapped",
            "ivo",
            "+79000000018",
            "The code reaches the phone, but its SIM changed an hour ago: maybe not the owner.",
        )
        code = await self.read_code(verification)
        if code is not None:
            await self.confirm(
                "SIM swapped: possession", verification, code, Confirmation.CONFIRMED
            )
        await self.identify(
            "SIM swapped",
            "ivo",
            "+79000000018",
            Reason.SIM_SWAPPED,
            note="Asked to refuse a number whose SIM changed within 24 hours.",
            require_possession=True,
            max_sim_swap_age=24,
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
            self.sms_undelivered,
            self.sms_phone_off,
            self.sms_blocked,
            self.sms_throttled,
            self.sms_report_lost,
            self.wrong_code,
            self.too_many_attempts,
            self.sim_swapped,
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
        app = create_app(
            Settings(
                db=workdir / "operator-sim.db",
                clock=f"scaled:{SCALE}",
                sms_throttle=_SMS_THROTTLE,
            )
        )
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
