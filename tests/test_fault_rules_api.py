"""Fault rules through the admin API: every behaviour, `times`, `probability`, bad input."""

from __future__ import annotations

import asyncio
import json
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pydantic
import pytest

from operator_sim.fixture import default_fixture_path
from operator_sim.server import create_app
from operator_sim.settings import Settings
from operator_sim.wire import IdentificationRequest
from tests.conftest import AiohttpClient, Sim

PRESENT = "+79011110001"
UNKNOWN = "+79011110002"


async def add_present(sim: Sim, msisdn: str = PRESENT, operator_id: str = "alfa") -> None:
    """A subscriber the operator answers `present` for."""
    await sim.add_subscribers(
        {
            "msisdn": msisdn,
            "operator_id": operator_id,
            "full_name": "Тестов Тест Тестович",
            "birth_date": "1990-01-01",
            "passport": "4500 000001",
        }
    )


async def add_rule(sim: Sim, spec: dict[str, Any]) -> dict[str, Any]:
    """POST a rule that must be accepted."""
    resp = await sim.admin("POST", "/rules", spec)
    assert resp.status == 201, await resp.text()
    body: dict[str, Any] = await resp.json()
    return body


async def rules_by_id(sim: Sim) -> dict[str, dict[str, Any]]:
    """GET /rules keyed by id (in order)."""
    body = await sim.admin_ok("GET", "/rules")
    return {r["id"]: r for r in body["rules"]}


def ts(value: str) -> datetime:
    """An RFC 3339 timestamp from the API."""
    return datetime.fromisoformat(value)


def delay_of(request: dict[str, Any]) -> timedelta:
    """How long after receipt a request was answered."""
    return ts(request["answered_at"]) - ts(request["received_at"])


# --- the admin API ---------------------------------------------------------------------


async def test_post_returns_201_with_the_rule_its_source_and_no_hits(sim: Sim) -> None:
    resp = await sim.admin(
        "POST",
        "/rules",
        {"id": "slow", "match": {"msisdn": "+7901111*"}, "action": {"type": "never"}},
    )
    assert resp.status == 201
    assert resp.headers["Location"] == "/admin/v1/rules/slow"
    body = await resp.json()
    assert body["id"] == "slow"
    assert body["source"] == "runtime"
    assert body["hits"] == 0
    assert body["match"]["msisdn"] == "+7901111*"
    assert body["action"] == {"type": "never"}
    assert body["probability"] is None


async def test_list_shows_fixture_rules_first_then_runtime_with_hit_counts(sim: Sim) -> None:
    await add_rule(sim, {"id": "forced", "match": {"msisdn": PRESENT}, "action": {"type": "never"}})
    await sim.identify_ok(PRESENT)
    await sim.identify_ok(PRESENT)
    await sim.identify_ok("+79000000005")  # the fixture's never-answered magic number
    rules = await rules_by_id(sim)
    ids = list(rules)
    assert ids[-1] == "forced"
    assert {"magic-never-answered", "magic-503-twice", "magic-429-once"} <= set(ids[:-1])
    assert all(rules[i]["source"] == "fixture" for i in ids[:-1])
    assert rules["forced"]["hits"] == 2
    assert rules["magic-never-answered"]["hits"] == 1
    assert rules["magic-503-twice"]["hits"] == 0
    one = await sim.admin_ok("GET", "/rules/forced")
    assert one == rules["forced"]
    metrics = await (await sim.client.get("/metrics")).text()
    assert 'operator_sim_fault_rule_hits_total{rule_id="forced"} 2.0' in metrics


async def test_duplicate_rule_id_is_409_and_keeps_the_first(sim: Sim) -> None:
    await add_rule(sim, {"id": "dup", "action": {"type": "never"}, "match": {"msisdn": PRESENT}})
    again = await sim.admin("POST", "/rules", {"id": "dup", "action": {"type": "drop"}})
    assert again.status == 409
    assert (await again.json())["code"] == "conflict"
    fixture_id = await sim.admin(
        "POST", "/rules", {"id": "magic-429-once", "action": {"type": "drop"}}
    )
    assert fixture_id.status == 409
    rules = await rules_by_id(sim)
    assert rules["dup"]["action"] == {"type": "never"}
    assert rules["magic-429-once"]["source"] == "fixture"


