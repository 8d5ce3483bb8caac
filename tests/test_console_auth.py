"""Console sign-in, the demo sign-in's Host check, CSRF, and the security headers."""

from __future__ import annotations

from pathlib import Path

import pytest

from operator_sim.console.security import CONTENT_SECURITY_POLICY
from tests.conftest import AiohttpClient
from tests.console_support import REAL_TOKEN, Console, app_for, demo_console


async def _real(aiohttp_client: AiohttpClient, db_path: Path) -> Console:
    return Console(await aiohttp_client(app_for(db_path, admin_token=REAL_TOKEN)))


async def test_without_a_session_a_page_sends_to_sign_in(
    aiohttp_client: AiohttpClient, db_path: Path
) -> None:
    console = await _real(aiohttp_client, db_path)
    resp = await console.client.get("/ui/journal?msisdn=%2B79000000001", allow_redirects=False)
    assert resp.status == 303
    assert resp.headers["Location"] == (
        "/ui/sign-in?next=%2Fui%2Fjournal%3Fmsisdn%3D%252B79000000001"
    )
    assert "Set-Cookie" not in resp.headers


async def test_without_a_session_the_stream_and_actions_are_401(
    aiohttp_client: AiohttpClient, db_path: Path
) -> None:
    console = await _real(aiohttp_client, db_path)
    stream = await console.client.get("/ui/stream/overview")
    assert stream.status == 401
    advance = await console.client.post("/ui/clock/advance", data={"by": "PT20M"})
    assert advance.status == 401


async def test_a_wrong_token_is_refused_and_starts_no_session(
    aiohttp_client: AiohttpClient, db_path: Path
) -> None:
    console = await _real(aiohttp_client, db_path)
    resp = await console.client.post("/ui/sign-in", data={"token": "nope", "next": "/ui/"})
    assert resp.status == 401
    assert "That is not the admin token." in await resp.text()
    assert "Set-Cookie" not in resp.headers
    assert (await console.client.get("/ui/", allow_redirects=False)).status == 303


async def test_the_admin_token_signs_in_with_a_strict_httponly_cookie_without_the_token(
    aiohttp_client: AiohttpClient, db_path: Path
) -> None:
    console = await _real(aiohttp_client, db_path)
    resp = await console.client.post(
        "/ui/sign-in",
        data={"token": REAL_TOKEN, "next": "/ui/rules"},
        allow_redirects=False,
    )
    assert resp.status == 303
    assert resp.headers["Location"] == "/ui/rules"
    cookie = resp.headers["Set-Cookie"]
    assert "HttpOnly" in cookie
    assert "SameSite=Strict" in cookie
    assert "Path=/ui" in cookie
    assert REAL_TOKEN not in cookie
    page = await console.page("/ui/rules")
    assert 'data-testid="rule-row"' in page


async def test_sign_in_goes_only_to_console_pages(
    aiohttp_client: AiohttpClient, db_path: Path
) -> None:
    console = await _real(aiohttp_client, db_path)
    resp = await console.client.post(
        "/ui/sign-in",
        data={"token": REAL_TOKEN, "next": "https://elsewhere.example/"},
        allow_redirects=False,
    )
    assert resp.headers["Location"] == "/ui/"


async def test_sign_out_ends_the_session(aiohttp_client: AiohttpClient, db_path: Path) -> None:
    console = await _real(aiohttp_client, db_path)
    await console.client.post("/ui/sign-in", data={"token": REAL_TOKEN}, allow_redirects=False)
    page = await console.page("/ui/")
    assert "Sign out" in page
    out = await console.client.post(
        "/ui/sign-out", data={"csrf_token": console.csrf}, allow_redirects=False
    )
    assert out.status == 303
    assert (await console.client.get("/ui/", allow_redirects=False)).status == 303


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.1:8080", "localhost:8080", "[::1]:8080"])
async def test_the_demo_token_signs_in_by_itself_on_a_loopback_host(
    aiohttp_client: AiohttpClient, db_path: Path, host: str
) -> None:
    console = Console(await aiohttp_client(app_for(db_path)))
    resp = await console.client.get("/ui/", headers={"Host": host}, allow_redirects=False)
    assert resp.status == 200
    assert "opsim_console=" in resp.headers["Set-Cookie"]


@pytest.mark.parametrize(
    "host", ["rebound.example", "rebound.example:8080", "127.0.0.1.rebound.example", ""]
)
async def test_the_demo_sign_in_refuses_a_host_that_is_not_loopback(
    aiohttp_client: AiohttpClient, db_path: Path, host: str
) -> None:
    console = Console(await aiohttp_client(app_for(db_path)))
    resp = await console.client.get("/ui/", headers={"Host": host}, allow_redirects=False)
    assert resp.status == 303
    assert resp.headers["Location"].startswith("/ui/sign-in")
    assert "Set-Cookie" not in resp.headers


async def test_a_real_token_never_signs_in_by_itself(
    aiohttp_client: AiohttpClient, db_path: Path
) -> None:
    console = await _real(aiohttp_client, db_path)
    resp = await console.client.get("/ui/", headers={"Host": "127.0.0.1"}, allow_redirects=False)
    assert resp.status == 303


async def test_an_action_without_the_csrf_token_is_refused_and_changes_nothing(
    aiohttp_client: AiohttpClient, db_path: Path
) -> None:
    console = await demo_console(aiohttp_client, db_path)
    before = (await console.admin("GET", "/clock"))["now"]
    for headers in ({}, {"X-CSRF-Token": "forged"}):
        resp = await console.client.post(
            "/ui/clock/advance", data={"by": "PT20M"}, headers={"HX-Request": "true", **headers}
        )
        assert resp.status == 403
        assert "CSRF" in await resp.text()
    assert (await console.admin("GET", "/clock"))["now"] == before


