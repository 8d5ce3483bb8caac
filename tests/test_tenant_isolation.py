"""Tenant isolation: every route against every credential, driven by the route table.

Credentials: none, a wrong key, messenger A, messenger B, the admin token. A owns a
request, a code, an idempotency key and events; B must never see, change or learn the
existence of any of them, and no messenger key opens the admin API. A route added to
``operator_sim.server.ENDPOINTS`` without a row here fails
``test_every_route_has_a_row``.
"""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from operator_sim.server import ENDPOINTS
from tests.conftest import ADMIN_TOKEN, Sim

CREDENTIALS = ("none", "wrong", "a", "b", "admin")
WRONG_KEY = "osk_wrong-key-that-no-messenger-has"
IR = "/operators/alfa/v1/identification-requests"


@dataclass
class World:
    """What messenger A owns, and the keys."""

    keys: dict[str, str]
    request_id: str
    code: str
    event_ids: set[str]
    sms_id: str = ""
    idempotency_key: str = "shared-idempotency-key"


@dataclass(frozen=True)
class Row:
    """How to call one route, and the status each credential must get.

    ``path`` fills the route's template; ``body`` gives the JSON body (None: no body);
    ``owner`` is the status for A (or the admin), ``stranger`` for B on A's resources.
    ``same_as`` calls the same route on a resource that does not exist: B's answer on
    A's resource must be identical (no existence oracle).
    """

    path: Callable[[World], str]
    auth: str
    owner: int
    stranger: int | None = None
    body: Callable[[World], Any] | None = None
    headers: Callable[[World], dict[str, str]] = field(default=lambda w: {})
    same_as: Callable[[World], str] | None = None


def _const(value: str) -> Callable[[World], str]:
    return lambda _w: value