async def test_delete_removes_a_rule_and_unknown_ids_are_404(sim: Sim) -> None:
    await add_present(sim)
    await add_rule(sim, {"id": "gone", "match": {"msisdn": PRESENT}, "action": {"type": "never"}})
    assert (await sim.admin("DELETE", "/rules/gone")).status == 204
    assert (await sim.identify_ok(PRESENT))["result"] == "present"
    missing = await sim.admin("DELETE", "/rules/gone")
    assert missing.status == 404
    assert (await missing.json())["code"] == "not_found"
    assert (await sim.admin("GET", "/rules/gone")).status == 404


async def test_deleted_fixture_rules_come_back_on_reset(sim: Sim) -> None:
    assert (await sim.admin("DELETE", "/rules/magic-never-answered")).status == 204
    assert (await sim.identify_ok("+79000000005"))["status"] == "answered"
    assert (await sim.admin("POST", "/reset")).status == 204
    assert (await sim.identify_ok("+79000000005"))["status"] == "pending"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (
            {
                "id": "u",
                "action": {
                    "type": "answer",
                    "delay": {"distribution": "uniform", "min": "-PT5M", "max": "PT1M"},
                },
            },
            "action",
        ),
        (
            {
                "id": "l",
                "action": {
                    "type": "answer",
                    "delay": {"distribution": "lognormal", "median": "PT1M", "sigma": 0},
                },
            },
            "action",
        ),
        ({"id": "d", "action": {"type": "answer", "delay": {"distribution": "poisson"}}}, "action"),
        ({"id": "p", "action": {"type": "never"}, "probability": 1.5}, "probability"),
        ({"id": "t", "action": {"type": "never"}, "times": 0}, "times"),
        ({"id": "late", "action": {"type": "late", "by": -1}}, "action"),
        ({"id": "m", "action": {"type": "malformed", "status": 500}}, "action"),
        ({"id": "m2", "action": {"type": "malformed", "body": "gibberish"}}, "action"),
        ({"id": "h", "action": {"type": "http_error", "status": 302}}, "action"),
        ({"id": "x", "action": {"type": "explode"}}, "action"),
        ({"id": "g", "match": {"msisdn": "+7abc*"}, "action": {"type": "never"}}, "match"),
        ({"id": "Bad Id", "action": {"type": "never"}}, "id"),
        ({"id": "f", "action": {"type": "never"}, "colour": "red"}, "colour"),
        ({"action": {"type": "never"}}, "id"),
    ],
)
async def test_bad_rule_input_is_422_and_stores_nothing(
    sim: Sim, body: dict[str, Any], field: str
) -> None:
    before = await rules_by_id(sim)
    resp = await sim.admin("POST", "/rules", body)
    assert resp.status == 422, await resp.text()
    problem = await resp.json()
    assert resp.headers["Content-Type"].startswith("application/problem+json")
    assert problem["code"] == "validation_error"
    assert any(e["loc"][0] == field for e in problem["errors"]), problem
    assert await rules_by_id(sim) == before


async def test_a_rule_for_an_unknown_operator_is_422(sim: Sim) -> None:
    resp = await sim.admin(
        "POST",
        "/rules",
        {"id": "nowhere", "match": {"operator_id": "zz"}, "action": {"type": "never"}},
    )
    assert resp.status == 422
    assert "nowhere" not in await rules_by_id(sim)


async def test_rules_need_the_admin_token(sim: Sim) -> None:
    resp = await sim.client.post(
        "/admin/v1/rules", json={"id": "x", "action": {"type": "never"}}, headers=sim.auth("nope")
    )
    assert resp.status == 401


# --- behaviours -------------------------------------------------------------------------


async def test_fixed_delay_answers_after_the_delay(sim: Sim) -> None:
    await add_present(sim)
    await add_rule(
        sim,
        {"id": "slow", "match": {"msisdn": PRESENT}, "action": {"type": "answer", "delay": "PT3M"}},
    )
    req = await sim.identify_ok(PRESENT)
    assert req["status"] == "pending"
    await sim.advance(179)
    assert (await sim.get_request(req["id"]))["status"] == "pending"
    await sim.advance(1)
    answered = await sim.get_request(req["id"])
    assert answered["status"] == "answered"
    assert answered["result"] == "present"
    assert delay_of(answered) == timedelta(minutes=3)


async def _answer_delays(sim: Sim, count: int) -> list[timedelta]:
    ids = [(await sim.identify_ok(f"+7901222{i:04d}"))["id"] for i in range(count)]
    await sim.advance(19 * 60)
    return [delay_of(await sim.get_request(i)) for i in ids]


