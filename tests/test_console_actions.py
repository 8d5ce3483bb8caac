"""Console actions do what the admin API does, through the same services."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

from standardwebhooks import Webhook

from tests.conftest import DEMO_KEY, AiohttpClient, Receiver
from tests.console_support import Console, attr, demo_console, tagged


def _ts(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


async def test_advance_moves_the_clock_and_fires_what_fell_due(
    aiohttp_client: AiohttpClient, db_path: Path
) -> None:
    console = await demo_console(aiohttp_client, db_path)
    slow = await (await console.identify("+79000000009")).json()  # answered after 5 minutes
    before = _ts((await console.admin("GET", "/clock"))["now"])
    done = await console.act("/ui/clock/advance", {"by": "PT5M"})
    after = _ts((await console.admin("GET", "/clock"))["now"])
    assert after - before == timedelta(minutes=5)
    assert "Advanced by PT5M: 1 scheduled item(s) fired." in done
    # The new clock comes with the answer, out of band.
    assert 'id="clock" hx-swap-oob="innerHTML"' in done
    assert attr(done, "datetime") == (await console.admin("GET", "/clock"))["now"]
    answered = await console.client.get(
        f"/operators/alfa/v1/identification-requests/{slow['id']}",
        headers={"Authorization": "Bearer demo-messenger-key-not-secret"},
    )
    assert (await answered.json())["status"] == "answered"


async def test_advance_accepts_seconds_and_refuses_nonsense(
    aiohttp_client: AiohttpClient, db_path: Path
) -> None:
    console = await demo_console(aiohttp_client, db_path)
    before = _ts((await console.admin("GET", "/clock"))["now"])
    await console.act("/ui/clock/advance", {"by": "90"})
    assert _ts((await console.admin("GET", "/clock"))["now"]) - before == timedelta(seconds=90)
    refused = await console.act("/ui/clock/advance", {"by": "-PT5M"}, status=422)
    assert 'role="alert"' in refused
    assert _ts((await console.admin("GET", "/clock"))["now"]) - before == timedelta(seconds=90)


async def test_mode_switch_is_the_admin_api_clock(
    aiohttp_client: AiohttpClient, db_path: Path
) -> None:
    console = await demo_console(aiohttp_client, db_path)
    done = await console.act("/ui/clock/mode", {"mode": "scaled", "scale": "120"})
    assert "The clock is scaled at 120x." in done
    clock = await console.admin("GET", "/clock")
    assert (clock["mode"], clock["scale"]) == ("scaled", 120.0)
    await console.act("/ui/clock/mode", {"mode": "manual"})
    assert (await console.admin("GET", "/clock"))["mode"] == "manual"
    await console.act("/ui/clock/mode", {"mode": "sideways"}, status=422)
    assert (await console.admin("GET", "/clock"))["mode"] == "manual"


async def test_terminate_ends_the_contract_and_notifies_code_holders(
    aiohttp_client: AiohttpClient, db_path: Path
) -> None:
    console = await demo_console(aiohttp_client, db_path)
    req = await (await console.identify("+79000000001")).json()
    code = await console.client.post(
        "/operators/alfa/v1/identification-codes",
        json={"request_id": req["id"], "code": "code-0001-terminate"},
        headers={"Authorization": "Bearer demo-messenger-key-not-secret"},
    )
    assert code.status == 201
    done = await console.act("/ui/subscribers/+79000000001/terminate")
    assert "Contract ended: 1 notification(s) to messengers." in done
    assert 'id="subscriber-detail" hx-swap-oob="innerHTML"' in done
    assert (await console.admin("GET", "/subscribers/+79000000001"))["status"] == "terminated"
    deliveries = await console.admin("GET", "/deliveries")
    assert deliveries["deliveries"][0]["type"] == "subscriber.contract_terminated"


async def test_port_moves_the_number_and_refuses_an_unknown_operator(
    aiohttp_client: AiohttpClient, db_path: Path
) -> None:
    console = await demo_console(aiohttp_client, db_path)
    refused = await console.act(
        "/ui/subscribers/+79000000001/port", {"to_operator_id": "nowhere"}, status=422
    )
    assert "nowhere" in refused
    assert (await console.admin("GET", "/subscribers/+79000000001"))["operator_id"] == "alfa"
    done = await console.act("/ui/subscribers/+79000000001/port", {"to_operator_id": "beta"})
    assert "Ported to beta" in done
    assert (await console.admin("GET", "/subscribers/+79000000001"))["operator_id"] == "beta"
    again = await console.act(
        "/ui/subscribers/+79000000001/port", {"to_operator_id": "beta"}, status=409
    )
    assert "already served by beta" in again


async def test_edit_changes_the_record_but_not_its_contract(
    aiohttp_client: AiohttpClient, db_path: Path
) -> None:
    console = await demo_console(aiohttp_client, db_path)
    await console.act(
        "/ui/subscribers/+79000000001/edit",
        {
            "full_name": "Анна Смирнова",
            "birth_date": "1985-05-06",
            "passport": "",
            "address": "",
            "data_complete": "false",
        },
    )
    record = await console.admin("GET", "/subscribers/+79000000001")
    assert record["full_name"] == "Анна Смирнова"
    assert record["birth_date"] == "1985-05-06"
    assert record["data_complete"] is False
    assert (record["status"], record["operator_id"]) == ("active", "alfa")
    refused = await console.act(
        "/ui/subscribers/+79000000001/edit", {"birth_date": "yesterday"}, status=422
    )
    assert "birth_date" in refused
    assert (await console.admin("GET", "/subscribers/+79000000001"))["full_name"] == (
        "Анна Смирнова"
    )


async def test_register_shows_secrets_once_and_the_key_works(
    aiohttp_client: AiohttpClient, db_path: Path
) -> None:
    console = await demo_console(aiohttp_client, db_path)
    done = await console.act("/ui/messengers", {"id": "acme", "name": "Acme", "webhook_url": ""})
    key = re.search(r'data-secret="api_key">([^<]+)<', done)
    secret = re.search(r'data-secret="webhook_secret">([^<]+)<', done)
    assert key is not None
    assert key.group(1).startswith("osk_")
    assert secret is not None
    assert secret.group(1).startswith("whsec_")
    assert 'data-messenger-id="acme"' in done  # the list, out of band
    assert (await console.identify("+79000000001", key=key.group(1))).status == 201
    page = await console.page("/ui/messengers")
    assert key.group(1) not in page
    again = await console.act("/ui/messengers", {"id": "acme", "name": "Again"}, status=409)
    assert "acme" in again
    bad = await console.act("/ui/messengers", {"id": "Not An Id", "name": "x"}, status=422)
    assert "id" in bad


async def test_reset_messenger_clears_only_its_requests(
    aiohttp_client: AiohttpClient, db_path: Path
) -> None:
    console = await demo_console(aiohttp_client, db_path)
    await console.identify("+79000000001")
    await console.act("/ui/messengers/demo/reset")
    assert (await console.admin("GET", "/requests"))["requests"] == []
    await console.act("/ui/messengers/nobody/reset", status=404)


async def test_reset_clears_flow_state_and_runtime_rules(
    aiohttp_client: AiohttpClient, db_path: Path
) -> None:
    console = await demo_console(aiohttp_client, db_path)
    await console.identify("+79000000001")
    await console.admin("POST", "/rules", {"id": "temporary", "action": {"type": "never"}})
    await console.act("/ui/reset")
    assert (await console.admin("GET", "/requests"))["requests"] == []
    ids = [r["id"] for r in (await console.admin("GET", "/rules"))["rules"]]
    assert "temporary" not in ids


async def test_add_rule_from_the_form_is_the_api_rule(
    aiohttp_client: AiohttpClient, db_path: Path
) -> None:
    console = await demo_console(aiohttp_client, db_path)
    done = await console.act(
        "/ui/rules",
        {
            "id": "busy-alfa",
            "match_msisdn": "+7916*",
            "match_messenger_id": "",
            "match_operator_id": "alfa",
            "action": "http_error",
            "status": "503",
            "retry_after": "2",
            "delay": "PT1M",  # belongs to another action: ignored
            "times": "3",
        },
    )
    assert "Rule busy-alfa added." in done
    assert 'data-rule-id="busy-alfa"' in done  # the rows, out of band
    rule = await console.admin("GET", "/rules/busy-alfa")
    assert rule["match"] == {
        "endpoint": "identification.create",
        "msisdn": "+7916*",
        "messenger_id": None,
        "operator_id": "alfa",
        "event_type": None,
    }
    assert rule["action"] == {"type": "http_error", "status": 503, "retry_after": 2}
    assert rule["times"] == 3
    assert rule["source"] == "runtime"


async def test_an_invalid_rule_form_says_why_and_stores_nothing(
    aiohttp_client: AiohttpClient, db_path: Path
) -> None:
    console = await demo_console(aiohttp_client, db_path)
    before = await console.admin("GET", "/rules")
    refused = await console.act(
        "/ui/rules", {"id": "bad", "action": "http_error", "status": "200"}, status=422
    )
    assert "action.http_error.status" in refused
    unknown = await console.act(
        "/ui/rules", {"id": "bad", "action": "never", "match_operator_id": "zeta"}, status=422
    )
    assert "no operator zeta" in unknown
    assert await console.admin("GET", "/rules") == before


async def test_add_rule_as_json_is_validated_by_the_api_model(
    aiohttp_client: AiohttpClient, db_path: Path
) -> None:
    console = await demo_console(aiohttp_client, db_path)
    spec = '{"id": "never-02", "match": {"msisdn": "+79000000002"}, "action": {"type": "never"}}'
    await console.act("/ui/rules/json", {"spec": spec})
    assert (await console.admin("GET", "/rules/never-02"))["action"] == {"type": "never"}
    duplicate = await console.act("/ui/rules/json", {"spec": spec}, status=409)
    assert "never-02" in duplicate
    extra = await console.act(
        "/ui/rules/json",
        {"spec": '{"id": "x", "action": {"type": "never"}, "colour": 1}'},
        status=422,
    )
    assert "colour" in extra
    broken = await console.act("/ui/rules/json", {"spec": "{"}, status=422)
    assert "JSON" in broken


async def test_delete_rule_removes_it(aiohttp_client: AiohttpClient, db_path: Path) -> None:
    console = await demo_console(aiohttp_client, db_path)
    done = await console.act("/ui/rules/magic-never-answered/delete")
    assert "Rule magic-never-answered deleted." in done
    assert 'data-rule-id="magic-never-answered"' not in done
    ids = [r["id"] for r in (await console.admin("GET", "/rules"))["rules"]]
    assert "magic-never-answered" not in ids
    await console.act("/ui/rules/magic-never-answered/delete", status=404)


async def test_replay_needs_a_webhook_and_reschedules_it(
    aiohttp_client: AiohttpClient, db_path: Path
) -> None:
    console = await demo_console(aiohttp_client, db_path)
    await console.identify("+79000000001")
    event_id = (await console.admin("GET", "/deliveries"))["deliveries"][0]["event_id"]
    refused = await console.act(f"/ui/deliveries/{event_id}/replay", status=409)
    assert "no webhook_url" in refused
    await console.act("/ui/deliveries/evt_nothing/replay", status=404)
    await console.admin(
        "PATCH", "/messengers/demo", {"webhook_url": "http://127.0.0.1:9/unreachable"}
    )
    await console.identify("+79000000002")
    hooked = (await console.admin("GET", "/deliveries"))["deliveries"][0]["event_id"]
    done = await console.act(f"/ui/deliveries/{hooked}/replay")
    assert f"Webhook of {hooked} scheduled again from now." in done
    [row] = tagged(done, "delivery-row")
    assert 'hx-swap-oob="outerHTML"' in row


# --- SIM swaps ----------------------------------------------------------------------------


async def _retrieve_date(console: Console, msisdn: str) -> str | None:
    resp = await console.client.post(
        "/operators/alfa/sim-swap/v1/retrieve-date",
        json={"phoneNumber": msisdn},
        headers={"Authorization": f"Bearer {DEMO_KEY}"},
    )
    assert resp.status == 200, await resp.text()
    latest: str | None = (await resp.json())["latestSimChange"]
    return latest


async def test_the_sim_swap_button_records_a_swap_now(
    aiohttp_client: AiohttpClient, db_path: Path
) -> None:
    console = await demo_console(aiohttp_client, db_path)
    page = await console.page("/ui/subscribers/+79000000001")
    [button] = tagged(page, "sim-swap")
    assert 'type="submit"' in button
    assert "none recorded" in page
    assert await _retrieve_date(console, "+79000000001") is None
    now = (await console.admin("GET", "/clock"))["now"]
    done = await console.act("/ui/subscribers/+79000000001/sim-swap", {"at": ""})
    shown = _ts(now).strftime("%Y-%m-%d %H:%M:%S UTC")
    assert f"SIM swap recorded now: the latest SIM change is {shown}." in done
    assert f'data-sim-change="{now}"' in done  # the record, out of band
    assert await _retrieve_date(console, "+79000000001") == now
    # A swap ends neither the contract nor anything else.
    assert (await console.admin("GET", "/subscribers/+79000000001"))["status"] == "active"
    assert f'data-sim-change="{now}"' in await console.page("/ui/subscribers/+79000000001")


async def test_a_sim_swap_at_a_given_time_is_taken_as_utc(
    aiohttp_client: AiohttpClient, db_path: Path
) -> None:
    console = await demo_console(aiohttp_client, db_path)
    now = _ts((await console.admin("GET", "/clock"))["now"])
    earlier = (now - timedelta(hours=3)).replace(microsecond=0)
    local = earlier.strftime("%Y-%m-%dT%H:%M:%S")  # what a datetime-local input sends
    done = await console.act("/ui/subscribers/+79000000001/sim-swap", {"at": local})
    assert "SIM swap recorded at " + earlier.strftime("%Y-%m-%d %H:%M:%S UTC") in done
    recorded = await _retrieve_date(console, "+79000000001")
    assert recorded is not None
    assert _ts(recorded) == earlier


async def test_a_bad_sim_swap_is_refused_and_records_nothing(
    aiohttp_client: AiohttpClient, db_path: Path
) -> None:
    console = await demo_console(aiohttp_client, db_path)
    now = _ts((await console.admin("GET", "/clock"))["now"])
    later = (now + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%S")
    ahead = await console.act("/ui/subscribers/+79000000001/sim-swap", {"at": later}, status=422)
    assert "at is after the simulation" in ahead
    nonsense = await console.act(
        "/ui/subscribers/+79000000001/sim-swap", {"at": "yesterday"}, status=422
    )
    assert "at:" in nonsense
    await console.act("/ui/subscribers/+79990000000/sim-swap", status=404)
    await console.act("/ui/subscribers/89000000001/sim-swap", status=422)
    assert await _retrieve_date(console, "+79000000001") is None


# --- credential rotation ------------------------------------------------------------------


async def _register(console: Console, webhook_url: str | None = None) -> dict[str, str]:
    body = {"id": "acme", "name": "Acme", "webhook_url": webhook_url}
    created: dict[str, str] = await console.admin("POST", "/messengers", body)
    return created


def _secret(page: str, name: str) -> str:
    found = re.search(rf'data-secret="{name}">([^<]+)<', page)
    assert found is not None, f"no {name} shown"
    return found.group(1)


async def test_rotating_the_key_shows_the_new_one_once_and_the_old_one_stops(
    aiohttp_client: AiohttpClient, db_path: Path
) -> None:
    console = await demo_console(aiohttp_client, db_path)
    old = (await _register(console))["api_key"]
    page = await console.page("/ui/messengers")
    assert len(re.findall(r'data-testid="rotate-key"', page)) == 2  # demo and acme
    done = await console.act("/ui/messengers/acme/rotate-key", {"grace": ""})
    new = _secret(done, "api_key")
    assert new.startswith("osk_")
    assert new != old
    assert "The previous key stopped working." in done
    assert (await console.identify("+79000000001", key=new)).status == 201
    assert (await console.identify("+79000000001", key=old)).status == 401
    assert new not in await console.page("/ui/messengers")


async def test_rotating_the_key_with_a_grace_keeps_the_old_one_working(
    aiohttp_client: AiohttpClient, db_path: Path
) -> None:
    console = await demo_console(aiohttp_client, db_path)
    old = (await _register(console))["api_key"]
    before = datetime.now(UTC)
    done = await console.act("/ui/messengers/acme/rotate-key", {"grace": "PT1H"})
    new = _secret(done, "api_key")
    until = re.search(
        r"keeps working until ([0-9-]+ [0-9:]+) UTC \(real time, PT1H from now\)", done
    )
    assert until is not None
    ends = datetime.strptime(until.group(1), "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC)
    assert before + timedelta(minutes=59) <= ends <= datetime.now(UTC) + timedelta(hours=1)
    assert (await console.identify("+79000000001", key=old)).status == 201
    assert (await console.identify("+79000000001", key=new)).status == 201


async def test_rotating_the_webhook_secret_signs_with_the_new_one(
    aiohttp_client: AiohttpClient, db_path: Path, receiver: Receiver
) -> None:
    console = await demo_console(aiohttp_client, db_path)
    created = await _register(console, receiver.url)
    done = await console.act("/ui/messengers/acme/rotate-webhook-secret", {"grace": "P1D"})
    new = _secret(done, "webhook_secret")
    assert new.startswith("whsec_")
    assert new != created["webhook_secret"]
    assert "webhooks carry a signature with each secret" in done
    assert (await console.identify("+79000000001", key=created["api_key"])).status == 201
    await console.admin("POST", "/clock/advance", {"by": 0})  # due webhooks go out first
    [(headers, body)] = receiver.received
    lowered = {k.lower(): v for k, v in headers.items()}
    # Both secrets verify during the grace: the new one, and the one receivers still hold.
    Webhook(new).verify(body, lowered)
    Webhook(created["webhook_secret"]).verify(body, lowered)
    assert new not in await console.page("/ui/messengers")


async def test_a_bad_rotation_is_refused_and_changes_nothing(
    aiohttp_client: AiohttpClient, db_path: Path
) -> None:
    console = await demo_console(aiohttp_client, db_path)
    old = (await _register(console))["api_key"]
    refused = await console.act("/ui/messengers/acme/rotate-key", {"grace": "P31D"}, status=422)
    assert "at most P30D" in refused
    assert "data-secret" not in refused
    await console.act("/ui/messengers/acme/rotate-webhook-secret", {"grace": "soon"}, status=422)
    await console.act("/ui/messengers/nobody/rotate-key", status=404)
    await console.act("/ui/messengers/nobody/rotate-webhook-secret", status=404)
    assert (await console.identify("+79000000001", key=old)).status == 201