ROWS: dict[tuple[str, str], Row] = {
    # --- messenger API -----------------------------------------------------------
    ("POST", "/operators/{operator_id}/v1/identification-requests"): Row(
        _const(IR),
        "messenger",
        201,
        201,  # B's request is its own: checked further in its own test
        body=lambda _w: {"msisdn": "+79000000001"},
        headers=lambda w: {"Idempotency-Key": w.idempotency_key},
    ),
    ("GET", "/operators/{operator_id}/v1/identification-requests/{request_id}"): Row(
        lambda w: f"{IR}/{w.request_id}",
        "messenger",
        200,
        404,
        same_as=_const(f"{IR}/ir_01NOSUCHREQUEST0000000000"),
    ),
    ("POST", "/operators/{operator_id}/v1/identification-codes"): Row(
        _const("/operators/alfa/v1/identification-codes"),
        "messenger",
        200,  # the same pair again: idempotent
        404,
        body=lambda w: {"request_id": w.request_id, "code": w.code},
    ),
    ("DELETE", "/operators/{operator_id}/v1/identification-codes/{code}"): Row(
        lambda w: f"/operators/alfa/v1/identification-codes/{w.code}",
        "messenger",
        204,
        404,
        same_as=_const("/operators/alfa/v1/identification-codes/no-such-code-0000"),
    ),
    ("GET", "/v1/routing/{msisdn}"): Row(_const("/v1/routing/+79000000001"), "messenger", 200, 200),
    ("GET", "/operators/{operator_id}/v1/events"): Row(
        _const("/operators/alfa/v1/events"), "messenger", 200, 200
    ),
    ("POST", "/sms/v1/messages"): Row(
        _const("/sms/v1/messages"),
        "messenger",
        202,
        202,  # B's message is its own
        body=lambda _w: {"to": "+79000000011", "text": "Code 2468"},
    ),
    ("GET", "/sms/v1/messages/{sms_id}"): Row(
        lambda w: f"/sms/v1/messages/{w.sms_id}",
        "messenger",
        200,
        404,
        same_as=_const("/sms/v1/messages/sms_01NOSUCHMESSAGE00000000000"),
    ),
    ("GET", "/sms/v1/events"): Row(_const("/sms/v1/events"), "messenger", 200, 200),
    ("POST", "/operators/{operator_id}/sim-swap/v1/retrieve-date"): Row(
        _const("/operators/alfa/sim-swap/v1/retrieve-date"),
        "messenger",
        200,
        200,  # a fact about the number, the same for every messenger
        body=lambda _w: {"phoneNumber": "+79000000018"},
    ),
    ("POST", "/operators/{operator_id}/sim-swap/v1/check"): Row(
        _const("/operators/alfa/sim-swap/v1/check"),
        "messenger",
        200,
        200,
        body=lambda _w: {"phoneNumber": "+79000000018", "maxAge": 24},
    ),
    # --- admin API ---------------------------------------------------------------
    ("GET", "/admin/v1/operators"): Row(_const("/admin/v1/operators"), "admin", 200),
    ("POST", "/admin/v1/messengers"): Row(
        _const("/admin/v1/messengers"),
        "admin",
        201,
        body=lambda _w: {"id": "added-by-admin", "name": "Added"},
    ),
    ("GET", "/admin/v1/messengers"): Row(_const("/admin/v1/messengers"), "admin", 200),
    ("GET", "/admin/v1/messengers/{messenger_id}"): Row(
        _const("/admin/v1/messengers/throwaway"), "admin", 200
    ),
    ("PATCH", "/admin/v1/messengers/{messenger_id}"): Row(
        _const("/admin/v1/messengers/throwaway"),
        "admin",
        200,
        body=lambda _w: {"name": "Renamed"},
    ),
    ("POST", "/admin/v1/messengers/{messenger_id}/rotate-key"): Row(
        _const("/admin/v1/messengers/throwaway/rotate-key"),
        "admin",
        200,
        body=lambda _w: {"grace": "PT1H"},
    ),
    ("POST", "/admin/v1/messengers/{messenger_id}/rotate-webhook-secret"): Row(
        _const("/admin/v1/messengers/throwaway/rotate-webhook-secret"),
        "admin",
        200,
        body=lambda _w: {},
    ),
    ("GET", "/admin/v1/subscribers"): Row(
        _const("/admin/v1/subscribers?operator_id=alfa&limit=3"), "admin", 200
    ),
    ("GET", "/admin/v1/subscribers/sample"): Row(
        _const("/admin/v1/subscribers/sample?n=3&seed=1"), "admin", 200
    ),
    ("POST", "/admin/v1/subscribers"): Row(
        _const("/admin/v1/subscribers"),
        "admin",
        200,
        body=lambda _w: {
            "subscribers": [
                {"msisdn": "+79161112233", "operator_id": "beta", "full_name": "Тестов Тест"}
            ]
        },
    ),
    ("GET", "/admin/v1/subscribers/{msisdn}"): Row(
        _const("/admin/v1/subscribers/+79000000001"), "admin", 200
    ),
    ("GET", "/admin/v1/requests"): Row(_const("/admin/v1/requests"), "admin", 200),
    ("GET", "/admin/v1/journal"): Row(_const("/admin/v1/journal"), "admin", 200),
    ("GET", "/admin/v1/journal/count"): Row(_const("/admin/v1/journal/count"), "admin", 200),
    ("GET", "/admin/v1/codes"): Row(_const("/admin/v1/codes"), "admin", 200),
    ("GET", "/admin/v1/requests/count"): Row(_const("/admin/v1/requests/count"), "admin", 200),
    ("POST", "/admin/v1/messengers/{messenger_id}/reset"): Row(
        _const("/admin/v1/messengers/throwaway/reset"), "admin", 204
    ),
    ("GET", "/admin/v1/clock"): Row(_const("/admin/v1/clock"), "admin", 200),
    ("PUT", "/admin/v1/clock"): Row(
        _const("/admin/v1/clock"), "admin", 200, body=lambda _w: {"mode": "manual"}
    ),
    ("POST", "/admin/v1/clock/advance"): Row(
        _const("/admin/v1/clock/advance"), "admin", 200, body=lambda _w: {"by": 0}
    ),
    ("POST", "/admin/v1/rules"): Row(
        _const("/admin/v1/rules"),
        "admin",
        201,
        body=lambda _w: {
            "id": "isolation-rule",
            "match": {"msisdn": "+79169999999"},
            "action": {"type": "never"},
        },
    ),
    ("GET", "/admin/v1/rules"): Row(_const("/admin/v1/rules"), "admin", 200),
    ("GET", "/admin/v1/rules/{rule_id}"): Row(
        _const("/admin/v1/rules/magic-never-answered"), "admin", 200
    ),
    ("DELETE", "/admin/v1/rules/{rule_id}"): Row(
        _const("/admin/v1/rules/isolation-rule"), "admin", 204
    ),
    ("POST", "/admin/v1/subscribers/{msisdn}/terminate"): Row(
        _const("/admin/v1/subscribers/+79161112233/terminate"), "admin", 200
    ),
    ("POST", "/admin/v1/subscribers/{msisdn}/port"): Row(
        _const("/admin/v1/subscribers/+79000000009/port"),
        "admin",
        200,
        body=lambda _w: {"to_operator_id": "gamma"},
    ),
    ("GET", "/admin/v1/deliveries"): Row(_const("/admin/v1/deliveries"), "admin", 200),
    ("POST", "/admin/v1/subscribers/{msisdn}/sim-swap"): Row(
        _const("/admin/v1/subscribers/+79000000011/sim-swap"), "admin", 200, body=lambda _w: {}
    ),
    ("GET", "/admin/v1/phones/{msisdn}/messages"): Row(
        _const("/admin/v1/phones/+79000000011/messages"), "admin", 200
    ),
    ("GET", "/admin/v1/phones/{msisdn}/otp"): Row(
        _const("/admin/v1/phones/+79000000011/otp"), "admin", 200
    ),
    ("POST", "/admin/v1/deliveries/{event_id}/replay"): Row(
        lambda w: f"/admin/v1/deliveries/{sorted(w.event_ids)[0]}/replay",
        "admin",
        409,  # A has no webhook_url: the documented answer, past authentication
    ),
    ("POST", "/admin/v1/reset"): Row(_const("/admin/v1/reset"), "admin", 204),
    # --- service endpoints: open to everyone ---------------------------------------
    ("GET", "/healthz"): Row(_const("/healthz"), "none", 200),
    ("GET", "/readyz"): Row(_const("/readyz"), "none", 200),
    ("GET", "/metrics"): Row(_const("/metrics"), "none", 200),
    ("GET", "/openapi.json"): Row(_const("/openapi.json"), "none", 200),
    ("GET", "/docs"): Row(_const("/docs"), "none", 200),
}

