"""Seeding: determinism, shares, number ranges, reserved numbers, repeat runs and the command."""

from __future__ import annotations

import hashlib
import re
import subprocess
import sys
from collections import Counter
from datetime import date
from io import StringIO
from pathlib import Path
from typing import Any

import pytest

from operator_sim import cli
from operator_sim.domain.identification import is_present
from operator_sim.errors import FixtureError
from operator_sim.fixture import default_fixture_path, load_fixture
from operator_sim.seeding import (
    DEFAULT_INCOMPLETE_SHARE,
    DEFAULT_SEED,
    DEFAULT_TERMINATED_SHARE,
    FAKER_VERSION,
    ProgressBar,
    SeedError,
    generate_rows,
    seed_database,
)
from operator_sim.store.bulk import SUBSCRIBER_ROW_COLUMNS, read_subscribers

COLUMN = {name: i for i, name in enumerate(SUBSCRIBER_ROW_COLUMNS)}
LARGE_FIXTURE = Path(__file__).resolve().parent.parent / "fixtures" / "large.toml"

# One operator of 500 numbers and one of 500 + 100 shorter ones (a different number
# length, so text order and number order differ across ranges), two named subscribers
# and two rules: small enough to fill almost completely.
TINY_FIXTURE = """
name = "tiny"
demo_admin_token = "demo-admin-token-not-secret"

[[operators]]
id = "one"
name = "One"
ranges = [{ from = "+79000000000", to = "+79000000499" }]

[[operators]]
id = "two"
name = "Two"
ranges = [
  { from = "+79000000500", to = "+79000000999" },
  { from = "+791000000", to = "+791000099" },
]

[[subscribers]]
msisdn = "+79000000001"
operator_id = "one"
full_name = "Иванов Иван Иванович"
birth_date = "1985-04-12"
passport = "4510 123456"

[[subscribers]]
msisdn = "+79000000003"
operator_id = "one"
full_name = "Петрова Анна Сергеевна"
data_complete = false

[[rules]]
id = "exact"
match = { msisdn = "+79000000555" }
action = { type = "never" }

[[rules]]
id = "glob"
match = { msisdn = "+7900000077*" }
action = { type = "never" }
"""
TINY_SPACE = 1100
TINY_RESERVED = {f"+7900000000{d}" for d in range(10)} | {f"+7900000055{d}" for d in range(10)}


@pytest.fixture
def tiny_fixture(tmp_path: Path) -> Path:
    """The tiny fixture above, as a file."""
    path = tmp_path / "tiny.toml"
    path.write_text(TINY_FIXTURE, encoding="utf-8")
    return path


def _seed(db: Path, count: int, **kwargs: Any) -> list[tuple[Any, ...]]:
    seed_database(db_path=db, count=count, **kwargs)
    return read_subscribers(db, source="seed")


def _col(row: tuple[Any, ...], name: str) -> Any:
    return row[COLUMN[name]]


def _adult_on(birth: date) -> date:
    try:
        return birth.replace(year=birth.year + 18)
    except ValueError:  # born on 29 February
        return date(birth.year + 18, 3, 1)


# --- determinism ---------------------------------------------------------------------


def test_same_seed_gives_identical_rows(tmp_path: Path) -> None:
    first = _seed(tmp_path / "a.db", 3000, seed=42)
    second = _seed(tmp_path / "b.db", 3000, seed=42)
    assert len(first) == 3000
    assert repr(first).encode() == repr(second).encode()


def test_other_seed_gives_other_rows(tmp_path: Path) -> None:
    first = _seed(tmp_path / "a.db", 3000, seed=42)
    other = _seed(tmp_path / "b.db", 3000, seed=43)
    shared = {_col(r, "msisdn") for r in first} & {_col(r, "msisdn") for r in other}
    assert len(shared) < 30
    assert Counter(_col(r, "full_name") for r in first) != Counter(
        _col(r, "full_name") for r in other
    )


