"""The baseline for scripts/bench.py: a bare aiohttp app with one JSON POST endpoint.

It parses the JSON body and answers 201 with a small JSON object, the least any aiohttp
server does per request; like operator-sim it prints `listening on http://HOST:PORT`.
It runs on asyncio's own event loop, or with `--uvloop` on uvloop's.

    python scripts/bench_bare.py [--uvloop]
"""

from __future__ import annotations

import asyncio
import json
import sys
import time

from aiohttp import web


async def post(request: web.Request) -> web.Response:
    """Parse the JSON body and answer with a JSON object."""
    body = json.loads(await request.read())
    reply = {
        "id": "ir_bare",
        "msisdn": body.get("msisdn"),
        "status": "answered",
        "received_at": time.time(),
    }
    return web.Response(status=201, body=json.dumps(reply), content_type="application/json")


async def serve() -> None:
    """Serve on a free loopback port until killed."""
    app = web.Application()
    app.router.add_post("/operators/alfa/v1/identification-requests", post)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    host, port = runner.addresses[0][:2]
    print(f"listening on http://{host}:{port}", flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    if "--uvloop" in sys.argv[1:]:
        import uvloop

        uvloop.run(serve())
    else:
        asyncio.run(serve())