# Calls that change what later rows see run last, in this order.
_LAST = (
    ("DELETE", "/admin/v1/rules/{rule_id}"),
    ("DELETE", "/operators/{operator_id}/v1/identification-codes/{code}"),
    ("POST", "/admin/v1/messengers/{messenger_id}/reset"),
    ("POST", "/admin/v1/reset"),
)


def test_every_route_has_a_row() -> None:
    routes = {(e.method, e.path) for e in ENDPOINTS}
    assert routes - set(ROWS) == set(), "add a row to ROWS for each new route"
    assert set(ROWS) - routes == set(), "a row names a route that no longer exists"
    for endpoint in ENDPOINTS:
        assert ROWS[endpoint.method, endpoint.path].auth == endpoint.auth, endpoint.path


# The journal records every call, refused ones too: a stranger's refused call adds its own
# entry there (checked below), and changes nothing else.
_JOURNALLING = ("journal", "sqlite_sequence")


def _journal_size(db: Path) -> int:
    with sqlite3.connect(db) as conn:
        return int(conn.execute("SELECT coalesce(max(id), 0) FROM journal").fetchone()[0])


def _journal_since(db: Path, after: int) -> list[tuple[str, int, str | None]]:
    with sqlite3.connect(db) as conn:
        return conn.execute(
            "SELECT messenger_id, http_status, msisdn FROM journal WHERE id > ? ORDER BY id",
            (after,),
        ).fetchall()


