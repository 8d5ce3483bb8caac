"""``seed_database``: the one implementation behind ``operator-sim seed`` and the seed script."""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from operator_sim.errors import StartupError
from operator_sim.fixture import Fixture, load_fixture
from operator_sim.seeding.numbers import NumberDraw, NumberSpace, OutOfNumbers, StoredLoader
from operator_sim.seeding.people import PeopleStream, state_counts
from operator_sim.seeding.pools import build_pools
from operator_sim.seeding.sample import SampleTaker
from operator_sim.store.bulk import BulkWriter, prepare_database

__all__ = [
    "DEFAULT_BATCH_SIZE",
    "DEFAULT_INCOMPLETE_SHARE",
    "DEFAULT_SEED",
    "DEFAULT_TERMINATED_SHARE",
    "Progress",
    "SeedError",
    "SeedSummary",
    "generate_rows",
    "seed_database",
]

DEFAULT_SEED = 1801
DEFAULT_INCOMPLETE_SHARE = 0.05
DEFAULT_TERMINATED_SHARE = 0.05
DEFAULT_BATCH_SIZE = 20_000
"""Rows per transaction: long enough to amortise the commit, short enough (tens of
milliseconds) that a server's writes on the same database barely wait."""

Progress = Callable[[int, int], None]
"""Called after each batch with (rows written so far, rows asked for)."""

Row = tuple[Any, ...]


class SeedError(StartupError):
    """Seeding cannot do what was asked (bad arguments, no room left in the ranges)."""


@dataclass(frozen=True, slots=True)
class SeedSummary:
    """What a seeding run wrote."""

    db_path: str
    seed: int
    count: int
    by_operator: dict[str, int]
    by_state: dict[str, int]
    seconds: float
    fixture_path: str = field(default="")
    sample: tuple[tuple[str, str, str], ...] = ()
    """(kind, msisdn, operator_id) of the rows picked by ``sample_per_kind``."""

    @property
    def rows_per_second(self) -> float:
        """Throughput of the whole run."""
        return self.count / self.seconds if self.seconds > 0 else float("inf")

    def line(self) -> str:
        """The one-line summary the command prints."""
        operators = ", ".join(f"{op} {n:,}" for op, n in self.by_operator.items())
        states = ", ".join(f"{state} {n:,}" for state, n in self.by_state.items())
        return (
            f"seeded {self.count:,} subscribers into {self.db_path} in {self.seconds:.1f} s "
            f"({self.rows_per_second:,.0f} rows/s); operators: {operators}; states: {states}"
        )

    def sample_lines(self) -> list[str]:
        """``<kind> <msisdn> <operator_id>``, one per picked row."""
        return [" ".join(item) for item in self.sample]


def check_arguments(count: int, incomplete_share: float, terminated_share: float) -> None:
    """Raise ``SeedError`` naming the option for a count or shares seeding cannot use."""
    if count < 1:
        raise SeedError(f"--count must be at least 1 (got {count})")
    for name, share in (
        ("--incomplete-share", incomplete_share),
        ("--terminated-share", terminated_share),
    ):
        if not 0.0 <= share <= 1.0:
            raise SeedError(f"{name} must be between 0 and 1 (got {share})")
    if incomplete_share + terminated_share > 1.0:
        raise SeedError(
            "--incomplete-share and --terminated-share add up to more than 1 "
            f"({incomplete_share} + {terminated_share})"
        )


def _streams(
    fixture: Fixture,
    space: NumberSpace,
    *,
    count: int,
    free: int,
    seed: int,
    incomplete_share: float,
    terminated_share: float,
    stored: StoredLoader,
) -> tuple[PeopleStream, NumberDraw]:
    # One generator per stream, so each is a function of the seed alone. String seeds
    # are hashed with SHA-512 by random.Random: the same on every platform.
    people_rng = random.Random(f"operator-sim/people/{seed}")  # noqa: S311 (fake data, not secrets)
    numbers_rng = random.Random(f"operator-sim/numbers/{seed}")  # noqa: S311 (fake data, not secrets)
    counts = state_counts(count, incomplete_share, terminated_share)
    people = PeopleStream(build_pools(seed), people_rng, counts)
    numbers = NumberDraw(space, count, free, numbers_rng, stored)
    return people, numbers


def _nothing_stored(_first: int, _last: int) -> list[int]:
    return []


