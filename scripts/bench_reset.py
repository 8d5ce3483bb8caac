"""Measure `POST /admin/v1/reset` and `POST /admin/v1/messengers/{id}/reset` on the default fixture.

Starts an in-process server (free loopback port, temporary database, manual clock), and
before every reset leaves behind what a test typically does: identification requests
(answered, pending with scheduled answers and expiries, refused by a rule), a code, an
idempotency key and a runtime rule, for two messengers. Prints every call's real time
as the client sees it (HTTP round trip included), then median, p95 and max.

    python scripts/bench_reset.py [--runs 50] [--requests 10]
"""

from __future__ import annotations

import argparse
import asyncio
import sqlite3
import statistics
import time

from operator_sim.logs import configure_logging
from operator_sim.testing import OperatorSim

_NUMBERS = ("+79000000001", "+79000000005", "+79000000007", "+79000000009", "+79011110001")


async def _leave_state(sim: OperatorSim, key: str, tag: str, requests: int) -> None:
    """What one test leaves behind for one messenger."""
    headers = sim.messenger_headers(key)
    for i in range(requests):
        async with sim.session.post(
            "/operators/alfa/v1/identification-requests",
            json={"msisdn": _NUMBERS[i % len(_NUMBERS)]},
            headers={**headers, "Idempotency-Key": f"{tag}-{i}"},
        ) as resp:
            body = await resp.json() if resp.status == 201 else None
        if i == 0 and body is not None:
            async with sim.session.post(
                "/operators/alfa/v1/identification-codes",
                json={"request_id": body["id"], "code": f"code-{tag}-{i:04d}"},
                headers=headers,
            ) as resp:
                resp.raise_for_status()
    await sim.add_rule(
        {"id": f"rule-{tag}", "match": {"msisdn": "+7903*"}, "action": {"type": "never"}}
    )


async def _timed_post(sim: OperatorSim, path: str) -> float:
    started = time.perf_counter()
    async with sim.session.post(
        path, headers={"Authorization": f"Bearer {sim.admin_token}"}
    ) as resp:
        await resp.read()
        elapsed = time.perf_counter() - started
        if resp.status != 204:
            raise SystemExit(f"{path} answered {resp.status}")
    return elapsed * 1000


def _summary(name: str, figures: list[float]) -> None:
    ordered = sorted(figures)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    print(f"{name}: per call (ms): " + " ".join(f"{ms:.1f}" for ms in figures))
    print(
        f"{name}: {len(figures)} calls, median {statistics.median(figures):.2f} ms, "
        f"p95 {p95:.2f} ms, max {ordered[-1]:.2f} ms"
    )


async def _run(runs: int, requests: int) -> None:
    async with OperatorSim() as sim:
        other = await sim.register_messenger("other")
        print(
            f"bench_reset: default fixture, {runs} runs, {requests} identification requests "
            f"per messenger before each reset, SQLite {sqlite3.sqlite_version}"
        )
        full: list[float] = []
        for run in range(runs):
            await _leave_state(sim, sim.messenger_key, f"a{run}", requests)
            await _leave_state(sim, other.api_key, f"b{run}", requests)
            full.append(await _timed_post(sim, "/admin/v1/reset"))
        one: list[float] = []
        for run in range(runs):
            await _leave_state(sim, sim.messenger_key, f"c{run}", requests)
            await _leave_state(sim, other.api_key, f"d{run}", requests)
            one.append(await _timed_post(sim, f"/admin/v1/messengers/{sim.messenger_id}/reset"))
            # Keep the other messenger's state from piling up across runs.
            await _timed_post(sim, "/admin/v1/messengers/other/reset")
        _summary("reset (everything)", full)
        _summary("reset (one messenger)", one)


def main() -> None:
    """Run the measurement and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--requests", type=int, default=10)
    args = parser.parse_args()
    configure_logging("error", "json")  # the server's request lines would drown the figures
    asyncio.run(_run(args.runs, args.requests))


if __name__ == "__main__":
    main()