@pytest.mark.parametrize(
    "path",
    [
        "/ui/subscribers/+79000000001/sim-swap",
        "/ui/messengers/demo/rotate-key",
        "/ui/messengers/demo/rotate-webhook-secret",
    ],
)
async def test_the_credential_and_sim_swap_actions_need_the_csrf_token(
    aiohttp_client: AiohttpClient, db_path: Path, path: str
) -> None:
    console = await demo_console(aiohttp_client, db_path)
    resp = await console.client.post(path, data={}, headers={"HX-Request": "true"})
    assert resp.status == 403
    assert "data-secret" not in await resp.text()
    # The demo key still works, and no swap was recorded.
    assert (await console.identify("+79000000001")).status == 201
    record = await console.client.post(
        "/operators/alfa/sim-swap/v1/retrieve-date",
        json={"phoneNumber": "+79000000001"},
        headers={"Authorization": "Bearer demo-messenger-key-not-secret"},
    )
    assert (await record.json())["latestSimChange"] is None


async def test_a_cross_site_action_is_refused_even_with_the_csrf_token(
    aiohttp_client: AiohttpClient, db_path: Path
) -> None:
    console = await demo_console(aiohttp_client, db_path)
    before = (await console.admin("GET", "/clock"))["now"]
    for headers in ({"Origin": "http://rebound.example"}, {"Sec-Fetch-Site": "cross-site"}):
        resp = await console.client.post(
            "/ui/clock/advance",
            data={"by": "PT20M"},
            headers={"X-CSRF-Token": console.csrf, **headers},
        )
        assert resp.status == 403
    assert (await console.admin("GET", "/clock"))["now"] == before


async def test_the_csrf_token_works_as_a_form_field(
    aiohttp_client: AiohttpClient, db_path: Path
) -> None:
    console = await demo_console(aiohttp_client, db_path)
    resp = await console.client.post(
        "/ui/clock/advance", data={"by": "PT20M", "csrf_token": console.csrf}
    )
    assert resp.status == 200
    assert "Advanced by PT20M" in await resp.text()


@pytest.mark.parametrize(
    "path",
    [
        "/ui/",
        "/ui/journal",
        "/ui/subscribers",
        "/ui/subscribers?status=nonsense",
        "/ui/phones",
        "/ui/phones/+79000000011",
        "/ui/phones/8900",
        "/ui/messengers",
        "/ui/deliveries",
        "/ui/rules",
        "/ui/no-such-page",
        "/ui/static/console.js",
        "/ui/static/htmx.min.js",
        "/ui/sign-in",
    ],
)
async def test_every_console_response_carries_a_strict_csp(
    aiohttp_client: AiohttpClient, db_path: Path, path: str
) -> None:
    console = await demo_console(aiohttp_client, db_path)
    resp = await console.client.get(path, allow_redirects=False)
    assert resp.headers["Content-Security-Policy"] == CONTENT_SECURITY_POLICY
    assert resp.headers["X-Content-Type-Options"] == "nosniff"
    assert resp.headers["X-Frame-Options"] == "DENY"


async def test_csp_allows_no_inline_script_or_eval(
    aiohttp_client: AiohttpClient, db_path: Path
) -> None:
    console = await demo_console(aiohttp_client, db_path)
    resp = await console.client.get("/ui/")
    policy = resp.headers["Content-Security-Policy"]
    assert "script-src 'self'" in policy
    assert "unsafe-inline" not in policy
    assert "unsafe-eval" not in policy
    page = await resp.text()
    # Every script is a file from the console itself: nothing inline, no hx-on handlers.
    assert "<script>" not in page
    assert "hx-on" not in page
    assert '"allowEval":false' in page


async def test_csp_is_on_streams_redirects_and_action_errors(
    aiohttp_client: AiohttpClient, db_path: Path
) -> None:
    console = await demo_console(aiohttp_client, db_path)
    page = await console.page("/ui/")
    reader = await console.stream(page)
    assert reader.resp.headers["Content-Security-Policy"] == CONTENT_SECURITY_POLICY
    reader.close()
    refused = await console.act("/ui/clock/advance", {"by": "soon"}, status=422)
    assert "by" in refused
    bad = await console.client.post(
        "/ui/clock/advance", data={"by": "soon"}, headers={"X-CSRF-Token": console.csrf}
    )
    assert bad.headers["Content-Security-Policy"] == CONTENT_SECURITY_POLICY
    redirect = await console.client.get("/ui", allow_redirects=False)
    assert redirect.status == 308
    assert redirect.headers["Location"] == "/ui/"


async def test_pages_are_not_stored_but_static_files_may_be(
    aiohttp_client: AiohttpClient, db_path: Path
) -> None:
    console = await demo_console(aiohttp_client, db_path)
    page = await console.client.get("/ui/subscribers/+79000000001")
    assert page.headers["Cache-Control"] == "no-store"
    done = await console.client.post(
        "/ui/messengers",
        data={"id": "acme", "name": "Acme"},
        headers={"X-CSRF-Token": console.csrf},
    )
    assert done.headers["Cache-Control"] == "no-store"
    static = await console.client.get("/ui/static/htmx.min.js")
    assert "Cache-Control" not in static.headers
