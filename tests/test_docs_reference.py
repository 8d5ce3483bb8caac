"""The reference in docs/ names everything the server serves and the command accepts.

Each test reads the code's own declarations (routes, wire models, problem codes, settings,
command-line options) and fails when the documentation leaves one out.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import pytest
from pydantic import BaseModel

from operator_sim import cli, wire
from operator_sim.server import problems
from operator_sim.server.app import ENDPOINTS
from operator_sim.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
API = (ROOT / "docs" / "api.md").read_text(encoding="utf-8")
CONFIGURATION = (ROOT / "docs" / "configuration.md").read_text(encoding="utf-8")
SERVER_SOURCES = sorted((ROOT / "operator_sim" / "server").glob("*.py"))


_PARAM_RE = re.compile(r"\{[^}]*\}")


def _route(method: str, path: str) -> str:
    return f"{method} {_PARAM_RE.sub('{}', path)}"


def test_every_route_is_in_the_reference() -> None:
    documented = {
        _route(m, p) for m, p in re.findall(r"\b(GET|POST|PUT|PATCH|DELETE) (/[^\s`?]*)", API)
    }
    missing = [r for r in (_route(e.method, e.path) for e in ENDPOINTS) if r not in documented]
    assert missing == []


def _problem_codes() -> set[str]:
    codes = set(problems.PROBLEM_CODES) | set(problems._TABLE.values())
    codes |= set(problems._HTTP_CODES.values())
    codes |= {"internal_error", "server_error", "http_error"}
    for source in SERVER_SOURCES:
        codes |= set(re.findall(r"\bcode=\"([a-z_]+)\"", source.read_text(encoding="utf-8")))
    return codes


def test_every_problem_code_is_in_the_error_table() -> None:
    codes = _problem_codes()
    assert {"invalid_msisdn", "rate_limited", "too_many_long_polls"} <= codes
    table = API[API.index("| status | code | when |") :]
    missing = sorted(c for c in codes if f"`{c}`" not in table)
    assert missing == []


_RESPONSE_MODELS: tuple[type[BaseModel], ...] = (
    wire.Problem,
    wire.Health,
    wire.IdentificationRequestCreate,
    wire.IdentificationRequest,
    wire.IdentificationCodeCreate,
    wire.IdentificationCode,
    wire.Routing,
    wire.IdentificationAnsweredEvent,
    wire.ContractTerminatedEvent,
    wire.SubscriberEventData,
    wire.EventPage,
    wire.Operator,
    wire.MessengerCreate,
    wire.Messenger,
    wire.MessengerCreated,
    wire.SubscriberIn,
    wire.SubscribersUpserted,
    wire.Subscriber,
    wire.JournalEntry,
    wire.JournalCount,
    wire.ClockView,
    wire.ClockSet,
    wire.ClockAdvance,
    wire.ClockAdvanced,
    wire.PortRequest,
    wire.LifecycleResult,
    wire.Delivery,
    wire.FeedDelivery,
    wire.WebhookDelivery,
    wire.DeliveryAttempt,
    wire.RuleSpec,
    wire.Rule,
    wire.Rotation,
    wire.KeyRotated,
    wire.WebhookSecretRotated,
    wire.SubscriberPage,
    wire.SubscriberSample,
    wire.SmsCreate,
    wire.SmsMessage,
    wire.SmsStatusChangedEvent,
    wire.SmsEventPage,
    wire.PhoneMessage,
    wire.PhoneInbox,
    wire.PhoneOtp,
    wire.SimSwapDateRequest,
    wire.SimSwapDate,
    wire.SimSwapCheckRequest,
    wire.SimSwapCheck,
    wire.SimSwapRecord,
    wire.SimSwapRecorded,
)


@pytest.mark.parametrize("model", _RESPONSE_MODELS, ids=lambda m: m.__name__)
def test_every_wire_field_is_in_the_reference(model: type[BaseModel]) -> None:
    names = [field.alias or name for name, field in model.model_fields.items()]
    missing = [n for n in names if f"`{n}`" not in API and f'"{n}"' not in API]
    assert missing == []


def test_every_serve_option_is_in_the_configuration_table() -> None:
    table = CONFIGURATION[CONFIGURATION.index("| option | environment |") :]
    missing = [
        name
        for name in Settings.model_fields
        if f"`--{name.replace('_', '-')}`" not in table
        or f"`OPERATOR_SIM_{name.upper()}`" not in table
    ]
    assert missing == []


def test_every_command_and_seed_option_is_in_the_reference() -> None:
    parser = cli._parser()
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices
    for name in commands:
        assert f"### `operator-sim {name}`" in API, name
    seed_options = [
        option
        for action in commands["seed"]._actions
        for option in action.option_strings
        if option.startswith("--") and option != "--help"
    ]
    assert seed_options
    assert [o for o in seed_options if f"`{o} " not in API] == []