# Digests of the 500 rows of the default seed on the default fixture, recorded again
# whenever the fixture's magic numbers change (seeding keeps their blocks of ten free).
# Numbers depend only on Python's random.Random (string seeds are hashed with SHA-512),
# so theirs must match on every machine; whole rows also depend on Faker's word lists.
GOLDEN_NUMBERS = "a42479c84de862bdaebedc975153683faa657d5a98378868f15799f3d39efd2e"
GOLDEN_ROWS = "edcb7ac683f15b247c8a83f1641f282c5b3b5fd98c798095c21435efa41aa151"
GOLDEN_FAKER = "40.63.0"


def test_numbers_are_the_recorded_ones_on_any_machine() -> None:
    rows = [row for batch in generate_rows(count=500) for row in batch]
    assert hashlib.sha256(repr([r[:2] for r in rows]).encode()).hexdigest() == GOLDEN_NUMBERS


@pytest.mark.skipif(
    FAKER_VERSION != GOLDEN_FAKER, reason=f"rows were recorded with Faker {GOLDEN_FAKER}"
)
def test_rows_are_the_recorded_ones_with_the_same_faker() -> None:
    rows = [row for batch in generate_rows(count=500) for row in batch]
    assert hashlib.sha256(repr(rows).encode()).hexdigest() == GOLDEN_ROWS


def test_generated_rows_are_the_rows_written_to_an_empty_database(tmp_path: Path) -> None:
    written = _seed(tmp_path / "a.db", 2500, seed=7, batch_size=1000)
    generated = [row for batch in generate_rows(count=2500, seed=7) for row in batch]
    assert written == generated


def test_batch_size_does_not_change_the_rows(tmp_path: Path) -> None:
    small = _seed(tmp_path / "a.db", 2000, seed=9, batch_size=333)
    large = _seed(tmp_path / "b.db", 2000, seed=9, batch_size=50_000)
    assert small == large


# --- what the rows hold ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("incomplete", "terminated"), [(0.05, 0.05), (0.2, 0.1), (0.0, 0.0), (0.5, 0.5)]
)
def test_shares_of_incomplete_and_terminated_subscribers(
    tmp_path: Path, incomplete: float, terminated: float
) -> None:
    count = 4000
    summary = seed_database(
        db_path=tmp_path / "s.db",
        count=count,
        incomplete_share=incomplete,
        terminated_share=terminated,
    )
    rows = read_subscribers(tmp_path / "s.db", source="seed")
    answers = Counter(
        is_present(
            holder_operator_id=_col(r, "operator_id"),
            status=_col(r, "status"),
            data_complete=bool(_col(r, "data_complete")),
            asked_operator_id=_col(r, "operator_id"),
        )
        for r in rows
    )
    n_incomplete = sum(1 for r in rows if _col(r, "data_complete") == 0)
    n_terminated = sum(1 for r in rows if _col(r, "status") == "terminated")
    tolerance = 0.005 * count
    assert abs(n_incomplete - incomplete * count) <= tolerance
    assert abs(n_terminated - terminated * count) <= tolerance
    assert abs(answers[True] - (1 - incomplete - terminated) * count) <= tolerance
    assert summary.by_state == {
        "present": answers[True],
        "incomplete": n_incomplete,
        "terminated": n_terminated,
    }


def test_rows_look_like_real_subscribers(tmp_path: Path) -> None:
    rows = _seed(tmp_path / "s.db", 3000, incomplete_share=0.2, terminated_share=0.2)
    word = "[\u0410-\u042f\u0401][\u0430-\u044f\u0451-]+"  # a capitalised Cyrillic word
    cyrillic_name = re.compile(f"^{word} {word} {word}$")
    for row in rows:
        name, born, passport = (
            _col(row, "full_name"),
            _col(row, "birth_date"),
            _col(row, "passport"),
        )
        started, ended = _col(row, "contract_start"), _col(row, "contract_end")
        assert cyrillic_name.match(name), name
        assert _col(row, "source") == "seed"
        assert passport is None or re.fullmatch(r"\d{4} \d{6}", passport), passport
        assert date.fromisoformat(started) < date(2026, 1, 1)
        if born is not None:
            assert _adult_on(date.fromisoformat(born)) <= date.fromisoformat(started)
        if _col(row, "status") == "terminated":
            assert ended is not None
            assert date.fromisoformat(started) < date.fromisoformat(ended)
            assert _col(row, "data_complete") == 1
        else:
            assert ended is None
        if _col(row, "data_complete") == 0:
            assert born is None or passport is None
        else:
            assert born is not None
            assert passport is not None
            assert _col(row, "address") is not None


