"""What one HTTP request carries from the middleware and the guards to its handler."""

from __future__ import annotations

from aiohttp import web

__all__ = ["MESSENGER_ID", "REQUEST_ID"]

REQUEST_ID = web.RequestKey("request_id", str)
"""The request's id (``X-Request-Id``), set by the HTTP middleware."""
MESSENGER_ID = web.RequestKey("messenger_id", str)
"""The authenticated messenger, set by the guard of messenger-facing routes."""
