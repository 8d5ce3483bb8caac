"""A human-readable API page at ``/docs``, shipped in the package (nothing from the internet).

The page is static HTML with a small script that fetches ``/openapi.json`` and renders
every operation, its parameters, bodies and responses, and every schema.
"""

from __future__ import annotations

import functools
from importlib import resources

from aiohttp import web

from operator_sim.server.endpoints import Endpoint


@functools.cache
def docs_page() -> bytes:
    """The page's bytes, read once from the package data."""
    return resources.files("operator_sim.server").joinpath("static", "docs.html").read_bytes()


async def api_docs(_request: web.Request) -> web.StreamResponse:
    """The API documentation page."""
    return web.Response(
        body=docs_page(),
        content_type="text/html",
        charset="utf-8",
        headers={"Cache-Control": "no-cache"},
    )


ENDPOINTS = (
    Endpoint(
        "GET",
        "/docs",
        api_docs,
        "Human-readable API documentation (renders /openapi.json)",
        "service",
        "none",
        response_type="text/html",
    ),
)