def test_numbers_stay_inside_their_operators_ranges(tmp_path: Path) -> None:
    fixture = load_fixture(LARGE_FIXTURE).fixture
    spans = {
        op.id: [(int(r.from_[1:]), int(r.to[1:])) for r in op.ranges] for op in fixture.operators
    }
    rows = _seed(tmp_path / "s.db", 5000, fixture_path=LARGE_FIXTURE)
    assert len(rows) == 5000
    for row in rows:
        number = int(_col(row, "msisdn")[1:])
        assert any(lo <= number <= hi for lo, hi in spans[_col(row, "operator_id")]), row[:2]
    # Every operator gets a share: the small MVNO too, in proportion to its ranges.
    assert {_col(r, "operator_id") for r in rows} == set(spans)


def test_operator_shares_follow_range_sizes(tmp_path: Path) -> None:
    summary = seed_database(db_path=tmp_path / "s.db", count=6800)
    fixture = load_fixture(default_fixture_path()).fixture
    sizes = {
        op.id: sum(int(r.to[1:]) - int(r.from_[1:]) + 1 for r in op.ranges)
        for op in fixture.operators
    }
    total = sum(sizes.values())
    for op_id, size in sizes.items():
        assert abs(summary.by_operator[op_id] - 6800 * size / total) <= 2


# --- reserved numbers and repeated runs -------------------------------------------------


def test_magic_numbers_and_their_blocks_are_never_written(
    tmp_path: Path, tiny_fixture: Path
) -> None:
    # 1080 numbers are free in the tiny fixture; take nearly all of them.
    rows = _seed(tmp_path / "s.db", 1070, fixture_path=tiny_fixture)
    numbers = {_col(r, "msisdn") for r in rows}
    assert len(numbers) == 1070
    assert numbers.isdisjoint(TINY_RESERVED)
    # A glob rule does not reserve numbers: its numbers are ordinary subscribers.
    assert "+79000000771" in numbers or "+79000000772" in numbers


def test_seeding_twice_adds_new_numbers_without_duplicates(tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    first = _seed(db, 2000, seed=5)
    second = seed_database(db_path=db, count=2000, seed=5)
    rows = read_subscribers(db, source="seed")
    assert second.count == 2000
    assert len(rows) == 4000
    assert len({_col(r, "msisdn") for r in rows}) == 4000
    # The first run's rows are untouched.
    assert set(first) <= set(rows)


def test_filling_a_small_fixture_in_several_runs_never_collides(
    tmp_path: Path, tiny_fixture: Path
) -> None:
    db = tmp_path / "s.db"
    for count, seed in ((400, 1), (400, 1), (250, 2), (30, 3)):
        seed_database(db_path=db, count=count, seed=seed, fixture_path=tiny_fixture)
    rows = read_subscribers(db, source="seed")
    numbers = [_col(r, "msisdn") for r in rows]
    assert len(numbers) == len(set(numbers)) == 1080
    assert set(numbers).isdisjoint(TINY_RESERVED)


def test_asking_for_more_numbers_than_are_free_is_refused(
    tmp_path: Path, tiny_fixture: Path
) -> None:
    db = tmp_path / "s.db"
    seed_database(db_path=db, count=1000, fixture_path=tiny_fixture)
    with pytest.raises(SeedError, match="room for 80 more subscribers, not 81"):
        seed_database(db_path=db, count=81, fixture_path=tiny_fixture)
    assert len(read_subscribers(db, source="seed")) == 1000


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"count": 0}, "--count must be at least 1"),
        ({"count": 10, "incomplete_share": 1.5}, "--incomplete-share must be between 0 and 1"),
        ({"count": 10, "terminated_share": -0.1}, "--terminated-share must be between 0 and 1"),
        (
            {"count": 10, "incomplete_share": 0.6, "terminated_share": 0.5},
            "add up to more than 1",
        ),
    ],
)
def test_bad_arguments_are_refused_before_anything_is_written(
    tmp_path: Path, kwargs: dict[str, Any], message: str
) -> None:
    db = tmp_path / "s.db"
    with pytest.raises(SeedError, match=message):
        seed_database(db_path=db, **kwargs)
    assert not db.exists()


