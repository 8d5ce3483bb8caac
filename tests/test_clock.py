"""The simulation clock: modes, anchoring, never backwards, resuming."""

from __future__ import annotations

import pytest

from operator_sim.clock import ClockState, SimClock, parse_clock_spec, wall_time


@pytest.mark.parametrize(
    ("spec", "parsed"),
    [
        ("real", ("real", 1.0)),
        ("manual", ("manual", 1.0)),
        ("scaled:60", ("scaled", 60.0)),
        ("Scaled:0.5", ("scaled", 0.5)),
    ],
)
def test_parse_clock_spec(spec: str, parsed: tuple[str, float]) -> None:
    assert parse_clock_spec(spec) == parsed


@pytest.mark.parametrize(
    "spec", ["", "fast", "scaled:", "scaled:x", "scaled:0", "scaled:-2", "scaled:1e9"]
)
def test_parse_clock_spec_refuses(spec: str) -> None:
    with pytest.raises(ValueError, match="clock"):
        parse_clock_spec(spec)


def test_manual_clock_moves_only_when_advanced() -> None:
    clock = SimClock("manual", start_ms=1_000)
    assert clock.now_ms() == 1_000
    clock.advance(500)
    assert clock.now_ms() == 1_500
    with pytest.raises(ValueError, match="forward"):
        clock.advance(-1)


def test_real_clock_follows_wall_time() -> None:
    clock = SimClock("real")
    assert abs(clock.now_ms() / 1000 - wall_time()) < 5


def test_switching_mode_continues_from_current_time() -> None:
    clock = SimClock("manual", start_ms=10_000_000)
    clock.set_mode("scaled", 1000)
    assert clock.now_ms() >= 10_000_000
    clock.set_mode("manual")
    frozen = clock.now_ms()
    assert clock.now_ms() == frozen


def test_manual_state_resumes_exactly() -> None:
    clock = SimClock("manual", start_ms=5_000)
    clock.advance(7_000)
    resumed = SimClock.resume(clock.state())
    assert (resumed.mode, resumed.now_ms()) == ("manual", 12_000)


def test_running_state_counts_the_time_it_was_stopped() -> None:
    stopped_for = 10.0
    state = ClockState("scaled", 60.0, 1_000_000, wall_time() - stopped_for)
    resumed = SimClock.resume(state)
    assert resumed.now_ms() >= 1_000_000 + stopped_for * 60 * 1000


def test_real_seconds_until() -> None:
    manual = SimClock("manual", start_ms=0)
    assert manual.real_seconds_until(1000) is None
    assert manual.real_seconds_until(0) == 0.0
    scaled = SimClock("scaled", 60.0, start_ms=0)
    wait = scaled.real_seconds_until(scaled.now_ms() + 60_000)
    assert wait is not None
    assert 0.9 < wait <= 1.0
