"""Templates: the Jinja2 environment, its filters, and rendering pages and fragments."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp_jinja2
import jinja2
from aiohttp import web

from operator_sim.console.live import View
from operator_sim.console.state import CONSOLE, SESSION
from operator_sim.wire import SMS_GATEWAY, Delivery, RuleMatch, format_duration, format_timestamp

__all__ = [
    "delivery_state",
    "fragment",
    "fragment_response",
    "page",
    "plain_page",
    "remaining",
    "setup",
    "simtime",
    "via",
]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def simtime(value: datetime | None) -> str:
    """A time as the console shows it: ``2026-03-01 12:00:00 UTC``; a dash for none."""
    if value is None:
        return "—"
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _rfc3339(value: datetime) -> str:
    return format_timestamp(value)


def _epoch_ms(value: datetime) -> int:
    return (value - _EPOCH) // timedelta(milliseconds=1)


def _scale(value: float) -> str:
    return f"{value:g}"


def remaining(ms: int) -> str:
    """A countdown: ``12 min 5 s left``, or ``passed 3 min ago``; the browser keeps it going."""
    seconds = abs(ms) // 1000
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [f"{hours} h"] if hours else []
    if hours or minutes:
        parts.append(f"{minutes} min")
    parts.append(f"{secs} s")
    text = " ".join(parts)
    return f"{text} left" if ms > 0 else f"passed {text} ago"


def delivery_state(delivery: Delivery) -> str:
    """``delivered`` when either channel delivered it, ``failed`` when its webhook gave up
    and the feed never served it, else ``pending``."""
    webhook = delivery.webhook
    if delivery.feed.delivered_at is not None or (webhook and webhook.state == "delivered"):
        return "delivered"
    if webhook is not None and webhook.state == "failed":
        return "failed"
    return "pending"


def via(operator_id: str) -> str:
    """Who an event came from: ``at alfa``, or ``via the SMS gateway`` for its own events."""
    return "via the SMS gateway" if operator_id == SMS_GATEWAY else f"at {operator_id}"


def _match_text(match: RuleMatch) -> str:
    given = match.model_dump(exclude_none=True)
    return ", ".join(f"{k} {v}" for k, v in given.items()) or "every request"


def _action_text(action: Any) -> str:
    given = {k: v for k, v in json.loads(action.model_dump_json()).items() if v is not None}
    return json.dumps(given, ensure_ascii=False)


_FILTERS: dict[str, Callable[..., Any]] = {
    "simtime": simtime,
    "duration": format_duration,
    "via": via,
    "rfc3339": _rfc3339,
    "epoch_ms": _epoch_ms,
    "scale": _scale,
    "remaining": remaining,
    "delivery_state": delivery_state,
    "match_text": _match_text,
    "action_text": _action_text,
}


def setup(app: web.Application) -> None:
    """Templates from the package, autoescaped, with the console's filters."""
    aiohttp_jinja2.setup(
        app,
        loader=jinja2.PackageLoader("operator_sim.console", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        filters=_FILTERS,
    )


def _base(request: web.Request) -> dict[str, Any]:
    session = request.get(SESSION)
    return {
        "csrf": session.csrf if session is not None else "",
        "signed_in": session is not None,
        "demo": session.demo if session is not None else False,
        "stream_url": None,
        "page": None,
    }


async def page(
    request: web.Request,
    template: str,
    view: View,
    extra: Mapping[str, Any] | None = None,
    *,
    status: int = 200,
) -> web.Response:
    """A whole page: its view's live parts, the page's own data, and its live stream."""
    console = request.app[CONSOLE]
    # Taken before anything is read: a change from now on reaches the stream.
    position = console.hub.position
    context = _base(request)
    context.update(await view.context(console.backend))
    context.update(extra or {})
    context["page"] = view.page
    context["stream_url"] = view.stream_url(position)
    return aiohttp_jinja2.render_template(template, request, context, status=status)


def plain_page(
    request: web.Request, template: str, extra: Mapping[str, Any], *, status: int = 200
) -> web.Response:
    """A page without live parts (sign-in, errors)."""
    context = _base(request)
    context.update(extra)
    return aiohttp_jinja2.render_template(template, request, context, status=status)


def fragment(request: web.Request, template: str, context: Mapping[str, Any]) -> str:
    """A fragment as HTML text."""
    return aiohttp_jinja2.render_string(template, request, {**_base(request), **context})


def fragment_response(
    request: web.Request, template: str, context: Mapping[str, Any], *, status: int = 200
) -> web.Response:
    """A fragment as a response to an htmx request."""
    return web.Response(
        text=fragment(request, template, context), status=status, content_type="text/html"
    )