# --- broken fixtures -----------------------------------------------------------------------

BROKEN_FIXTURES = {
    "not-toml": ('name = "x"\n[[operators]\n', "(file)", "not valid TOML"),
    "no-operators": ('name = "x"\n', "operators", "Field required"),
    "from-above-to": (
        'name = "x"\n[[operators]]\nid = "a"\nname = "A"\n'
        'ranges = [{ from = "+79000000999", to = "+79000000000" }]\n',
        "operators[0].ranges[0]",
        "'from' is above 'to'",
    ),
    "bad-number": (
        'name = "x"\n[[operators]]\nid = "a"\nname = "A"\n'
        'ranges = [{ from = "89000000000", to = "+79000000999" }]\n',
        "operators[0].ranges[0].from",
        "not a canonical E.164 number",
    ),
    "overlap": (
        'name = "x"\n[[operators]]\nid = "a"\nname = "A"\n'
        'ranges = [{ from = "+79000000000", to = "+79000000999" }]\n'
        '[[operators]]\nid = "b"\nname = "B"\n'
        'ranges = [{ from = "+79000000500", to = "+79000001999" }]\n',
        "operators[1].ranges[0]",
        "overlaps operators[0].ranges[0]",
    ),
    "unknown-operator": (
        'name = "x"\n[[operators]]\nid = "a"\nname = "A"\n'
        'ranges = [{ from = "+79000000000", to = "+79000000999" }]\n'
        '[[subscribers]]\nmsisdn = "+79000000001"\noperator_id = "zz"\n',
        "subscribers[0].operator_id",
        "no operator 'zz' in this fixture",
    ),
    "unknown-field": (
        'name = "x"\ncolour = "red"\n[[operators]]\nid = "a"\nname = "A"\n'
        'ranges = [{ from = "+79000000000", to = "+79000000999" }]\n',
        "colour",
        "Extra inputs are not permitted",
    ),
}


@pytest.mark.parametrize("case", sorted(BROKEN_FIXTURES))
def test_broken_fixture_is_refused_naming_file_field_and_problem(tmp_path: Path, case: str) -> None:
    text, field, problem = BROKEN_FIXTURES[case]
    fixture = tmp_path / f"{case}.toml"
    fixture.write_text(text, encoding="utf-8")
    db = tmp_path / "s.db"
    with pytest.raises(FixtureError) as caught:
        seed_database(db_path=db, count=10, fixture_path=fixture)
    error = caught.value
    assert (error.path, error.field) == (str(fixture), field)
    assert problem in error.problem
    assert str(error).startswith(f"{fixture}: {field}: ")
    assert not db.exists()


def test_command_reports_a_broken_fixture_and_writes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text, field, problem = BROKEN_FIXTURES["from-above-to"]
    fixture = tmp_path / "broken.toml"
    fixture.write_text(text, encoding="utf-8")
    db = tmp_path / "s.db"
    status = cli.main(["seed", "--db", str(db), "--count", "5", "--fixture", str(fixture)])
    out, err = capsys.readouterr()
    assert status == 2
    assert out == ""
    assert err == f"operator-sim: error: {fixture}: {field}: {problem}\n"
    assert not db.exists()


# --- the command ---------------------------------------------------------------------------


