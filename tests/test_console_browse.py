"""The subscriber list: keyset pages of the admin API's listing, with its filters."""

from __future__ import annotations

import html
import re
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from tests.conftest import AiohttpClient
from tests.console_support import Console, attr, demo_console, tagged

PREFIX = "+7916555"


async def _add(console: Console, count: int, *, operator_id: str = "alfa") -> list[str]:
    numbers = [f"{PREFIX}{i:04d}" for i in range(count)]
    await console.admin(
        "POST",
        "/subscribers",
        {"subscribers": [{"msisdn": m, "operator_id": operator_id} for m in numbers]},
    )
    return numbers


def _listed(page: str) -> list[str]:
    return [attr(row, "data-msisdn") for row in tagged(page, "subscriber-row")]


def _next_link(page: str) -> str | None:
    found = re.search(r'<a href="([^"]+)" rel="next"', page)
    return None if found is None else html.unescape(found.group(1))


async def test_the_list_pages_through_every_match_in_number_order(
    aiohttp_client: AiohttpClient, db_path: Path
) -> None:
    console = await demo_console(aiohttp_client, db_path)
    numbers = await _add(console, 120)
    seen: list[str] = []
    pages = 0
    link: str | None = "/ui/subscribers?msisdn_prefix=%2B7916555"
    while link is not None:
        page = await console.page(link)
        pages += 1
        rows = _listed(page)
        seen += rows
        link = _next_link(page)
        if link is not None:
            query = parse_qs(urlsplit(link).query)
            # The next page starts after the last number shown and keeps the filter.
            assert query == {"msisdn_prefix": [PREFIX], "after": [rows[-1]]}
            assert len(rows) == 50
        else:
            assert "Last page" in page
    assert pages == 3
    assert seen == sorted(numbers)


async def test_a_page_is_the_admin_api_page(aiohttp_client: AiohttpClient, db_path: Path) -> None:
    console = await demo_console(aiohttp_client, db_path)
    await _add(console, 80)
    first = await console.admin("GET", "/subscribers?limit=50")
    page = await console.page("/ui/subscribers")
    assert _listed(page) == [s["msisdn"] for s in first["subscribers"]]
    cursor = first["next_cursor"]
    assert _next_link(page) == f"/ui/subscribers?after=%2B{cursor[1:]}"
    second = await console.admin("GET", f"/subscribers?limit=50&after=%2B{cursor[1:]}")
    page = await console.page(f"/ui/subscribers?after=%2B{cursor[1:]}")
    assert _listed(page) == [s["msisdn"] for s in second["subscribers"]]
    assert '<a href="/ui/subscribers" rel="first">First page</a>' in page


async def test_the_filters_are_the_admin_api_filters(
    aiohttp_client: AiohttpClient, db_path: Path
) -> None:
    console = await demo_console(aiohttp_client, db_path)
    at_alfa = await _add(console, 3)
    await console.admin(
        "POST",
        "/subscribers",
        {"subscribers": [{"msisdn": "+79165559999", "operator_id": "beta"}]},
    )
    await console.admin("POST", f"/subscribers/{at_alfa[1]}/terminate")
    by_operator = await console.page("/ui/subscribers?operator_id=beta&msisdn_prefix=%2B7916555")
    assert _listed(by_operator) == ["+79165559999"]
    assert '<option value="beta" selected>' in by_operator
    ended = await console.page("/ui/subscribers?status=terminated&msisdn_prefix=%2B7916555")
    assert _listed(ended) == [at_alfa[1]]
    active = await console.page("/ui/subscribers?status=active&msisdn_prefix=%2B7916555")
    assert _listed(active) == [at_alfa[0], at_alfa[2], "+79165559999"]
    incomplete = await console.page("/ui/subscribers?data_complete=false&operator_id=alfa")
    api = await console.admin("GET", "/subscribers?data_complete=false&operator_id=alfa&limit=50")
    assert _listed(incomplete) == [s["msisdn"] for s in api["subscribers"]]
    assert set(at_alfa) <= set(_listed(incomplete))
    nothing = await console.page("/ui/subscribers?msisdn_prefix=%2B1999")
    assert _listed(nothing) == []
    assert "No subscribers match the filter." in nothing


async def test_bad_filters_are_explained_in_a_422(
    aiohttp_client: AiohttpClient, db_path: Path
) -> None:
    console = await demo_console(aiohttp_client, db_path)
    for query, field in (
        ("msisdn_prefix=7916", "msisdn_prefix"),
        ("after=somewhere", "after"),
        ("status=sleeping", "status"),
        ("operator_id=Not%20An%20Id", "operator_id"),
        ("data_complete=maybe", "data_complete"),
    ):
        page = await console.page(f"/ui/subscribers?{query}", status=422)
        assert f"{field}:" in page, query
        assert 'role="alert"' in page
        assert _listed(page) == []


async def test_searching_by_number_shows_only_that_subscriber(
    aiohttp_client: AiohttpClient, db_path: Path
) -> None:
    console = await demo_console(aiohttp_client, db_path)
    await _add(console, 5)
    page = await console.page("/ui/subscribers?msisdn=%2B79165550003")
    assert _listed(page) == ["+79165550003"]
    assert 'rel="next"' not in page


async def test_a_refused_filter_is_shown_again_to_be_corrected(
    aiohttp_client: AiohttpClient, db_path: Path
) -> None:
    console = await demo_console(aiohttp_client, db_path)
    page = await console.page("/ui/subscribers?msisdn_prefix=7916&operator_id=beta", status=422)
    assert 'id="browse-prefix" name="msisdn_prefix"' in page
    assert 'value="7916"' in page
    assert '<option value="beta" selected>' in page
    assert '<a href="/ui/subscribers">Show all</a>' in page
