"""`operator-sim seed --print-sample N`: numbers of each kind, checked against the database."""

from __future__ import annotations

import random
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from operator_sim.seeding.sample import SampleTaker, row_kind

KINDS = ("present", "incomplete", "terminated")


def _seed(db: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "operator_sim", "seed", "--db", str(db), *extra],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _record(db: Path, msisdn: str) -> tuple[str, int, str]:
    conn = sqlite3.connect(db)
    try:
        row = conn.execute(
            "SELECT operator_id, data_complete, status FROM subscribers WHERE msisdn = ?",
            (msisdn,),
        ).fetchone()
    finally:
        conn.close()
    assert row is not None, msisdn
    return row[0], row[1], row[2]


def test_print_sample_prints_n_numbers_of_each_kind_that_are_what_they_say(
    tmp_path: Path,
) -> None:
    db = tmp_path / "s.db"
    done = _seed(db, "--count", "3000", "--seed", "11", "--print-sample", "4")
    assert done.returncode == 0, done.stderr
    summary, *lines = done.stdout.splitlines()
    assert summary.startswith("seeded 3,000 subscribers")
    assert len(lines) == 12
    parsed = [line.split(" ") for line in lines]
    assert [kind for kind, _, _ in parsed] == [k for k in KINDS for _ in range(4)]
    assert len({msisdn for _, msisdn, _ in parsed}) == 12
    for kind, msisdn, operator_id in parsed:
        held_by, complete, status = _record(db, msisdn)
        assert held_by == operator_id
        expected = {
            "present": (1, "active"),
            "incomplete": (0, "active"),
            "terminated": (None, "terminated"),
        }[kind]
        assert status == expected[1]
        if expected[0] is not None:
            assert complete == expected[0]
    for kind in KINDS:  # numbers in order within a kind
        numbers = [m for k, m, _ in parsed if k == kind]
        assert numbers == sorted(numbers)


def test_the_same_seed_prints_the_same_sample(tmp_path: Path) -> None:
    outputs = []
    for name in ("a.db", "b.db"):
        done = _seed(tmp_path / name, "--count", "500", "--seed", "3", "--print-sample", "2")
        assert done.returncode == 0, done.stderr
        outputs.append(done.stdout.splitlines()[1:])
    assert outputs[0] == outputs[1]
    assert len(outputs[0]) == 6


def test_without_print_sample_only_the_summary_is_printed(tmp_path: Path) -> None:
    done = _seed(tmp_path / "c.db", "--count", "200")
    assert done.returncode == 0, done.stderr
    assert len(done.stdout.splitlines()) == 1


def test_a_kind_with_fewer_rows_than_asked_prints_what_there_is(tmp_path: Path) -> None:
    done = _seed(
        tmp_path / "d.db",
        "--count",
        "100",
        "--terminated-share",
        "0.02",
        "--incomplete-share",
        "0",
        "--print-sample",
        "5",
    )
    assert done.returncode == 0, done.stderr
    kinds = [line.split(" ")[0] for line in done.stdout.splitlines()[1:]]
    assert kinds == ["present"] * 5 + ["terminated"] * 2


@pytest.mark.parametrize("value", ["-1", "many"])
def test_a_bad_print_sample_is_a_usage_error(tmp_path: Path, value: str) -> None:
    done = _seed(tmp_path / "e.db", "--count", "10", "--print-sample", value)
    assert done.returncode == 2
    assert "--print-sample" in done.stderr
    assert not (tmp_path / "e.db").exists()


def test_the_taker_keeps_the_drawn_positions_of_each_kind() -> None:
    rows = [
        ("+7900000000" + str(i), "alfa", *([None] * 6), complete, status)
        for i, (complete, status) in enumerate(
            [(1, "active"), (0, "active"), (1, "terminated"), (1, "active"), (0, "active")]
        )
    ]
    assert [row_kind(r) for r in rows] == [
        "present",
        "incomplete",
        "terminated",
        "present",
        "incomplete",
    ]
    taker = SampleTaker(
        {"present": 2, "incomplete": 2, "terminated": 1},
        1,
        random.Random(0),  # noqa: S311
    )
    taker.see(rows[:2])
    taker.see(rows[2:])
    taken = taker.taken()
    assert [kind for kind, _, _ in taken] == ["present", "incomplete", "terminated"]
    assert {m for _, m, _ in taken} <= {r[0] for r in rows}