def _snapshot(db: Path) -> str:
    """A digest of every row of every table but the journal's: equal digests mean nothing
    changed."""
    digest = hashlib.sha256()
    with sqlite3.connect(db) as conn:
        tables = [
            r[0]
            for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table' ORDER BY name")
            if r[0] not in _JOURNALLING
        ]
        for table in tables:
            for row in conn.execute(f'SELECT * FROM "{table}" ORDER BY 1'):  # noqa: S608
                digest.update(repr((table, row)).encode())
    return digest.hexdigest()


def _auth(world: World, credential: str) -> dict[str, str]:
    if credential == "none":
        return {}
    key = {"wrong": WRONG_KEY, "admin": ADMIN_TOKEN}.get(credential) or world.keys[credential]
    return {"Authorization": f"Bearer {key}"}


async def _call(
    sim: Sim, method: str, path: str, row: Row, world: World, credential: str
) -> tuple[int, dict[str, Any] | None, str]:
    kwargs: dict[str, Any] = {"headers": {**_auth(world, credential), **row.headers(world)}}
    if row.body is not None:
        kwargs["json"] = row.body(world)
    resp = await sim.client.request(method, path, **kwargs)
    text = await resp.text()
    problem = await resp.json() if resp.content_type == "application/problem+json" else None
    return resp.status, problem, text


async def _world(sim: Sim) -> World:
    a = await sim.new_messenger("tenant-a")
    b = await sim.new_messenger("tenant-b")
    await sim.new_messenger("throwaway")
    keys = {"a": a["api_key"], "b": b["api_key"]}
    created = await sim.identify_ok(
        "+79000000001", key=keys["a"], headers={"Idempotency-Key": "shared-idempotency-key"}
    )
    assert created["result"] == "present"
    code = "tenant-a-secret-code-1"
    assert (await sim.register_code(created["id"], code, key=keys["a"])).status == 201
    await sim.identify_ok("+79000000002", key=keys["a"])
    events = await sim.client.get("/operators/alfa/v1/events", headers=sim.auth(keys["a"]))
    event_ids = {e["id"] for e in (await events.json())["events"]}
    assert len(event_ids) == 2
    sms = await sim.client.post(
        "/sms/v1/messages",
        json={"to": "+79000000011", "text": "Code 1357"},
        headers=sim.auth(keys["a"]),
    )
    assert sms.status == 202
    await sim.advance(5)  # the phone has it
    return World(
        keys=keys,
        request_id=created["id"],
        code=code,
        event_ids=event_ids,
        sms_id=(await sms.json())["id"],
    )


def _order() -> list[tuple[str, str]]:
    return [k for k in ROWS if k not in _LAST] + list(_LAST)


