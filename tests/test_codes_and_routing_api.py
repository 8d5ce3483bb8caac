"""Identification codes and number routing over HTTP."""

from __future__ import annotations

from tests.conftest import DEMO_KEY, Sim

CODE = "code-0123456789"


async def test_code_registers_after_a_timely_present(sim: Sim) -> None:
    req = await sim.identify_ok("+79000000001")
    resp = await sim.register_code(req["id"], CODE)
    assert resp.status == 201
    body = await resp.json()
    assert body["code"] == CODE
    assert body["msisdn"] == "+79000000001"
    assert body["operator_id"] == "alfa"
    assert body["request_id"] == req["id"]
    assert body["registered_at"].endswith("Z")


async def test_same_pair_again_is_idempotent_200(sim: Sim) -> None:
    req = await sim.identify_ok("+79000000001")
    first = await (await sim.register_code(req["id"], CODE)).json()
    again = await sim.register_code(req["id"], CODE)
    assert again.status == 200
    assert await again.json() == first


async def test_second_code_for_the_same_request_is_409(sim: Sim) -> None:
    req = await sim.identify_ok("+79000000001")
    await sim.register_code(req["id"], CODE)
    resp = await sim.register_code(req["id"], "another-code-42")
    assert resp.status == 409
    assert (await resp.json())["code"] == "conflict"


async def test_same_code_for_another_number_is_409(sim: Sim) -> None:
    await sim.add_subscribers(
        {
            "msisdn": "+79000001234",
            "operator_id": "alfa",
            "full_name": "A B",
            "birth_date": "1990-01-01",
            "passport": "4500 000000",
        }
    )
    first = await sim.identify_ok("+79000000001")
    second = await sim.identify_ok("+79000001234")
    assert (await sim.register_code(first["id"], CODE)).status == 201
    resp = await sim.register_code(second["id"], CODE)
    assert resp.status == 409


async def test_same_code_for_the_same_number_after_reidentification_moves_to_the_new_request(
    sim: Sim,
) -> None:
    first = await sim.identify_ok("+79000000001")
    second = await sim.identify_ok("+79000000001")
    assert (await sim.register_code(first["id"], CODE)).status == 201
    resp = await sim.register_code(second["id"], CODE)
    assert resp.status == 201
    assert (await resp.json())["request_id"] == second["id"]


async def test_code_refused_for_absent(sim: Sim) -> None:
    req = await sim.identify_ok("+79000000002")
    resp = await sim.register_code(req["id"], CODE)
    assert resp.status == 409
    assert (await resp.json())["code"] == "conflict"


async def test_code_refused_while_pending_and_after_expiry(sim: Sim) -> None:
    req = await sim.identify_ok("+79000000005")
    assert (await sim.register_code(req["id"], CODE)).status == 409
    await sim.advance(1200)
    assert (await sim.register_code(req["id"], CODE)).status == 409


async def test_code_refused_after_a_late_present(sim: Sim) -> None:
    req = await sim.identify_ok("+79000000006")
    await sim.advance(1500)
    assert (await sim.get_request(req["id"]))["result"] == "present"
    assert (await sim.register_code(req["id"], CODE)).status == 409


async def test_code_accepted_after_a_slow_but_timely_present(sim: Sim) -> None:
    req = await sim.identify_ok("+79000000009")
    await sim.advance(300)
    assert (await sim.register_code(req["id"], CODE)).status == 201


async def test_code_for_another_messengers_request_is_refused_like_an_unknown_one(sim: Sim) -> None:
    other = await sim.new_messenger("other")
    req = await sim.identify_ok("+79000000001")
    theirs = await sim.client.post(
        "/operators/alfa/v1/identification-codes",
        json={"request_id": req["id"], "code": CODE},
        headers=sim.auth(other["api_key"]),
    )
    unknown = await sim.register_code("ir_UNKNOWN", CODE)
    assert theirs.status == unknown.status == 404  # no existence oracle, like a GET of it
    assert (await theirs.json())["code"] == (await unknown.json())["code"] == "not_found"
    assert (await theirs.json())["detail"].replace(req["id"], "X") == (await unknown.json())[
        "detail"
    ].replace("ir_UNKNOWN", "X")


async def test_code_posted_to_another_operator_is_refused(sim: Sim) -> None:
    req = await sim.identify_ok("+79000000001")
    assert (await sim.register_code(req["id"], CODE, operator="beta")).status == 409


async def test_delete_code_then_it_is_gone(sim: Sim) -> None:
    req = await sim.identify_ok("+79000000001")
    await sim.register_code(req["id"], CODE)
    path = f"/operators/alfa/v1/identification-codes/{CODE}"
    resp = await sim.client.delete(path, headers=sim.auth(DEMO_KEY))
    assert resp.status == 204
    again = await sim.client.delete(path, headers=sim.auth(DEMO_KEY))
    assert again.status == 404


async def test_delete_another_messengers_code_is_404_and_keeps_it(sim: Sim) -> None:
    other = await sim.new_messenger("other")
    req = await sim.identify_ok("+79000000001")
    await sim.register_code(req["id"], CODE)
    path = f"/operators/alfa/v1/identification-codes/{CODE}"
    assert (await sim.client.delete(path, headers=sim.auth(other["api_key"]))).status == 404
    assert (await sim.client.delete(path, headers=sim.auth(DEMO_KEY))).status == 204


async def test_code_shape_is_validated(sim: Sim) -> None:
    req = await sim.identify_ok("+79000000001")
    for bad in ["short", "x" * 129, "has space in it", "кириллица-код"]:
        resp = await sim.register_code(req["id"], bad)
        assert resp.status == 422, bad
        assert (await resp.json())["code"] == "validation_error"


async def test_routing_by_range(sim: Sim) -> None:
    resp = await sim.client.get("/v1/routing/+79161234567", headers=sim.auth(DEMO_KEY))
    assert resp.status == 200
    assert await resp.json() == {"msisdn": "+79161234567", "operator_id": "beta", "ported": False}


async def test_routing_prefers_the_record_holder_and_says_ported(sim: Sim) -> None:
    await sim.add_subscribers({"msisdn": "+79161234567", "operator_id": "gamma"})
    resp = await sim.client.get("/v1/routing/%2B79161234567", headers=sim.auth(DEMO_KEY))
    assert await resp.json() == {"msisdn": "+79161234567", "operator_id": "gamma", "ported": True}


async def test_routing_of_a_record_outside_every_range(sim: Sim) -> None:
    await sim.add_subscribers({"msisdn": "+4915112345678", "operator_id": "delta"})
    resp = await sim.client.get("/v1/routing/+4915112345678", headers=sim.auth(DEMO_KEY))
    assert await resp.json() == {"msisdn": "+4915112345678", "operator_id": "delta", "ported": True}


async def test_routing_unknown_number_is_404(sim: Sim) -> None:
    resp = await sim.client.get("/v1/routing/+12025550123", headers=sim.auth(DEMO_KEY))
    assert resp.status == 404
    assert (await resp.json())["code"] == "not_found"


async def test_routing_needs_a_messenger_key_not_the_admin_token(sim: Sim) -> None:
    resp = await sim.client.get(
        "/v1/routing/+79161234567", headers=sim.auth("demo-admin-token-not-secret")
    )
    assert resp.status == 401


async def test_routing_rejects_non_e164(sim: Sim) -> None:
    resp = await sim.client.get("/v1/routing/89161234567", headers=sim.auth(DEMO_KEY))
    assert resp.status == 422
    assert (await resp.json())["code"] == "invalid_msisdn"
