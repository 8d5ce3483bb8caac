"""Opening databases: fresh, migrated step by step, newer or foreign ones refused intact."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from operator_sim.errors import SchemaError
from operator_sim.store import SCHEMA_VERSION, Conn, open_database
from operator_sim.store.schema import APPLICATION_ID, MIGRATIONS


def _pragma(db: Path, name: str) -> int:
    with sqlite3.connect(db) as conn:
        return int(conn.execute(f"PRAGMA {name}").fetchone()[0])


async def test_fresh_database_gets_the_latest_schema_in_wal(tmp_path: Path) -> None:
    db = tmp_path / "fresh.db"
    store = await open_database(db)
    await store.close()
    assert _pragma(db, "user_version") == SCHEMA_VERSION
    assert _pragma(db, "application_id") == APPLICATION_ID
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


async def test_reopening_is_a_no_op(tmp_path: Path) -> None:
    db = tmp_path / "again.db"
    await (await open_database(db)).close()
    await (await open_database(db)).close()
    assert _pragma(db, "user_version") == SCHEMA_VERSION


async def test_an_older_version_is_migrated_step_by_step(tmp_path: Path) -> None:
    db = tmp_path / "old.db"
    await (await open_database(db)).close()
    with sqlite3.connect(db) as conn:
        conn.execute("INSERT INTO meta (key, value) VALUES ('kept', 'yes')")
    step = "ALTER TABLE meta ADD COLUMN note TEXT;"
    store = await open_database(db, migrations=(*MIGRATIONS, step))
    await store.close()
    assert _pragma(db, "user_version") == SCHEMA_VERSION + 1
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT value, note FROM meta WHERE key = 'kept'").fetchone() == (
            "yes",
            None,
        )


async def test_a_failing_migration_leaves_the_old_version_intact(tmp_path: Path) -> None:
    db = tmp_path / "fail.db"
    await (await open_database(db)).close()
    bad = "CREATE TABLE extra (x INTEGER); ALTER TABLE nowhere ADD COLUMN y TEXT;"
    with pytest.raises(SchemaError, match="stays at version"):
        await open_database(db, migrations=(*MIGRATIONS, bad))
    assert _pragma(db, "user_version") == SCHEMA_VERSION
    with sqlite3.connect(db) as conn:
        names = {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}
    assert "extra" not in names


async def test_a_newer_version_is_refused_untouched(tmp_path: Path) -> None:
    db = tmp_path / "newer.db"
    await (await open_database(db)).close()
    with sqlite3.connect(db) as conn:
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 5}")
    with pytest.raises(SchemaError, match="newer than this operator-sim"):
        await open_database(db)
    assert _pragma(db, "user_version") == SCHEMA_VERSION + 5


async def test_another_programs_database_is_refused(tmp_path: Path) -> None:
    db = tmp_path / "other.db"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE invoices (id INTEGER)")
    with pytest.raises(SchemaError, match="another program"):
        await open_database(db)
    with sqlite3.connect(db) as conn:
        assert [r[0] for r in conn.execute("SELECT name FROM sqlite_master")] == ["invoices"]


async def test_another_programs_database_is_left_byte_for_byte_as_it_was(tmp_path: Path) -> None:
    db = tmp_path / "other.db"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE invoices (id INTEGER)")
        conn.execute("INSERT INTO invoices VALUES (1)")
    before = db.read_bytes()
    with pytest.raises(SchemaError, match="another program"):
        await open_database(db)
    assert db.read_bytes() == before  # not even switched to WAL
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
    assert not (tmp_path / "other.db-wal").exists()


async def test_a_file_that_is_not_sqlite_is_refused(tmp_path: Path) -> None:
    db = tmp_path / "text.db"
    db.write_bytes(b"this is not a database, just text " * 100)
    with pytest.raises(SchemaError):
        await open_database(db)
    assert db.read_bytes().startswith(b"this is not a database")


async def test_a_write_that_fails_rolls_back(tmp_path: Path) -> None:
    store = await open_database(tmp_path / "tx.db")

    async def half_done(conn: Conn) -> None:
        await conn.execute("INSERT INTO meta (key, value) VALUES ('half', 'done')")
        raise RuntimeError("boom")

    async def count(conn: Conn) -> int:
        async with conn.execute("SELECT count(*) FROM meta") as cur:
            return int((await cur.fetchone() or [0])[0])

    with pytest.raises(RuntimeError):
        await store.run(half_done)
    assert await store.read(count) == 0
    await store.close()


async def test_version_1_loses_the_msisdn_indexes_and_keeps_its_rows(tmp_path: Path) -> None:
    db = tmp_path / "v1.db"
    await (await open_database(db, migrations=MIGRATIONS[:1])).close()
    with sqlite3.connect(db) as conn:
        conn.execute(
            "INSERT INTO journal (messenger_id, operator_id, msisdn, http_status, replayed, "
            "received_at) VALUES ('demo', 'alfa', '+79161234567', 201, 0, 0)"
        )
    await (await open_database(db)).close()
    assert _pragma(db, "user_version") == SCHEMA_VERSION  # through version 2, to the latest
    with sqlite3.connect(db) as conn:
        indexes = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='index'")}
        assert "journal_msisdn" not in indexes
        assert "identification_requests_msisdn" not in indexes
        assert "journal_messenger" in indexes
        assert conn.execute("SELECT msisdn FROM journal").fetchall() == [("+79161234567",)]