def generate_rows(
    *,
    count: int,
    seed: int = DEFAULT_SEED,
    fixture_path: Path | None = None,
    incomplete_share: float = DEFAULT_INCOMPLETE_SHARE,
    terminated_share: float = DEFAULT_TERMINATED_SHARE,
    batch_size: int = DEFAULT_BATCH_SIZE,
) -> Iterator[list[Row]]:
    """The batches of rows ``seed_database`` writes into an empty database, without writing.

    For benchmarks and checks; rows are in ``store.bulk.SUBSCRIBER_ROW_COLUMNS`` order.
    """
    check_arguments(count, incomplete_share, terminated_share)
    loaded = load_fixture(fixture_path)
    space = NumberSpace(loaded.fixture)
    free = space.total - len(space.reserved_in_ranges())
    if count > free:
        raise SeedError(f"the ranges of {loaded.path} have room for {free:,} subscribers")
    people, numbers = _streams(
        loaded.fixture,
        space,
        count=count,
        free=free,
        seed=seed,
        incomplete_share=incomplete_share,
        terminated_share=terminated_share,
        stored=_nothing_stored,
    )
    while people.left:
        persons = people.take(batch_size)
        yield [n + p for n, p in zip(numbers.take(len(persons)), persons, strict=True)]


def _stored_loader(writer: BulkWriter) -> StoredLoader:
    def stored(first: int, last: int) -> list[int]:
        # Both ends lie in one range, where every number has the same length: text
        # order is number order there.
        return [int(m[1:]) for m in writer.msisdns_between(f"+{first}", f"+{last}")]

    return stored


def _free_numbers(writer: BulkWriter, space: NumberSpace) -> int:
    """Numbers in the ranges that are neither stored nor reserved."""
    stored = sum(
        writer.count_between(f"+{s.low}", f"+{s.low + s.end - s.offset - 1}")
        for s in space.segments
    )
    reserved = space.reserved_in_ranges()
    # The fixture's own subscribers are both reserved and (once a server applied the
    # fixture) stored: count them once. Reserved numbers come in blocks of ten.
    both = 0
    for block in sorted({n // 10 for n in reserved}):
        held = set(writer.msisdns_between(f"+{block * 10}", f"+{block * 10 + 9}"))
        both += sum(1 for n in reserved if n // 10 == block and f"+{n}" in held)
    return space.total - stored - len(reserved) + both


def seed_database(
    *,
    db_path: str | Path,
    count: int,
    seed: int = DEFAULT_SEED,
    fixture_path: Path | None = None,
    incomplete_share: float = DEFAULT_INCOMPLETE_SHARE,
    terminated_share: float = DEFAULT_TERMINATED_SHARE,
    progress: Progress | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    sample_per_kind: int = 0,
) -> SeedSummary:
    """Add ``count`` new Faker (ru_RU) subscribers to the database at ``db_path``.

    The fixture is validated and the arguments checked before anything is written.
    Numbers come from the fixture's ranges, never a reserved (magic) number or one
    already stored; the same seed, count and fixture give the same rows on a database
    that holds no seeded rows yet. Blocking: call it from a thread inside an event loop.
    ``sample_per_kind`` picks that many of the rows written of each kind (present,
    incomplete, terminated) at random, the same for the same seed, into the summary.
    """
    started = time.perf_counter()
    check_arguments(count, incomplete_share, terminated_share)
    if batch_size < 1:
        raise SeedError(f"batch size must be at least 1 (got {batch_size})")
    loaded = load_fixture(fixture_path)
    space = NumberSpace(loaded.fixture)
    prepare_database(db_path)
    with BulkWriter(db_path) as writer:
        free = _free_numbers(writer, space)
        if count > free:
            raise SeedError(
                f"the ranges of {loaded.path} have room for {max(free, 0):,} more "
                f"subscribers, not {count:,}"
            )
        people, numbers = _streams(
            loaded.fixture,
            space,
            count=count,
            free=free,
            seed=seed,
            incomplete_share=incomplete_share,
            terminated_share=terminated_share,
            stored=_stored_loader(writer),
        )
        taker = (
            SampleTaker(
                state_counts(count, incomplete_share, terminated_share),
                sample_per_kind,
                random.Random(f"operator-sim/sample/{seed}"),  # noqa: S311 (fake data, not secrets)
            )
            if sample_per_kind > 0
            else None
        )
        written = 0
        while people.left:
            # The personal data does not depend on the database: build it before taking
            # the write lock, so a server's writes wait only for the numbers and the insert.
            persons = people.take(batch_size)
            with writer.transaction():
                numbers.forget_stored()
                try:
                    pairs = numbers.take(len(persons))
                except OutOfNumbers:
                    # Only when something else stored numbers in the ranges while we
                    # were seeding, and the ranges were nearly full.
                    raise SeedError(
                        f"the ranges of {loaded.path} ran out of free numbers after "
                        f"{written:,} subscribers"
                    ) from None
                rows = [n + p for n, p in zip(pairs, persons, strict=True)]
                writer.insert_subscribers(rows)
            if taker is not None:
                taker.see(rows)
            written += len(persons)
            if progress is not None:
                progress(written, count)
    return SeedSummary(
        db_path=str(db_path),
        seed=seed,
        count=written,
        by_operator=numbers.by_operator(),
        by_state=state_counts(count, incomplete_share, terminated_share),
        seconds=time.perf_counter() - started,
        fixture_path=loaded.path,
        sample=() if taker is None else taker.taken(),
    )
