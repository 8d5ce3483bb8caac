"""Messenger credentials: a fixed webhook secret, API key and webhook secret rotation."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from operator_sim.clock import wall_time
from operator_sim.server import auth as auth_module
from operator_sim.server.webhooks import _Signers
from operator_sim.store.messengers import WebhookSecrets
from tests.conftest import Receiver, Sim

FIXED_SECRET = "whsec_" + base64.b64encode(bytes(range(32))).decode()


def _secret(size: int) -> str:
    return "whsec_" + base64.b64encode(b"k" * size).decode()


def _verify(secret: str, headers: dict[str, str], body: bytes) -> Any:
    return Webhook(secret).verify(body, {k.lower(): v for k, v in headers.items()})


def _ts(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


async def _status_with(sim: Sim, key: str) -> int:
    resp = await sim.client.get("/v1/routing/+79000000001", headers=sim.auth(key))
    return resp.status


async def _rotate(sim: Sim, what: str, messenger_id: str, body: Any) -> dict[str, Any]:
    result: dict[str, Any] = await sim.admin_ok(
        "POST", f"/messengers/{messenger_id}/rotate-{what}", body
    )
    return result


async def _one_webhook(sim: Sim, receiver: Receiver, key: str) -> tuple[dict[str, str], bytes]:
    before = len(receiver.received)
    await sim.identify_ok("+79000000001", key=key)
    await sim.advance(0)  # due webhooks are attempted before an advance returns
    assert len(receiver.received) == before + 1
    headers, body = receiver.received[-1]
    return {k.lower(): v for k, v in headers.items()}, body


# --- a fixed webhook secret -------------------------------------------------------------


async def test_a_messenger_registered_with_a_webhook_secret_is_signed_with_it(
    sim: Sim, receiver: Receiver
) -> None:
    created = await sim.new_messenger(
        "fixed", webhook_url=receiver.url, webhook_secret=FIXED_SECRET
    )
    assert created["webhook_secret"] == FIXED_SECRET
    headers, body = await _one_webhook(sim, receiver, created["api_key"])
    assert _verify(FIXED_SECRET, headers, body)["type"] == "identification.answered"


@pytest.mark.parametrize(
    "secret",
    [
        _secret(23),  # too short
        _secret(65),  # too long
        "whsec_" + base64.urlsafe_b64encode(b"\xfb" * 32).decode(),  # URL-safe, not standard
        "whsec_" + base64.b64encode(b"k" * 32).decode().rstrip("="),  # padding missing
        base64.b64encode(b"k" * 32).decode(),  # no prefix
        "whsec_" + "!" * 44,
    ],
)
async def test_a_malformed_webhook_secret_is_refused_and_nothing_is_stored(
    sim: Sim, secret: str
) -> None:
    resp = await sim.admin(
        "POST", "/messengers", {"id": "bad", "name": "Bad", "webhook_secret": secret}
    )
    assert resp.status == 422, await resp.text()
    assert (await resp.json())["code"] == "validation_error"
    assert (await sim.admin("GET", "/messengers/bad")).status == 404


async def test_webhook_secrets_of_24_and_64_bytes_are_accepted(sim: Sim) -> None:
    for size in (24, 64):
        created = await sim.new_messenger(f"m{size}", webhook_secret=_secret(size))
        assert created["webhook_secret"] == _secret(size)


# --- API keys ---------------------------------------------------------------------------


async def test_a_rotated_key_without_grace_stops_at_once_even_when_cached(sim: Sim) -> None:
    old = (await sim.new_messenger("rot"))["api_key"]
    assert await _status_with(sim, old) == 200  # now in the authenticator's cache
    rotated = await _rotate(sim, "key", "rot", {})
    assert rotated["previous_valid_until"] is None
    assert rotated["api_key"] != old
    assert await _status_with(sim, old) == 401
    assert await _status_with(sim, rotated["api_key"]) == 200


async def test_a_grace_of_zero_is_no_grace(sim: Sim) -> None:
    old = (await sim.new_messenger("rot"))["api_key"]
    rotated = await _rotate(sim, "key", "rot", {"grace": "PT0S"})
    assert rotated["previous_valid_until"] is None
    assert await _status_with(sim, old) == 401


async def test_the_old_key_works_through_its_grace_and_stops_after_it_without_a_restart(
    sim: Sim, monkeypatch: pytest.MonkeyPatch
) -> None:
    old = (await sim.new_messenger("rot"))["api_key"]
    before = wall_time()
    rotated = await _rotate(sim, "key", "rot", {"grace": "PT1H"})
    until = _ts(rotated["previous_valid_until"])
    # Wall-clock time, not the (manual, standing) simulation clock.
    assert (
        timedelta(0)
        <= until - datetime.fromtimestamp(before, tz=UTC) - timedelta(hours=1)
        < timedelta(seconds=5)
    )
    assert await _status_with(sim, old) == 200  # cached from here on
    assert await _status_with(sim, rotated["api_key"]) == 200
    # An hour of real time later (the simulation clock does not matter to grace periods).
    later = until.timestamp() + 1
    monkeypatch.setattr(auth_module, "wall_time", lambda: later)
    assert await _status_with(sim, old) == 401
    assert await _status_with(sim, rotated["api_key"]) == 200


async def test_the_grace_period_is_real_time_not_simulation_time(sim: Sim) -> None:
    old = (await sim.new_messenger("rot"))["api_key"]
    await _rotate(sim, "key", "rot", {"grace": "PT1H"})
    await sim.advance(2 * 86_400)
    assert await _status_with(sim, old) == 200


async def test_a_second_rotation_ends_the_oldest_key_at_once(sim: Sim) -> None:
    first = (await sim.new_messenger("rot"))["api_key"]
    second = (await _rotate(sim, "key", "rot", {"grace": "P1D"}))["api_key"]
    assert await _status_with(sim, first) == 200
    assert await _status_with(sim, second) == 200
    third = (await _rotate(sim, "key", "rot", {"grace": 3600}))["api_key"]
    assert await _status_with(sim, first) == 401
    assert await _status_with(sim, second) == 200
    assert await _status_with(sim, third) == 200


async def test_rotating_one_messengers_key_leaves_the_others_alone(sim: Sim) -> None:
    mine = (await sim.new_messenger("mine"))["api_key"]
    await sim.new_messenger("other")
    await _rotate(sim, "key", "other", {})
    assert await _status_with(sim, mine) == 200


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"grace": "P31D"}, "validation_error"),
        ({"grace": 30 * 86_400 + 1}, "validation_error"),
        ({"grace": "-PT1H"}, "validation_error"),
        ({"grace": "soon"}, "validation_error"),
        ({"grace": "PT1H", "extra": 1}, "validation_error"),
        ([], "validation_error"),
    ],
)
async def test_a_bad_rotation_body_is_refused_and_the_key_still_works(
    sim: Sim, body: Any, code: str
) -> None:
    key = (await sim.new_messenger("rot"))["api_key"]
    for what in ("key", "webhook-secret"):
        resp = await sim.admin("POST", f"/messengers/rot/rotate-{what}", body)
        assert resp.status == 422, await resp.text()
        assert (await resp.json())["code"] == code
    assert await _status_with(sim, key) == 200


async def test_thirty_days_of_grace_is_the_most_accepted(sim: Sim) -> None:
    await sim.new_messenger("rot")
    rotated = await _rotate(sim, "key", "rot", {"grace": "P30D"})
    assert rotated["previous_valid_until"] is not None


async def test_rotating_an_unknown_messenger_is_404(sim: Sim) -> None:
    for what in ("key", "webhook-secret"):
        resp = await sim.admin("POST", f"/messengers/nobody/rotate-{what}", {})
        assert resp.status == 404, await resp.text()
        assert (await resp.json())["code"] == "not_found"


async def test_rotation_is_admin_only(sim: Sim) -> None:
    key = (await sim.new_messenger("rot"))["api_key"]
    resp = await sim.client.post(
        "/admin/v1/messengers/rot/rotate-key", json={}, headers=sim.auth(key)
    )
    assert resp.status == 401
    assert await _status_with(sim, key) == 200


# --- webhook secrets --------------------------------------------------------------------


async def test_during_the_grace_webhooks_verify_with_either_secret_alone(
    sim: Sim, receiver: Receiver
) -> None:
    created = await sim.new_messenger("hooked", webhook_url=receiver.url)
    old = created["webhook_secret"]
    await _one_webhook(sim, receiver, created["api_key"])  # the old signer is now cached
    rotated = await _rotate(sim, "webhook-secret", "hooked", {"grace": "PT1H"})
    new = rotated["webhook_secret"]
    assert new != old
    assert rotated["previous_valid_until"] is not None
    headers, body = await _one_webhook(sim, receiver, created["api_key"])
    signatures = headers["webhook-signature"].split(" ")
    assert len(signatures) == 2
    assert all(s.startswith("v1,") for s in signatures)
    assert _verify(new, headers, body)["type"] == "identification.answered"
    assert _verify(old, headers, body)["type"] == "identification.answered"
    # The new secret's signature comes first.
    only_new = {**headers, "webhook-signature": signatures[0]}
    assert _verify(new, only_new, body)


async def test_without_grace_the_old_secret_stops_signing_at_once(
    sim: Sim, receiver: Receiver
) -> None:
    created = await sim.new_messenger("hooked", webhook_url=receiver.url)
    old = created["webhook_secret"]
    await _one_webhook(sim, receiver, created["api_key"])  # the old signer is now cached
    rotated = await _rotate(sim, "webhook-secret", "hooked", {})
    assert rotated["previous_valid_until"] is None
    headers, body = await _one_webhook(sim, receiver, created["api_key"])
    assert " " not in headers["webhook-signature"]
    assert _verify(rotated["webhook_secret"], headers, body)
    with pytest.raises(WebhookVerificationError):
        _verify(old, headers, body)


async def test_a_second_secret_rotation_ends_the_oldest_secret_at_once(
    sim: Sim, receiver: Receiver
) -> None:
    created = await sim.new_messenger("hooked", webhook_url=receiver.url)
    first = created["webhook_secret"]
    second = (await _rotate(sim, "webhook-secret", "hooked", {"grace": "PT1H"}))["webhook_secret"]
    third = (await _rotate(sim, "webhook-secret", "hooked", {"grace": "PT1H"}))["webhook_secret"]
    headers, body = await _one_webhook(sim, receiver, created["api_key"])
    assert len(headers["webhook-signature"].split(" ")) == 2
    assert _verify(third, headers, body)
    assert _verify(second, headers, body)
    with pytest.raises(WebhookVerificationError):
        _verify(first, headers, body)


def test_the_previous_secret_signs_until_its_grace_ends_and_not_after() -> None:
    signers = _Signers.of(
        WebhookSecrets(current=_secret(32), previous=_secret(40), previous_until_ms=1_000)
    )
    assert signers.in_grace(999.0) == (signers.previous,)
    assert signers.in_grace(1_000.0) == ()
    assert _Signers.of(WebhookSecrets(current=_secret(32))).in_grace(0.0) == ()


async def test_pending_retries_are_signed_with_the_new_secret_after_a_rotation(
    sim: Sim, receiver: Receiver
) -> None:
    created = await sim.new_messenger("hooked", webhook_url=receiver.url)
    receiver.statuses = [500]
    await _one_webhook(sim, receiver, created["api_key"])  # fails; retried in 5 s
    rotated = await _rotate(sim, "webhook-secret", "hooked", {})
    await sim.advance(5)
    headers, body = receiver.received[-1]
    assert len(receiver.received) == 2
    assert _verify(rotated["webhook_secret"], headers, body)
    with pytest.raises(WebhookVerificationError):
        _verify(created["webhook_secret"], headers, body)
