"""Fixture files: operators, number ranges, messengers, subscribers and rules, in TOML.

A fixture is validated whole before anything is written; a broken one raises
``FixtureError`` naming the file, the field and the problem.
"""

from __future__ import annotations

import hashlib
import tomllib
from datetime import timedelta
from importlib import resources
from itertools import pairwise
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError

from operator_sim.errors import FixtureError
from operator_sim.wire import (
    Duration,
    EntityId,
    MessengerCreate,
    Msisdn,
    NumberRange,
    RuleSpec,
    SubscriberIn,
)

__all__ = [
    "Fixture",
    "FixtureMessenger",
    "FixtureOperator",
    "FixtureSimSwap",
    "LoadedFixture",
    "default_fixture_path",
    "load_fixture",
]

DEFAULT_FIXTURE_NAME = "default.toml"


class FixtureOperator(BaseModel):
    """A simulated operator and the number ranges it holds."""

    model_config = ConfigDict(extra="forbid")

    id: EntityId
    name: Annotated[str, StringConstraints(min_length=1, max_length=200)]
    ranges: Annotated[list[NumberRange], Field(min_length=1)]


class FixtureMessenger(MessengerCreate):
    """A messenger registered by the fixture, with fixed credentials."""

    api_key: Annotated[str, StringConstraints(min_length=16, max_length=200)]
    webhook_secret: (
        Annotated[str, StringConstraints(pattern=r"^whsec_[A-Za-z0-9+/=]{32,}$")] | None
    ) = None
    demo: bool = Field(
        default=False, description="Documented demo credentials: accepted on loopback only."
    )


class FixtureSimSwap(BaseModel):
    """A SIM swap of one of the fixture's subscribers, dated from when a fixture was first
    applied to the database (so that it stays put across restarts and resets)."""

    model_config = ConfigDict(extra="forbid")

    msisdn: Msisdn
    before_first_applied: Duration = Field(
        description="How long before the fixture was first applied the SIM changed."
    )


class Fixture(BaseModel):
    """The whole fixture file."""

    model_config = ConfigDict(extra="forbid")

    name: Annotated[str, StringConstraints(min_length=1, max_length=200)]
    description: str = ""
    demo_admin_token: Annotated[str, StringConstraints(min_length=8, max_length=200)] | None = None
    default_answer_delay: Duration = timedelta(0)
    seed: int | None = Field(
        default=None, description="Seed of the fault rules' random draws (default 1801)."
    )
    operators: Annotated[list[FixtureOperator], Field(min_length=1)]
    messengers: list[FixtureMessenger] = []
    subscribers: list[SubscriberIn] = []
    rules: list[RuleSpec] = []
    sim_swaps: list[FixtureSimSwap] = []


class LoadedFixture(BaseModel):
    """A validated fixture with where it came from and a digest of its bytes."""

    model_config = ConfigDict(frozen=True)

    path: str
    digest: str
    fixture: Fixture


def default_fixture_path() -> Path:
    """The default fixture: shipped inside the wheel, or at the top of a source checkout."""
    shipped = resources.files("operator_sim").joinpath("_fixtures", DEFAULT_FIXTURE_NAME)
    if shipped.is_file():
        return Path(str(shipped))
    return Path(__file__).resolve().parent.parent / "fixtures" / DEFAULT_FIXTURE_NAME


def _field_path(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out or "(top level)"


def _check_ranges(path: str, fixture: Fixture) -> None:
    spans: list[tuple[int, int, str]] = []
    for i, operator in enumerate(fixture.operators):
        for j, rng in enumerate(operator.ranges):
            field = f"operators[{i}].ranges[{j}]"
            if len(rng.from_) != len(rng.to):
                raise FixtureError(
                    path=path, field=field, problem="'from' and 'to' differ in length"
                )
            lo, hi = int(rng.from_[1:]), int(rng.to[1:])
            if lo > hi:
                raise FixtureError(path=path, field=field, problem="'from' is above 'to'")
            spans.append((lo, hi, field))
    spans.sort()
    for (_, hi_a, field_a), (lo_b, _, field_b) in pairwise(spans):
        if lo_b <= hi_a:
            raise FixtureError(path=path, field=field_b, problem=f"overlaps {field_a}")


def _check_unique(path: str, section: str, values: list[str], what: str) -> None:
    seen: set[str] = set()
    for i, value in enumerate(values):
        if value in seen:
            raise FixtureError(path=path, field=f"{section}[{i}]", problem=f"duplicate {what}")
        seen.add(value)


def _check_references(path: str, fixture: Fixture) -> None:
    operator_ids = [op.id for op in fixture.operators]
    _check_unique(path, "operators", operator_ids, "operator id")
    _check_unique(path, "messengers", [m.id for m in fixture.messengers], "messenger id")
    _check_unique(path, "messengers", [m.api_key for m in fixture.messengers], "api_key")
    _check_unique(path, "subscribers", [s.msisdn for s in fixture.subscribers], "msisdn")
    _check_unique(path, "rules", [r.id for r in fixture.rules], "rule id")
    known = set(operator_ids)
    for i, sub in enumerate(fixture.subscribers):
        if sub.operator_id not in known:
            raise FixtureError(
                path=path,
                field=f"subscribers[{i}].operator_id",
                problem=f"no operator {sub.operator_id!r} in this fixture",
            )
    numbers = {s.msisdn for s in fixture.subscribers}
    _check_unique(path, "sim_swaps", [s.msisdn for s in fixture.sim_swaps], "msisdn")
    for i, swap in enumerate(fixture.sim_swaps):
        if swap.msisdn not in numbers:
            raise FixtureError(
                path=path,
                field=f"sim_swaps[{i}].msisdn",
                problem=f"{swap.msisdn} is not a subscriber of this fixture",
            )
    for i, rule in enumerate(fixture.rules):
        if rule.match.operator_id is not None and rule.match.operator_id not in known:
            raise FixtureError(
                path=path,
                field=f"rules[{i}].match.operator_id",
                problem=f"no operator {rule.match.operator_id!r} in this fixture",
            )


def parse_fixture(path: str, raw: bytes) -> Fixture:
    """Validate fixture bytes; ``path`` only names the file in errors."""
    try:
        data: dict[str, Any] = tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise FixtureError(path=path, field="(file)", problem=f"not UTF-8: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise FixtureError(path=path, field="(file)", problem=f"not valid TOML: {exc}") from None
    try:
        # TOML has its own types (quoted dates, integer seconds): parse leniently.
        fixture = Fixture.model_validate(data, strict=False)
    except ValidationError as exc:
        first = exc.errors(include_url=False, include_input=False)[0]
        raise FixtureError(
            path=path, field=_field_path(first["loc"]), problem=first["msg"]
        ) from None
    _check_ranges(path, fixture)
    _check_references(path, fixture)
    return fixture


def load_fixture(path: Path | None = None) -> LoadedFixture:
    """Read and validate a fixture file (the default one when ``path`` is None)."""
    chosen = path or default_fixture_path()
    try:
        raw = chosen.read_bytes()
    except OSError as exc:
        raise FixtureError(
            path=str(chosen), field="(file)", problem=exc.strerror or str(exc)
        ) from None
    fixture = parse_fixture(str(chosen), raw)
    return LoadedFixture(path=str(chosen), digest=hashlib.sha256(raw).hexdigest(), fixture=fixture)
