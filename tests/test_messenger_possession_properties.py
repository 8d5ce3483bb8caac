"""Property tests of proof of possession: the attempt limit and the expiry, for any sequence.

Each example is a sequence of moves of the library's clock and codes typed (the right
one or a wrong one). A short reference model says what each attempt must give; the pure
``judge`` and the whole flow on a real store (the code sent through a stand-in for the
gateway that keeps the text, as a phone would) must both agree with it.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from operator_sim.messenger.client import OperatorClient
from operator_sim.messenger.otp import Confirmation, judge
from operator_sim.messenger.possession import PossessionFlow, PossessionPolicy
from operator_sim.messenger.steps import Reporter
from operator_sim.messenger.store import MessengerStore
from operator_sim.wire import SmsMessage

TTL = 600.0

# A move: (seconds the clock moves first, whether the right code is typed).
moves = st.lists(
    st.tuples(st.sampled_from([0.0, 1.0, 59.0, 299.5, 0.5]), st.booleans()),
    min_size=1,
    max_size=12,
)
max_attempts = st.integers(min_value=1, max_value=6)


def model(sequence: list[tuple[float, bool]], limit: int) -> list[Confirmation]:
    """What each attempt must give: the reference the implementations are held to."""
    results: list[Confirmation] = []
    elapsed, wrong, done = 0.0, 0, None
    for step, right in sequence:
        elapsed += step
        if done is not None:
            results.append(done)
            continue
        if elapsed >= TTL:
            results.append(Confirmation.EXPIRED)
            continue
        if right:
            results.append(Confirmation.CONFIRMED)
            done = Confirmation.NOT_STARTED
            continue
        wrong += 1
        if wrong >= limit:
            results.append(Confirmation.TOO_MANY_ATTEMPTS)
            done = Confirmation.TOO_MANY_ATTEMPTS
        else:
            results.append(Confirmation.WRONG_CODE)
    return results


@given(moves, max_attempts)
def test_judge_follows_the_model(sequence: list[tuple[float, bool]], limit: int) -> None:
    state, attempts, now = "pending", 0, 0.0
    got = []
    for step, right in sequence:
        now += step
        verdict = judge(
            state=state,  # type: ignore[arg-type]
            attempts=attempts,
            now=now,
            expires_at=TTL,
            matches=right,
            max_attempts=limit,
        )
        state, attempts = verdict.state, verdict.attempts
        got.append(verdict.result)
    assert got == model(sequence, limit)
    assert attempts <= limit
    assert got.count(Confirmation.CONFIRMED) <= 1
    assert got.count(Confirmation.WRONG_CODE) <= limit - 1


@dataclass
class _Clock:
    now: float = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


class _Gateway(OperatorClient):
    """Keeps what was sent, as the phone would; no network."""

    def __init__(self) -> None:
        super().__init__("http://127.0.0.1:9", "unused")
        self.texts: list[str] = []

    async def send_sms(
        self,
        to: str,
        text: str,
        *,
        idempotency_key: str,
        sender: str | None = None,
        client_ref: str | None = None,
        ttl: timedelta | None = None,
    ) -> SmsMessage:
        self.texts.append(text)
        now = datetime.now(UTC)
        return SmsMessage(
            id=f"sms_{len(self.texts)}",
            to=to,
            sender="OpSim",
            text_length=len(text),
            segments=1,
            encoding="gsm7",
            client_ref=None,
            status="accepted",
            reason=None,
            operator_id=None,
            created_at=now,
            status_at=now,
            expires_at=now + timedelta(minutes=10),
        )


async def _run(sequence: list[tuple[float, bool]], limit: int) -> list[Confirmation]:
    store = await MessengerStore.open(":memory:")
    gateway = _Gateway()
    clock = _Clock()
    flow = PossessionFlow(
        gateway,
        store,
        report=Reporter(None),
        policy=PossessionPolicy(ttl=TTL, max_attempts=limit, clock=clock),
        region="RU",
    )
    try:
        await flow.start("u", "+79000000011")
        found = re.search(r"\d{6}", gateway.texts[-1])
        assert found is not None
        code = found.group(0)
        wrong = f"{(int(code) + 1) % 1_000_000:06d}"
        results = []
        for step, right in sequence:
            clock.now += step
            results.append(await flow.confirm("u", code if right else wrong))
        holds = await flow.holds("u", "+79000000011")
        assert holds == (Confirmation.CONFIRMED in results)
        return results
    finally:
        await gateway.close()
        await store.close()


@settings(max_examples=40, deadline=None)
@given(moves, max_attempts)
def test_the_flow_on_a_real_store_follows_the_model(
    sequence: list[tuple[float, bool]], limit: int
) -> None:
    assert asyncio.run(_run(sequence, limit)) == model(sequence, limit)
