"""The console's actions (POST): each calls the same service as its admin API call.

A response is a short message for the form's result area (``role="status"``), with
out-of-band swaps of what the action changed, so the page is right at once even before
the live stream brings the same parts.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from operator_sim import errors
from operator_sim.console import forms
from operator_sim.console.render import fragment_response, simtime
from operator_sim.console.state import CONSOLE
from operator_sim.wire import format_duration, is_msisdn

__all__ = [
    "add_rule",
    "add_rule_json",
    "advance_clock",
    "create_messenger",
    "delete_rule",
    "edit_subscriber",
    "port",
    "replay",
    "reset",
    "reset_messenger",
    "rotate_key",
    "rotate_webhook_secret",
    "set_clock",
    "sim_swap",
    "terminate",
]


async def _form(request: web.Request) -> dict[str, str]:
    return {k: v for k, v in (await request.post()).items() if isinstance(v, str)}


def _msisdn(request: web.Request) -> str:
    msisdn = request.match_info["msisdn"]
    if not is_msisdn(msisdn):
        raise errors.InvalidMsisdn(field="msisdn")
    return msisdn


def _done(request: web.Request, template: str, **context: Any) -> web.Response:
    return fragment_response(request, template, context)


# --- clock and reset ------------------------------------------------------------------


async def advance_clock(request: web.Request) -> web.StreamResponse:
    """Advance the clock (``Control.advance``, as ``POST /admin/v1/clock/advance``)."""
    body = forms.advance_form(await _form(request))
    backend = request.app[CONSOLE].backend
    done = await backend.advance(body.by)
    message = f"Advanced by {format_duration(body.by)}: {done.fired} scheduled item(s) fired."
    return _done(request, "fragments/clock_result.html", message=message, clock=backend.clock())


async def set_clock(request: web.Request) -> web.StreamResponse:
    """Switch the clock's mode (``Control.set_clock``, as ``PUT /admin/v1/clock``)."""
    body = forms.clock_form(await _form(request))
    backend = request.app[CONSOLE].backend
    view = await backend.set_clock(body.mode, body.scale)
    message = f"The clock is {view.mode}" + (
        f" at {view.scale:g}x." if view.mode == "scaled" else "."
    )
    return _done(request, "fragments/clock_result.html", message=message, clock=view)


async def reset(request: web.Request) -> web.StreamResponse:
    """Clear all flow state (``Control.reset``, as ``POST /admin/v1/reset``)."""
    await request.app[CONSOLE].backend.reset()
    message = "Reset: requests, codes, events and runtime rules cleared; fixture restored."
    return _done(request, "fragments/message.html", message=message)


# --- subscribers ----------------------------------------------------------------------


async def _subscriber_done(request: web.Request, msisdn: str, message: str) -> web.Response:
    backend = request.app[CONSOLE].backend
    return _done(
        request,
        "fragments/subscriber_result.html",
        message=message,
        subscriber=await backend.subscriber(msisdn),
        operators=await backend.operators(),
        sim_change=await backend.latest_sim_change(msisdn),
    )


async def terminate(request: web.Request) -> web.StreamResponse:
    """End the contract (``Lifecycle.terminate``, as ``POST .../terminate``)."""
    msisdn = _msisdn(request)
    done = await request.app[CONSOLE].backend.terminate(msisdn)
    return await _subscriber_done(
        request, msisdn, f"Contract ended: {done.events} notification(s) to messengers."
    )


async def port(request: web.Request) -> web.StreamResponse:
    """Port the number (``Lifecycle.port``, as ``POST .../port``)."""
    msisdn = _msisdn(request)
    body = forms.port_form(await _form(request))
    done = await request.app[CONSOLE].backend.port(msisdn, body.to_operator_id)
    return await _subscriber_done(
        request,
        msisdn,
        f"Ported to {done.operator_id}: {done.events} notification(s) to messengers.",
    )


async def sim_swap(request: web.Request) -> web.StreamResponse:
    """Record a SIM swap (``SimSwaps.record``, as ``POST .../sim-swap``)."""
    msisdn = _msisdn(request)
    body = forms.sim_swap_form(await _form(request))
    done = await request.app[CONSOLE].backend.record_sim_swap(msisdn, body.at)
    at = "now" if body.at is None else f"at {simtime(body.at)}"
    message = f"SIM swap recorded {at}: the latest SIM change is {simtime(done.latest_sim_change)}."
    return await _subscriber_done(request, msisdn, message)