async def test_every_credential_gets_the_right_answer_on_every_route(sim: Sim) -> None:
    world = await _world(sim)
    for method, template in _order():
        row = ROWS[method, template]
        path = row.path(world)
        cells = {
            "none": (401, "unauthorized"),
            "wrong": (401, "unauthorized"),
            "a": (401, "unauthorized"),
            "b": (401, "unauthorized"),
            "admin": (401, "unauthorized"),
        }
        if row.auth == "none":
            cells = dict.fromkeys(CREDENTIALS, (row.owner, ""))
        elif row.auth == "admin":
            cells["admin"] = (row.owner, "")
        else:
            assert row.stranger is not None
            cells["a"] = (row.owner, "")
            cells["b"] = (row.stranger, "")
        # Refusals first (they must change nothing), the owner last.
        owner = "admin" if row.auth == "admin" else "a"
        for credential in sorted(CREDENTIALS, key=lambda c: c == owner):
            status, code = cells[credential]
            before = _snapshot(sim.db_path) if status >= 400 else ""
            journalled = _journal_size(sim.db_path)
            got, problem, text = await _call(sim, method, path, row, world, credential)
            where = f"{method} {path} as {credential}"
            assert got == status, f"{where}: {got} {text[:300]}"
            if code:
                assert problem is not None
                assert problem["code"] == code, where
            if status >= 400:
                assert _snapshot(sim.db_path) == before, f"{where} changed the store"
                new_entries = _journal_since(sim.db_path, journalled)
                if credential == "b" and row.auth == "messenger":  # its own call, and only that
                    assert [(m, st) for m, st, _ in new_entries] == [("tenant-b", got)], where
                    assert all(n is None for _, _, n in new_entries), f"{where}: A's number"
                else:
                    assert new_entries == [], f"{where}: an unauthenticated call was journalled"
                # Nothing of A's beyond what this caller sent itself (path, body).
                sent = [path, *path.split("/"), *_strings(row.body(world) if row.body else None)]
                scrubbed = text
                for value in sorted(sent, key=len, reverse=True):
                    scrubbed = scrubbed.replace(value, "")
                for secret in (world.code, world.request_id, "+79000000001", *world.event_ids):
                    assert secret not in scrubbed, f"{where} leaks {secret}"
            if credential == "b" and row.same_as is not None:
                absent = row.same_as(world)
                got2, problem2, _ = await _call(sim, method, absent, row, world, "b")
                assert (got2, problem2 and problem2["code"]) == (
                    got,
                    problem and problem["code"],
                ), f"{where}: B can tell A's resource from a missing one"
            if credential == "b" and method == "GET" and template.endswith("/events"):
                seen = {e["id"] for e in json_events(text)}
                assert not seen & world.event_ids, "B read A's events"
            if credential == "b" and method == "POST" and template.endswith("requests"):
                assert world.request_id not in text, "B got A's idempotent result"


def _strings(value: Any) -> list[str]:
    """Every string inside a JSON value."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for v in value.values() for s in _strings(v)]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    return []


def json_events(text: str) -> list[dict[str, Any]]:
    """The events of a feed page."""
    import json

    events: list[dict[str, Any]] = json.loads(text)["events"]
    return events


async def test_b_with_a_key_a_used_gets_its_own_request_never_a_conflict(sim: Sim) -> None:
    world = await _world(sim)
    key = {"Idempotency-Key": world.idempotency_key}
    same = await sim.identify_ok("+79000000001", key=world.keys["b"], headers=key)
    assert same["id"] != world.request_id
    # Another body under A's key: B is not told the key is taken elsewhere.
    other = await sim.identify_ok(
        "+79000000002", key=world.keys["b"], headers={"Idempotency-Key": "another-key"}
    )
    resp = await sim.identify("+79000000003", key=world.keys["b"], headers=key)
    assert resp.status == 422  # B's own key, now bound by B: B's own conflict
    assert (await resp.json())["code"] == "idempotency_key_reused"
    assert other["id"] != world.request_id
    # A's binding is untouched: A still gets its own request back.
    again = await sim.identify_ok("+79000000001", key=world.keys["a"], headers=key)
    assert again["id"] == world.request_id


@pytest.mark.parametrize("credential", ["a", "b"])
async def test_a_messenger_key_never_opens_the_admin_api(sim: Sim, credential: str) -> None:
    world = await _world(sim)
    for endpoint in ENDPOINTS:
        if endpoint.auth != "admin":
            continue
        path = ROWS[endpoint.method, endpoint.path].path(world)
        resp = await sim.client.request(
            endpoint.method, path, headers=_auth(world, credential), json={}
        )
        assert resp.status == 401, f"{endpoint.method} {path}"
        assert resp.headers["WWW-Authenticate"] == "Bearer"
