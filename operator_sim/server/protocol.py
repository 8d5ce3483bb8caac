"""Requests aiohttp's HTTP parser refuses, answered as problem+json like every other error.

aiohttp answers a request it cannot parse (a duplicate ``Content-Length``, one beside
``Transfer-Encoding: chunked``, a NUL in a header, a bad method or HTTP version, too many
headers) from its connection handler, before any middleware runs, with a ``text/plain``
400. Its one hook for that answer is ``RequestHandler.handle_error``, and the only way to
choose the handler class is the ``Server`` that makes handlers: :class:`ProblemRunner`
builds that server. It relies on ``web.Server``'s private ``_loop`` and ``_kwargs``
(there since aiohttp 3.0); ``tests/test_protocol_errors.py`` fails loudly if that changes.

What stays outside: a connection that breaks before a response can be written gets
nothing at all, and a response already under way is cut off (aiohttp's own rule).
"""

from __future__ import annotations

import time
from http import HTTPStatus
from typing import Any

from aiohttp import web
from aiohttp.web_protocol import RequestHandler
from aiohttp.web_request import BaseRequest

from operator_sim.server.problems import PROBLEM_CONTENT_TYPE
from operator_sim.wire import Problem

__all__ = ["ProblemRunner"]


def _reason(exc: BaseException | None, message: str | None) -> str:
    # The first line names the fault; the lines after it quote the raw bytes, which may
    # hold anything (a phone number in a header): they are not echoed.
    text = getattr(exc, "message", None) or message or ""
    first = str(text).strip().splitlines()[0] if str(text).strip() else ""
    return first.rstrip(":").strip()[:200]


class _ProblemHandler(RequestHandler):
    def handle_error(
        self,
        request: BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        # aiohttp's own: logs the fault, refuses when a response is already under way.
        plain = super().handle_error(request, status, exc, message)
        if status >= 500:
            code, detail = "internal_error", "internal error"
        else:
            code = "bad_request"
            reason = _reason(exc, message)
            detail = "the request is not valid HTTP/1.1" + (f": {reason}" if reason else "")
        request_id = f"req_{time.time_ns():x}"
        problem = Problem(
            type=f"urn:operator-sim:problem:{code}",
            title=HTTPStatus(status).phrase,
            status=status,
            detail=detail,
            code=code,
            request_id=request_id,
        )
        response = web.Response(
            status=plain.status,
            body=problem.model_dump_json(exclude_none=True),
            content_type=PROBLEM_CONTENT_TYPE,
            headers={"X-Request-Id": request_id},
        )
        response.force_close()
        return response


class _ProblemServer(web.Server):
    def __call__(self) -> RequestHandler:
        return _ProblemHandler(self, loop=self._loop, **self._kwargs)


class ProblemRunner(web.AppRunner):
    """``web.AppRunner`` whose connections answer unparsable requests with problem+json."""

    async def _make_server(self) -> web.Server:
        made = await super()._make_server()
        kwargs: dict[str, Any] = dict(made._kwargs)
        return _ProblemServer(
            made.request_handler,
            request_factory=made.request_factory,
            handler_cancellation=made.handler_cancellation,
            loop=made._loop,
            **kwargs,
        )