async def edit_subscriber(request: web.Request) -> web.StreamResponse:
    """Change the record's data (``Control.upsert_subscribers``, as ``POST /subscribers``)."""
    msisdn = _msisdn(request)
    backend = request.app[CONSOLE].backend
    current = await backend.subscriber(msisdn)
    if current is None:
        raise errors.NotFound(kind="subscriber", ident=msisdn)
    body = forms.subscriber_form(await _form(request), current)
    await backend.upsert_subscribers([body])
    return await _subscriber_done(request, msisdn, "Saved.")


# --- messengers -------------------------------------------------------------------------


async def create_messenger(request: web.Request) -> web.StreamResponse:
    """Register a messenger (``Control.create_messenger``); its secrets are shown once."""
    body = forms.messenger_form(await _form(request))
    backend = request.app[CONSOLE].backend
    created = await backend.create_messenger(request, body)
    return _done(
        request,
        "fragments/messenger_created.html",
        created=created,
        messengers=await backend.messengers(),
    )


async def rotate_key(request: web.Request) -> web.StreamResponse:
    """A new API key (``Messengers.rotate_key``, as ``POST .../rotate-key``), shown once."""
    messenger_id = request.match_info["messenger_id"]
    body = forms.rotation_form(await _form(request))
    done = await request.app[CONSOLE].backend.rotate_key(messenger_id, body.grace)
    return _done(
        request,
        "fragments/credential_rotated.html",
        messenger_id=messenger_id,
        what="API key",
        kind="api_key",
        secret=done.api_key,
        grace=body.grace,
        previous_valid_until=done.previous_valid_until,
    )


async def rotate_webhook_secret(request: web.Request) -> web.StreamResponse:
    """A new webhook secret (``Messengers.rotate_webhook_secret``), shown once."""
    messenger_id = request.match_info["messenger_id"]
    body = forms.rotation_form(await _form(request))
    done = await request.app[CONSOLE].backend.rotate_webhook_secret(messenger_id, body.grace)
    return _done(
        request,
        "fragments/credential_rotated.html",
        messenger_id=messenger_id,
        what="webhook secret",
        kind="webhook_secret",
        secret=done.webhook_secret,
        grace=body.grace,
        previous_valid_until=done.previous_valid_until,
    )


async def reset_messenger(request: web.Request) -> web.StreamResponse:
    """Clear one messenger's flow state (``Control.reset_messenger``)."""
    messenger_id = request.match_info["messenger_id"]
    await request.app[CONSOLE].backend.reset_messenger(messenger_id)
    return _done(
        request,
        "fragments/message.html",
        message=f"Messenger {messenger_id}: requests, codes, events and its rules cleared.",
    )


# --- deliveries -------------------------------------------------------------------------


async def replay(request: web.Request) -> web.StreamResponse:
    """Deliver an event's webhook again (as ``POST /admin/v1/deliveries/{id}/replay``)."""
    delivery = await request.app[CONSOLE].backend.replay(request.match_info["event_id"])
    return _done(
        request,
        "fragments/replay_result.html",
        message=f"Webhook of {delivery.event_id} scheduled again from now.",
        delivery=delivery,
    )


# --- rules ------------------------------------------------------------------------------


async def _rules_done(request: web.Request, message: str) -> web.Response:
    rules = await request.app[CONSOLE].backend.rules()
    return _done(request, "fragments/rules_result.html", message=message, rules=rules)


async def add_rule(request: web.Request) -> web.StreamResponse:
    """Add a rule from the form's fields (validated by ``RuleSpec``, as the API does)."""
    spec = forms.rule_form(await _form(request))
    await request.app[CONSOLE].backend.add_rule(spec)
    return await _rules_done(request, f"Rule {spec.id} added.")


async def add_rule_json(request: web.Request) -> web.StreamResponse:
    """Add a rule given as the JSON body of ``POST /admin/v1/rules``."""
    spec = forms.rule_json((await _form(request)).get("spec", ""))
    await request.app[CONSOLE].backend.add_rule(spec)
    return await _rules_done(request, f"Rule {spec.id} added.")


async def delete_rule(request: web.Request) -> web.StreamResponse:
    """Delete a rule (as ``DELETE /admin/v1/rules/{id}``)."""
    rule_id = request.match_info["rule_id"]
    await request.app[CONSOLE].backend.delete_rule(rule_id)
    return await _rules_done(request, f"Rule {rule_id} deleted.")