async def test_uniform_delay_draws_within_its_bounds_reproducibly(sim: Sim) -> None:
    spec = {
        "id": "uniform",
        "match": {"msisdn": "+7901222*"},
        "action": {
            "type": "answer",
            "delay": {"distribution": "uniform", "min": "PT1M", "max": "PT5M"},
        },
    }
    await add_rule(sim, spec)
    first = await _answer_delays(sim, 12)
    assert all(timedelta(minutes=1) <= d <= timedelta(minutes=5) for d in first)
    assert len(set(first)) > 6  # drawn, not fixed
    assert (await sim.admin("POST", "/reset")).status == 204
    await add_rule(sim, spec)
    assert await _answer_delays(sim, 12) == first  # the same seed gives the same draws


async def test_lognormal_delay_is_capped_and_reproducible(sim: Sim) -> None:
    spec = {
        "id": "lognormal",
        "match": {"msisdn": "+7901222*"},
        "action": {
            "type": "answer",
            "delay": {"distribution": "lognormal", "median": "PT2M", "sigma": 1.5, "max": "PT6M"},
        },
    }
    await add_rule(sim, spec)
    first = await _answer_delays(sim, 20)
    assert all(timedelta(0) <= d <= timedelta(minutes=6) for d in first)
    assert timedelta(minutes=6) in first  # sigma 1.5: some draws exceed 3x the median
    assert any(d < timedelta(minutes=2) for d in first)
    assert (await sim.admin("POST", "/reset")).status == 204
    await add_rule(sim, spec)
    assert await _answer_delays(sim, 20) == first


async def test_a_different_seed_draws_differently(
    aiohttp_client: AiohttpClient, tmp_path: Path
) -> None:
    spec = {
        "id": "uniform",
        "match": {"msisdn": "+7901222*"},
        "action": {"type": "answer", "delay": {"distribution": "uniform", "min": 60, "max": 600}},
    }
    runs = []
    for seed in (1, 2):
        app = create_app(Settings(db=tmp_path / f"seed{seed}.db", clock="manual", seed=seed))
        sim = Sim(await aiohttp_client(app), tmp_path / f"seed{seed}.db")
        await add_rule(sim, spec)
        runs.append(await _answer_delays(sim, 8))
    assert runs[0] != runs[1]


async def test_never_expires_at_the_deadline(sim: Sim) -> None:
    await add_present(sim)
    await add_rule(sim, {"id": "mute", "match": {"msisdn": PRESENT}, "action": {"type": "never"}})
    req = await sim.identify_ok(PRESENT)
    await sim.advance(20 * 60 - 1)
    assert (await sim.get_request(req["id"]))["status"] == "pending"
    await sim.advance(1)
    expired = await sim.get_request(req["id"])
    assert expired["status"] == "expired"
    assert expired["result"] is None
    await sim.advance(24 * 3600)
    assert (await sim.get_request(req["id"]))["status"] == "expired"


async def test_late_answers_after_the_deadline(sim: Sim) -> None:
    await add_present(sim)
    await add_rule(
        sim, {"id": "late", "match": {"msisdn": PRESENT}, "action": {"type": "late", "by": "PT7M"}}
    )
    req = await sim.identify_ok(PRESENT)
    await sim.advance(20 * 60)
    assert (await sim.get_request(req["id"]))["status"] == "expired"
    await sim.advance(7 * 60)
    late = await sim.get_request(req["id"])
    assert late["status"] == "answered"
    assert late["result"] == "present"
    assert ts(late["answered_at"]) - ts(late["due_at"]) == timedelta(minutes=7)
    assert (await sim.register_code(req["id"], "code-late-1")).status == 409


@pytest.mark.parametrize(("msisdn", "forced"), [(PRESENT, "absent"), (UNKNOWN, "present")])
async def test_forced_results_override_the_subscriber_database(
    sim: Sim, msisdn: str, forced: str
) -> None:
    await add_present(sim)
    await add_rule(
        sim,
        {
            "id": "force",
            "match": {"msisdn": msisdn},
            "action": {"type": "answer", "result": forced},
        },
    )
    req = await sim.identify_ok(msisdn)
    assert req["status"] == "answered"
    assert req["result"] == forced


async def test_http_error_with_retry_after_creates_nothing(sim: Sim) -> None:
    await add_present(sim)
    await add_rule(
        sim,
        {
            "id": "busy",
            "match": {"msisdn": PRESENT},
            "action": {"type": "http_error", "status": 503, "retry_after": 7},
            "times": 1,
        },
    )
    key = {"Idempotency-Key": "retry-me"}
    resp = await sim.identify(PRESENT, headers=key)
    assert resp.status == 503
    assert resp.headers["Retry-After"] == "7"
    assert (await resp.json())["code"] == "operator_unavailable"
    journal = (await sim.admin_ok("GET", f"/requests?msisdn=%2B{PRESENT[1:]}"))["requests"]
    assert [(e["http_status"], e["rule_id"], e["id"]) for e in journal] == [(503, "busy", None)]
    retried = await sim.identify(PRESENT, headers=key)  # the key was not consumed
    assert retried.status == 201
    assert retried.headers.get("Idempotent-Replayed") is None