def test_command_prints_one_summary_line_and_no_progress_off_a_terminal(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "s.db"
    status = cli.main(["seed", "--db", str(db), "--count", "1000", "--seed", "3"])
    out, err = capsys.readouterr()
    assert status == 0
    assert err == ""
    assert "\r" not in out
    assert out.count("\n") == 1
    assert re.match(
        r"^seeded 1,000 subscribers into .+ in \d+\.\d s \([\d,]+ rows/s\); "
        r"operators: alfa \d+, beta \d+, gamma \d+, delta \d+; "
        r"states: present 900, incomplete 50, terminated 50\n$",
        out,
    ), out
    assert len(read_subscribers(db, source="seed")) == 1000


def test_command_and_library_give_the_same_rows(tmp_path: Path) -> None:
    cli.main(["seed", "--db", str(tmp_path / "a.db"), "--count", "500"])
    seed_database(db_path=tmp_path / "b.db", count=500)
    assert read_subscribers(tmp_path / "a.db") == read_subscribers(tmp_path / "b.db")


def test_command_defaults_are_the_library_defaults() -> None:
    args = cli._parser().parse_args(["seed", "--db", "x.db", "--count", "1"])
    assert args.seed == DEFAULT_SEED
    assert args.incomplete_share == DEFAULT_INCOMPLETE_SHARE
    assert args.terminated_share == DEFAULT_TERMINATED_SHARE


@pytest.mark.parametrize(
    "argv",
    [
        ["--count", "0"],
        ["--count", "ten"],
        ["--count", "5", "--incomplete-share", "2"],
        ["--count", "5", "--incomplete-share", "0.7", "--terminated-share", "0.7"],
    ],
)
def test_command_refuses_bad_options(
    tmp_path: Path, argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "s.db"
    with pytest.raises(SystemExit) as caught:
        cli.main(["seed", "--db", str(db), *argv])
    assert caught.value.code == 2
    assert "error:" in capsys.readouterr().err
    assert not db.exists()


def test_seed_script_runs_the_command(tmp_path: Path) -> None:
    script = Path(__file__).resolve().parent.parent / "scripts" / "seed.py"
    db = tmp_path / "s.db"
    done = subprocess.run(
        [sys.executable, str(script), "--db", str(db), "--count", "200"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("seeded 200 subscribers")
    seed_database(db_path=tmp_path / "lib.db", count=200)
    assert read_subscribers(db) == read_subscribers(tmp_path / "lib.db")


def test_serving_never_imports_faker() -> None:
    code = (
        "import sys, operator_sim.cli, operator_sim.server; "
        "operator_sim.cli._parser(); print('faker' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"


# --- progress bar ---------------------------------------------------------------------------


def test_progress_bar_shows_rows_rate_and_eta_on_a_terminal() -> None:
    out = StringIO()
    bar = ProgressBar(out, enabled=True)
    bar(500, 1000)
    bar(1000, 1000)
    bar.close()
    text = out.getvalue()
    assert "1,000/1,000 rows" in text
    assert "rows/s" in text
    assert "ETA" in text
    assert text.endswith("\r\x1b[K")


def test_progress_bar_is_silent_when_output_is_not_a_terminal() -> None:
    out = StringIO()
    bar = ProgressBar(out)
    bar(1000, 1000)
    bar.close()
    assert out.getvalue() == ""


def test_progress_bar_text() -> None:
    text = ProgressBar.render(250, 1000, 2.0)
    assert text.startswith("[" + "#" * 7 + "." * 23 + "]  25%")
    assert "250/1,000 rows  125 rows/s  ETA 6s" in text


# --- the seeding guide (docs/seeding.md) ----------------------------------------------------


def _readme_section() -> str:
    text = (Path(__file__).resolve().parent.parent / "docs/seeding.md").read_text(encoding="utf-8")
    found = re.search(r"<!-- seeding:start -->(.*?)<!-- seeding:end -->", text, re.S)
    assert found is not None, "docs/seeding.md lost its seeding markers"
    return found.group(1)


def test_readme_fixture_example_loads_and_seeds(tmp_path: Path) -> None:
    example = re.search(r"```toml\n(.*?)```", _readme_section(), re.S)
    assert example is not None
    fixture = tmp_path / "mine.toml"
    fixture.write_text(example.group(1), encoding="utf-8")
    summary = seed_database(db_path=tmp_path / "s.db", count=100, fixture_path=fixture)
    assert summary.by_operator == {"north": 100}


def test_readme_broken_fixture_example_prints_what_it_says(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    example = re.search(
        r"```console\n\$ (operator-sim seed [^\n]*broken\.toml)\n"
        r"(operator-sim: error: [^\n]*)\n```",
        _readme_section(),
    )
    assert example is not None
    command, expected = example.groups()
    monkeypatch.chdir(tmp_path)
    (tmp_path / "broken.toml").write_text(BROKEN_FIXTURES["from-above-to"][0], encoding="utf-8")
    assert cli.main(command.split()[1:]) == 2
    assert capsys.readouterr().err == expected + "\n"
    assert not (tmp_path / "sim.db").exists()
