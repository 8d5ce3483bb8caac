"""Every bad input gets a 4xx problem+json with a stable code, and nothing in the store changes."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest

from operator_sim.server.calls import Call
from operator_sim.server.routing import Router
from tests.conftest import ADMIN_TOKEN, DEMO_KEY, IR_PATH, Sim

IR = IR_PATH.format(operator="alfa")
_TABLES = (
    "identification_requests",
    "identification_codes",
    "idempotency_keys",
    "jobs",
    "messengers",
    "subscribers",
    "rule_counters",
)


def _snapshot(db: Path) -> dict[str, int]:
    """Row counts of the state a refused call must not change (the journal records it)."""
    with sqlite3.connect(db) as conn:
        return {t: conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in _TABLES}  # noqa: S608


def _journal(db: Path) -> list[tuple[str, int]]:
    with sqlite3.connect(db) as conn:
        return conn.execute("SELECT endpoint, http_status FROM journal ORDER BY id").fetchall()


async def _problem(resp: Any, status: int, code: str) -> dict[str, Any]:
    assert resp.status == status, await resp.text()
    assert resp.content_type == "application/problem+json"
    body: dict[str, Any] = await resp.json()
    assert body["code"] == code
    assert body["status"] == status
    assert {"type", "title", "detail"} <= set(body)
    assert body["type"] == f"urn:operator-sim:problem:{code}"
    assert "Traceback" not in await resp.text()
    return body


def _headers(**extra: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {DEMO_KEY}", **extra}


JSON = {"Content-Type": "application/json"}


@pytest.mark.parametrize(
    ("body", "headers", "status", "code"),
    [
        (b"{not json", JSON, 400, "invalid_json"),
        (b"", JSON, 400, "invalid_json"),
        (b"[1, 2]", JSON, 422, "validation_error"),
        (b'"+79000000001"', JSON, 422, "validation_error"),
        (b"null", JSON, 422, "validation_error"),
        (b'{"msisdn": "+79000000001", "extra": 1}', JSON, 422, "validation_error"),
        (b'{"msisdn": 79000000001}', JSON, 422, "validation_error"),
        (b"{}", JSON, 422, "validation_error"),
        (b'{"msisdn": "89000000001"}', JSON, 422, "invalid_msisdn"),
        (b'{"msisdn": "+7 900 000 00 01"}', JSON, 422, "invalid_msisdn"),
        (b'{"msisdn": "+0123456789"}', JSON, 422, "invalid_msisdn"),
        (b'{"msisdn": "+12345"}', JSON, 422, "invalid_msisdn"),
        (b'{"msisdn": "+1234567890123456"}', JSON, 422, "invalid_msisdn"),
        (b'{"msisdn": "+7900000000\\u0661"}', JSON, 422, "invalid_msisdn"),
        (
            b'{"msisdn": "+79000000001"}',
            {"Content-Type": "text/plain"},
            415,
            "unsupported_media_type",
        ),
        (b'{"msisdn": "+79000000001"}', {}, 415, "unsupported_media_type"),
        (b'{"msisdn": "+79000000001"}', {**JSON, "Idempotency-Key": ""}, 422, "validation_error"),
    ],
    ids=[
        "malformed-json",
        "empty-body",
        "array",
        "string",
        "null",
        "unknown-field",
        "number-type",
        "missing-field",
        "national-format",
        "spaces",
        "leading-zero",
        "too-short",
        "too-long",
        "non-ascii-digit",
        "text-plain",
        "no-content-type",
        "empty-idempotency-key",
    ],
)
async def test_bad_identification_posts_change_nothing(
    sim: Sim, body: bytes, headers: dict[str, str], status: int, code: str
) -> None:
    before, journal = _snapshot(sim.db_path), _journal(sim.db_path)
    resp = await sim.client.post(IR, data=body, headers=_headers(**headers))
    await _problem(resp, status, code)
    assert _snapshot(sim.db_path) == before
    # The refused call itself is journalled, with its status.
    assert _journal(sim.db_path) == [*journal, ("identification.create", status)]


async def test_charset_parameter_is_accepted(sim: Sim) -> None:
    resp = await sim.client.post(
        IR,
        data=b'{"msisdn": "+79000000001"}',
        headers=_headers(**{"Content-Type": "application/json; charset=utf-8"}),
    )
    assert resp.status == 201


async def test_oversized_body_is_413(sim: Sim) -> None:
    before = _snapshot(sim.db_path)
    big = b'{"msisdn": "' + b"1" * (70 * 1024) + b'"}'
    resp = await sim.client.post(IR, data=big, headers=_headers(**JSON))
    await _problem(resp, 413, "payload_too_large")
    assert _snapshot(sim.db_path) == before


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer wrong-key"},
        {"Authorization": "Basic dXNlcjpwYXNz"},
        {"Authorization": "Bearer"},
        {"Authorization": f"Bearer {ADMIN_TOKEN}"},
    ],
    ids=["none", "wrong", "basic", "empty-bearer", "admin-token"],
)
async def test_missing_or_wrong_key_is_401_and_changes_nothing(
    sim: Sim, headers: dict[str, str]
) -> None:
    before = _snapshot(sim.db_path)
    resp = await sim.client.post(IR, json={"msisdn": "+79000000001"}, headers=headers)
    await _problem(resp, 401, "unauthorized")
    assert resp.headers["WWW-Authenticate"] == "Bearer"
    assert _snapshot(sim.db_path) == before


async def test_bearer_scheme_is_case_insensitive(sim: Sim) -> None:
    resp = await sim.client.post(
        IR, json={"msisdn": "+79000000001"}, headers={"Authorization": f"bearer {DEMO_KEY}"}
    )
    assert resp.status == 201


async def test_unknown_request_id_is_404(sim: Sim) -> None:
    resp = await sim.client.get(f"{IR}/ir_01NOTHING", headers=_headers())
    await _problem(resp, 404, "not_found")


async def test_unknown_route_is_problem_404(sim: Sim) -> None:
    resp = await sim.client.get("/nowhere")
    await _problem(resp, 404, "not_found")


async def test_wrong_method_is_problem_405_with_allow(sim: Sim) -> None:
    resp = await sim.client.put(IR, json={}, headers=_headers())
    await _problem(resp, 405, "method_not_allowed")
    assert "POST" in resp.headers["Allow"]


async def test_unexpected_exception_is_500_without_traceback(
    sim: Sim, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def boom(self: Router, call: Call, msisdn: str) -> None:
        raise RuntimeError("secret internals +79000000001")

    monkeypatch.setattr(Router, "route", boom)
    resp = await sim.client.get("/v1/routing/+79000000001", headers=_headers())
    body = await _problem(resp, 500, "internal_error")
    assert "secret internals" not in await resp.text()
    assert body["request_id"] == resp.headers["X-Request-Id"]
    # The server keeps serving.
    assert (await sim.client.get("/healthz")).status == 200


async def test_request_id_is_echoed_or_made(sim: Sim) -> None:
    echoed = await sim.client.get("/healthz", headers={"X-Request-Id": "trace-42"})
    assert echoed.headers["X-Request-Id"] == "trace-42"
    made = await sim.client.get("/healthz")
    assert made.headers["X-Request-Id"]
    bad = await sim.client.get("/healthz", headers={"X-Request-Id": "x" * 500})
    assert bad.headers["X-Request-Id"] != "x" * 500


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "code"),
    [
        ("POST", "/messengers", {"id": "Bad Id", "name": "x"}, 422, "validation_error"),
        ("POST", "/messengers", {"id": "ok", "name": "x", "admin": True}, 422, "validation_error"),
        ("POST", "/subscribers", {"subscribers": []}, 422, "validation_error"),
        (
            "POST",
            "/subscribers",
            {"subscribers": [{"msisdn": "8900", "operator_id": "alfa"}]},
            422,
            "invalid_msisdn",
        ),
        (
            "POST",
            "/subscribers",
            {
                "subscribers": [
                    {"msisdn": "+79001110000", "operator_id": "alfa", "status": "asleep"}
                ]
            },
            422,
            "validation_error",
        ),
        (
            "POST",
            "/subscribers",
            {
                "subscribers": [
                    {"msisdn": "+79001110000", "operator_id": "alfa", "birth_date": "soon"}
                ]
            },
            422,
            "validation_error",
        ),
        ("GET", "/requests?limit=", None, 422, "validation_error"),
        ("GET", "/requests?since=", None, 422, "validation_error"),
        ("GET", "/subscribers/79001110000", None, 422, "invalid_msisdn"),
        ("GET", "/requests?msisdn=8900", None, 422, "invalid_msisdn"),
        ("GET", "/requests?messenger_id=%27%3B--", None, 422, "validation_error"),
        ("GET", "/requests?messenger_id=Кириллица", None, 422, "validation_error"),
        (
            "POST",
            "/rules",
            {"id": "r", "action": {"type": "answer", "delay": -1}},
            422,
            "validation_error",
        ),
        (
            "POST",
            "/rules",
            {"id": "r", "action": {"type": "drop"}, "times": "5"},
            422,
            "validation_error",
        ),
        (
            "POST",
            "/rules",
            {"id": "r", "action": {"type": "drop"}, "probability": False},
            422,
            "validation_error",
        ),
        (
            "POST",
            "/messengers",
            {"id": "w", "name": "W", "webhook_url": "http://:80/x"},
            422,
            "validation_error",
        ),
    ],
    ids=[
        "bad-id",
        "unknown-field",
        "empty-list",
        "bad-msisdn",
        "bad-status",
        "bad-date",
        "empty-limit",
        "empty-since",
        "path-msisdn",
        "query-msisdn",
        "query-id",
        "query-id-unicode",
        "negative-delay",
        "string-times",
        "bool-probability",
        "webhook-without-host",
    ],
)
async def test_bad_admin_input_changes_nothing(
    sim: Sim, method: str, path: str, body: Any, status: int, code: str
) -> None:
    before = _snapshot(sim.db_path)
    await _problem(await sim.admin(method, path, body), status, code)
    assert _snapshot(sim.db_path) == before