async def test_drop_closes_the_connection_without_a_response(sim: Sim) -> None:
    await add_rule(sim, {"id": "cut", "match": {"msisdn": UNKNOWN}, "action": {"type": "drop"}})
    with pytest.raises(aiohttp.ClientError):
        await sim.identify(UNKNOWN)
    journal = (await sim.admin_ok("GET", "/requests?limit=1"))["requests"]
    assert [(e["http_status"], e["rule_id"], e["id"]) for e in journal] == [(0, "cut", None)]


@pytest.mark.parametrize("kind", ["truncated", "not_json", "wrong_shape", "empty"])
async def test_malformed_answers_success_with_a_body_no_client_can_use(sim: Sim, kind: str) -> None:
    await add_present(sim)
    await add_rule(
        sim,
        {
            "id": "garbled",
            "match": {"msisdn": PRESENT},
            "action": {"type": "malformed", "body": kind},
        },
    )
    resp = await sim.identify(PRESENT)
    assert resp.status == 201
    assert resp.headers["Content-Type"] == "application/json"
    raw = await resp.read()
    with pytest.raises((ValueError, pydantic.ValidationError)):
        IdentificationRequest.model_validate(json.loads(raw))
    journal = (await sim.admin_ok("GET", "/requests?limit=1"))["requests"]
    assert [(e["http_status"], e["rule_id"], e["id"]) for e in journal] == [(201, "garbled", None)]


async def test_malformed_can_answer_200(sim: Sim) -> None:
    await add_rule(
        sim,
        {
            "id": "ok200",
            "match": {"msisdn": UNKNOWN},
            "action": {"type": "malformed", "status": 200},
        },
    )
    resp = await sim.identify(UNKNOWN)
    assert resp.status == 200
    assert (await resp.read()).startswith(b'{"id":"ir_01MALFORMED"')


async def test_match_by_messenger_operator_and_glob(sim: Sim) -> None:
    other = await sim.new_messenger("other")
    await add_rule(
        sim,
        {
            "id": "narrow",
            "match": {"msisdn": "+7910*", "messenger_id": "other", "operator_id": "beta"},
            "action": {"type": "http_error", "status": 429, "retry_after": 1},
        },
    )
    number = "+79101234567"
    assert (await sim.identify(number, operator="beta")).status == 201  # another messenger
    assert (await sim.identify(number, operator="beta", key=other["api_key"])).status == 429
    assert (await sim.identify(number, operator="alfa", key=other["api_key"])).status == 201
    assert (await sim.identify("+79111234567", operator="beta", key=other["api_key"])).status == 201


# --- times and probability -------------------------------------------------------------


async def test_times_limits_a_rule_then_requests_fall_through(sim: Sim) -> None:
    await add_present(sim)
    await add_rule(
        sim,
        {
            "id": "twice",
            "match": {"msisdn": PRESENT},
            "action": {"type": "http_error", "status": 503},
            "times": 2,
        },
    )
    statuses = [(await sim.identify(PRESENT)).status for _ in range(4)]
    assert statuses == [503, 503, 201, 201]
    assert (await rules_by_id(sim))["twice"]["hits"] == 2


async def test_times_counts_exactly_under_concurrent_requests(sim: Sim) -> None:
    await add_rule(
        sim,
        {
            "id": "five",
            "match": {"msisdn": "+7901333*"},
            "action": {"type": "http_error", "status": 503, "retry_after": 1},
            "times": 5,
        },
    )
    responses = await asyncio.gather(*(sim.identify(f"+7901333{i:04d}") for i in range(30)))
    statuses = sorted(r.status for r in responses)
    assert statuses == [201] * 25 + [503] * 5
    assert (await rules_by_id(sim))["five"]["hits"] == 5
    count = await sim.admin_ok("GET", "/requests/count")
    assert count == {"count": 30}


async def _chance_pattern(sim: Sim, n: int) -> list[bool]:
    """Which of n requests on distinct numbers the 503 rule hit."""
    return [(await sim.identify(f"+7901444{i:04d}")).status == 503 for i in range(n)]


