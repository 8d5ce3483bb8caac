"""Browsing subscribers: keyset pages with filters, random samples, and bad filters."""

from __future__ import annotations

import functools
import re
import shutil
import sqlite3
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest

from operator_sim.seeding import seed_database
from operator_sim.server import create_app
from operator_sim.settings import Settings
from operator_sim.store import subscribers as subscribers_table
from operator_sim.store.inline import raw_connection, run_batch
from operator_sim.store.subscribers import SubscriberFilter
from tests.conftest import DEMO_KEY, AiohttpClient, Sim

SEEDED = 3000


@pytest.fixture(scope="module")
def seeded_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A database seeded with 3,000 subscribers, once for the module."""
    db = tmp_path_factory.mktemp("seeded") / "template.db"
    seed_database(db_path=db, count=SEEDED, seed=7, incomplete_share=0.1, terminated_share=0.1)
    return db


@pytest.fixture
async def seeded(aiohttp_client: AiohttpClient, tmp_path: Path, seeded_template: Path) -> Sim:
    """A server on a copy of the seeded database (and the fixture's own subscribers)."""
    db = tmp_path / "seeded.db"
    shutil.copyfile(seeded_template, db)  # the seeder closed it: no write-ahead log left
    app = create_app(Settings(db=db, clock="manual"))
    return Sim(await aiohttp_client(app), db)


def _stored(db: Path, where: str = "1", params: tuple[Any, ...] = ()) -> list[str]:
    conn = sqlite3.connect(db)
    try:
        rows = conn.execute(
            f"SELECT msisdn FROM subscribers WHERE {where} ORDER BY msisdn",  # noqa: S608 (test)
            params,
        ).fetchall()
    finally:
        conn.close()
    return [row[0] for row in rows]


async def _page(sim: Sim, **query: Any) -> dict[str, Any]:
    body: dict[str, Any] = await sim.admin_ok("GET", f"/subscribers?{urlencode(query)}")
    return body


async def _all_pages(sim: Sim, **query: Any) -> tuple[list[str], int]:
    """Every number the listing gives, following cursors; and how many pages it took."""
    numbers: list[str] = []
    pages = 0
    after: str | None = None
    while True:
        page = await _page(sim, **query, **({"after": after} if after else {}))
        pages += 1
        numbers += [s["msisdn"] for s in page["subscribers"]]
        after = page["next_cursor"]
        if after is None:
            return numbers, pages
        assert after == numbers[-1]
        assert pages < 1000


async def _sample(sim: Sim, **query: Any) -> list[dict[str, Any]]:
    body = await sim.admin_ok("GET", f"/subscribers/sample?{urlencode(query)}")
    subscribers: list[dict[str, Any]] = body["subscribers"]
    return subscribers


# --- listing ----------------------------------------------------------------------------


async def test_the_pages_cover_every_subscriber_once_in_number_order(seeded: Sim) -> None:
    numbers, pages = await _all_pages(seeded, limit=700)
    assert numbers == _stored(seeded.db_path)
    fixture_records = _stored(seeded.db_path, "source != 'seed'")
    assert len(numbers) == SEEDED + len(fixture_records)  # and the fixture's magic numbers
    assert pages == -(-len(numbers) // 700)


async def test_a_page_carries_personal_data_and_the_record_fields(sim: Sim) -> None:
    page = await _page(sim, msisdn_prefix="+79000000001")
    assert page == {
        "subscribers": [
            {
                "msisdn": "+79000000001",
                "operator_id": "alfa",
                "full_name": "Иванов Иван Иванович",
                "birth_date": "1985-04-12",
                "passport": "4510 123456",
                "address": "г. Москва, ул. Тверская, д. 1, кв. 1",
                "data_complete": True,
                "status": "active",
                "source": "fixture",
                "updated_at": page["subscribers"][0]["updated_at"],
            }
        ],
        "next_cursor": None,
    }


async def test_the_default_page_is_a_hundred(seeded: Sim) -> None:
    page = await _page(seeded)
    assert len(page["subscribers"]) == 100
    assert page["next_cursor"] == page["subscribers"][-1]["msisdn"]


async def test_a_page_that_ends_exactly_at_the_last_record_has_no_cursor(sim: Sim) -> None:
    records = len(_stored(sim.db_path))
    page = await _page(sim, limit=records)
    assert len(page["subscribers"]) == records
    assert page["next_cursor"] is None


@pytest.mark.parametrize("operator_id", ["alfa", "beta", "gamma", "delta"])
async def test_an_operator_lists_exactly_the_records_it_holds(
    seeded: Sim, operator_id: str
) -> None:
    numbers, _ = await _all_pages(seeded, operator_id=operator_id, limit=97)
    assert numbers == _stored(seeded.db_path, "operator_id = ?", (operator_id,))
    assert numbers


async def test_ported_and_out_of_range_records_are_listed_under_their_holder(
    seeded: Sim,
) -> None:
    [seeded_beta] = _stored(seeded.db_path, "operator_id = 'beta' AND source = 'seed'")[:1]
    await seeded.admin_ok("POST", f"/subscribers/{seeded_beta}/port", {"to_operator_id": "alfa"})
    await seeded.add_subscribers(
        # An admin record of delta's range held by gamma, and one outside every range.
        {"msisdn": "+79031234567", "operator_id": "gamma"},
        {"msisdn": "+12025550123", "operator_id": "gamma"},
    )
    for operator_id in ("alfa", "beta", "gamma", "delta"):
        numbers, _ = await _all_pages(seeded, operator_id=operator_id, limit=250)
        assert numbers == _stored(seeded.db_path, "operator_id = ?", (operator_id,))
    alfa, _ = await _all_pages(seeded, operator_id="alfa", limit=1000)
    gamma, _ = await _all_pages(seeded, operator_id="gamma", limit=1000)
    assert seeded_beta in alfa
    assert {"+79031234567", "+12025550123"} <= set(gamma)


@pytest.mark.parametrize(
    ("query", "where", "params"),
    [
        ({"status": "terminated"}, "status = 'terminated'", ()),
        ({"status": "active"}, "status = 'active'", ()),
        ({"data_complete": "false"}, "data_complete = 0", ()),
        (
            {"data_complete": "true", "status": "active"},
            "data_complete = 1 AND status = 'active'",
            (),
        ),
        ({"msisdn_prefix": "+7916"}, "msisdn LIKE '+7916%'", ()),
        ({"msisdn_prefix": "+7"}, "msisdn LIKE '+7%'", ()),
        (
            {"operator_id": "beta", "status": "terminated"},
            "operator_id = 'beta' AND status = 'terminated'",
            (),
        ),
        (
            {"operator_id": "gamma", "msisdn_prefix": "+7929", "data_complete": "false"},
            "operator_id = 'gamma' AND msisdn LIKE '+7929%' AND data_complete = 0",
            (),
        ),
    ],
)
async def test_filters_combine_with_and(
    seeded: Sim, query: dict[str, str], where: str, params: tuple[Any, ...]
) -> None:
    numbers, _ = await _all_pages(seeded, **query, limit=331)
    expected = _stored(seeded.db_path, where, params)
    assert numbers == expected
    assert expected


async def test_a_prefix_ending_in_nine_stops_at_its_own_numbers(sim: Sim) -> None:
    await sim.add_subscribers(
        {"msisdn": "+79190000000", "operator_id": "beta"},
        {"msisdn": "+79199999999", "operator_id": "beta"},
        {"msisdn": "+79200000000", "operator_id": "gamma"},
    )
    numbers, _ = await _all_pages(sim, msisdn_prefix="+7919")
    assert numbers == ["+79190000000", "+79199999999"]


async def test_an_unencoded_plus_in_the_query_is_read_as_plus(sim: Sim) -> None:
    body = await sim.admin_ok("GET", "/subscribers?msisdn_prefix=+7900000000&after=+79000000003")
    assert [s["msisdn"] for s in body["subscribers"]] == [
        "+79000000004",
        "+79000000005",
        "+79000000006",
        "+79000000007",
        "+79000000008",
        "+79000000009",
    ]


@pytest.mark.parametrize(
    "query",
    [
        "status=gone",
        "status=",
        "data_complete=yes",
        "data_complete=1",
        "msisdn_prefix=7916",
        "msisdn_prefix=%2B0",
        "msisdn_prefix=%2B79x",
        "msisdn_prefix=%2B1234567890123456",
        "after=garbage",
        "after=%2B7900",
        "limit=0",
        "limit=1001",
        "limit=ten",
        "operator_id=Not%20An%20Id",
        "status=active&status=terminated",
    ],
)
async def test_bad_listing_filters_are_422_validation_error(sim: Sim, query: str) -> None:
    resp = await sim.admin("GET", f"/subscribers?{query}")
    assert resp.status == 422, await resp.text()
    assert resp.content_type == "application/problem+json"
    assert (await resp.json())["code"] == "validation_error"


@pytest.mark.parametrize("path", ["/subscribers", "/subscribers/sample"])
async def test_browsing_is_admin_only(sim: Sim, path: str) -> None:
    resp = await sim.client.get(f"/admin/v1{path}", headers=sim.auth(DEMO_KEY))
    assert resp.status == 401
    assert (await resp.json())["code"] == "unauthorized"


# --- samples ----------------------------------------------------------------------------


async def test_the_same_seed_draws_the_same_subscribers(seeded: Sim) -> None:
    first = await _sample(seeded, n=25, seed=42)
    again = await _sample(seeded, n=25, seed=42)
    other = await _sample(seeded, n=25, seed=43)
    assert first == again
    assert len(first) == 25
    assert len({s["msisdn"] for s in first}) == 25
    assert {s["msisdn"] for s in first} != {s["msisdn"] for s in other}


async def test_a_larger_sample_of_the_same_seed_starts_with_the_smaller(seeded: Sim) -> None:
    small = await _sample(seeded, n=5, seed=9)
    large = await _sample(seeded, n=50, seed=9)
    assert large[:5] == small


async def test_samples_without_a_seed_differ(seeded: Sim) -> None:
    draws = [{s["msisdn"] for s in await _sample(seeded, n=20)} for _ in range(3)]
    assert len({frozenset(d) for d in draws}) > 1


async def test_a_sample_spreads_over_the_whole_table(seeded: Sim) -> None:
    numbers = sorted(s["msisdn"] for s in await _sample(seeded, n=200, seed=1))
    stored = _stored(seeded.db_path)
    positions = [stored.index(n) for n in numbers]
    # Not the first 200 records, nor any 200 in a row: from every quarter of the table.
    quarters = {p * 4 // len(stored) for p in positions}
    assert quarters == {0, 1, 2, 3}


async def test_the_default_sample_is_ten(seeded: Sim) -> None:
    assert len(await _sample(seeded)) == 10


@pytest.mark.parametrize(
    ("query", "check"),
    [
        ({"status": "terminated"}, lambda s: s["status"] == "terminated"),
        ({"data_complete": "false"}, lambda s: not s["data_complete"]),
        ({"operator_id": "delta"}, lambda s: s["operator_id"] == "delta"),
        (
            {"operator_id": "beta", "status": "active", "data_complete": "true"},
            lambda s: (
                (s["operator_id"], s["status"], s["data_complete"]) == ("beta", "active", True)
            ),
        ),
    ],
)
async def test_a_sample_keeps_to_its_filters(
    seeded: Sim, query: dict[str, str], check: Any
) -> None:
    drawn = await _sample(seeded, n=40, seed=5, **query)
    assert len(drawn) == 40
    assert all(check(s) for s in drawn)


async def test_a_sample_larger_than_the_records_gives_every_record_once(sim: Sim) -> None:
    drawn = await _sample(sim, n=1000, seed=3)
    assert sorted(s["msisdn"] for s in drawn) == _stored(sim.db_path)
    only_alfa = await _sample(sim, n=100, operator_id="alfa", status="terminated")
    assert [s["msisdn"] for s in only_alfa] == ["+79000000004"]
    assert await _sample(sim, n=5, operator_id="beta") == []


@pytest.mark.parametrize(
    "query",
    ["n=0", "n=1001", "n=x", "seed=-1", "seed=abc", "status=gone", "operator_id=Bad!"],
)
async def test_bad_sample_parameters_are_422_validation_error(sim: Sim, query: str) -> None:
    resp = await sim.admin("GET", f"/subscribers/sample?{query}")
    assert resp.status == 422, await resp.text()
    assert (await resp.json())["code"] == "validation_error"


async def test_an_operator_that_is_not_simulated_holds_nobody(sim: Sim) -> None:
    assert await _page(sim, operator_id="omega") == {"subscribers": [], "next_cursor": None}
    assert await _sample(sim, operator_id="omega") == []


async def test_one_subscriber_is_still_read_by_its_number(sim: Sim) -> None:
    body = await sim.admin_ok("GET", "/subscribers/+79000000003")
    assert body["data_complete"] is False


# --- how a page reads the table ---------------------------------------------------------


def _statements_of_a_page(db: Path, selection: SubscriberFilter, after: str | None) -> list[str]:
    raw = raw_connection(db)
    statements: list[str] = []
    try:
        raw.set_trace_callback(statements.append)
        page = functools.partial(
            subscribers_table.list_subscribers,
            selection=selection,
            after=after,
            limit=10,
            operator_spans=subscribers_table.number_spans(
                [(79100000000, 79199999999), (79800000000, 79899999999)]
            ),
        )
        [outcome] = run_batch(raw, [page], write=False)
    finally:
        raw.close()
    assert not isinstance(outcome, BaseException)
    return [s for s in statements if "FROM subscribers" in s]


@pytest.mark.parametrize(
    "selection",
    [
        SubscriberFilter(),
        SubscriberFilter(msisdn_prefix="+7915"),
        SubscriberFilter(operator_id="beta"),
        SubscriberFilter(operator_id="beta", msisdn_prefix="+791", status="active"),
    ],
)
def test_each_statement_of_a_page_seeks_from_one_lower_bound_to_one_upper_bound(
    seeded_template: Path, selection: SubscriberFilter
) -> None:
    # Two lower bounds (the cursor and a span's start) would make SQLite seek with one and
    # filter with the other: a page deep in a range would walk everything before it.
    statements = _statements_of_a_page(seeded_template, selection, after="+79150000000")
    assert statements
    for sql in statements:
        assert len(re.findall(r"msisdn >=? ", sql)) <= 1, sql
        assert len(re.findall(r"msisdn <=? ", sql)) <= 1, sql
        assert "msisdn > '+79150000000'" in sql or "msisdn >= '+7915" in sql, sql
