"""The console's shared objects, hung on its own sub-application."""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web

from operator_sim.console.backend import Backend
from operator_sim.console.hub import Hub
from operator_sim.console.security import Session, Sessions

__all__ = ["CONSOLE", "NEW_COOKIE", "SESSION", "Console"]


@dataclass(frozen=True)
class Console:
    """The server's services (through the backend), the live hub and the sessions."""

    backend: Backend
    hub: Hub
    sessions: Sessions


CONSOLE = web.AppKey("console", Console)
SESSION = web.RequestKey("console_session", Session)
NEW_COOKIE = web.RequestKey("console_new_cookie", str)
"""A session cookie to set on this request's response (a sign-in just happened)."""