async def test_probability_applies_to_about_that_share_with_a_fixed_seed(sim: Sim) -> None:
    spec = {
        "id": "flaky",
        "match": {"msisdn": "+7901444*"},
        "action": {"type": "http_error", "status": 503},
        "probability": 0.3,
    }
    await add_rule(sim, spec)
    first = await _chance_pattern(sim, 300)
    hits = sum(first)
    # Binomial(300, 0.3): mean 90, standard deviation 7.9; the seed is fixed, so this
    # checks the draw is a fair one (within 3 standard deviations), not luck.
    assert 66 <= hits <= 114, hits
    assert (await rules_by_id(sim))["flaky"]["hits"] == hits
    assert (await sim.admin("POST", "/reset")).status == 204
    await add_rule(sim, spec)
    assert await _chance_pattern(sim, 300) == first  # reset restarts the seeded draws


@pytest.mark.parametrize(("probability", "expected"), [(0.0, False), (1.0, True)])
async def test_probability_zero_never_applies_and_one_always_does(
    sim: Sim, probability: float, expected: bool
) -> None:
    await add_rule(
        sim,
        {
            "id": "edge",
            "match": {"msisdn": "+7901444*"},
            "action": {"type": "http_error", "status": 503},
            "probability": probability,
        },
    )
    assert await _chance_pattern(sim, 20) == [expected] * 20


async def test_a_failed_draw_does_not_use_up_times(sim: Sim) -> None:
    await add_rule(
        sim,
        {
            "id": "rare",
            "match": {"msisdn": "+7901444*"},
            "action": {"type": "http_error", "status": 503},
            "probability": 0.25,
            "times": 3,
        },
    )
    pattern = await _chance_pattern(sim, 100)
    assert sum(pattern) == 3
    # Were failed draws counted, the rule would be spent after its first three matches.
    assert max(i for i, hit in enumerate(pattern) if hit) > 2


async def test_magic_numbers_are_ordinary_fixture_rules(sim: Sim) -> None:
    rules = await rules_by_id(sim)
    assert rules["magic-503-twice"]["action"] == {
        "type": "http_error",
        "status": 503,
        "retry_after": 1,
    }
    assert rules["magic-late-answer"]["match"]["msisdn"] == "+79000000006"


# --- rules in a fixture file -----------------------------------------------------------

_EXTRA_RULES = """
[[rules]]
id = "fx-uniform"
match = { msisdn = "+7901555*" }
action = { type = "answer", delay = { distribution = "uniform", min = "PT1M", max = "PT2M" } }
probability = 0.5

[[rules]]
id = "fx-late"
match = { msisdn = "+79017770000" }
action = { type = "late", by = "PT1M" }

[[rules]]
id = "fx-garbled"
match = { msisdn = "+79016660000" }
action = { type = "malformed", body = "not_json" }
"""


async def test_a_fixture_file_declares_the_new_kinds_of_rule(
    aiohttp_client: AiohttpClient, tmp_path: Path
) -> None:
    head, sep, rest = default_fixture_path().read_text(encoding="utf-8").partition("[[operators]]")
    fixture = tmp_path / "rules.toml"
    fixture.write_text(f"{head}seed = 7\n{sep}{rest}{_EXTRA_RULES}", encoding="utf-8")
    app = create_app(Settings(db=tmp_path / "fx.db", clock="manual", fixture=fixture))
    sim = Sim(await aiohttp_client(app), tmp_path / "fx.db")
    rules = await rules_by_id(sim)
    assert [rules[i]["source"] for i in ("fx-uniform", "fx-late", "fx-garbled")] == ["fixture"] * 3
    assert rules["fx-uniform"]["probability"] == 0.5
    assert rules["fx-uniform"]["action"]["delay"] == {
        "distribution": "uniform",
        "min": "PT1M",
        "max": "PT2M",
    }
    garbled = await sim.identify("+79016660000")
    assert garbled.status == 201
    assert (await garbled.read()).startswith(b"<html>")
    late = await sim.identify_ok("+79017770000")
    await sim.advance(21 * 60)
    answered = await sim.get_request(late["id"])
    assert answered["status"] == "answered"
    assert ts(answered["answered_at"]) - ts(answered["due_at"]) == timedelta(minutes=1)


async def test_uniform_range_given_backwards_is_read_the_right_way_round(sim: Sim) -> None:
    resp = await sim.admin(
        "POST",
        "/rules",
        {
            "id": "u",
            "action": {
                "type": "answer",
                "delay": {"distribution": "uniform", "min": "PT5M", "max": "PT1M"},
            },
        },
    )
    assert resp.status == 201
    assert (await resp.json())["action"]["delay"] == {
        "distribution": "uniform",
        "min": "PT1M",
        "max": "PT5M",
    }
