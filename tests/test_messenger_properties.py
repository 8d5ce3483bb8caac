"""Property-based tests: phone normalisation, and "identified only after a timely present"."""

from __future__ import annotations

import json
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from operator_sim.messenger import InvalidPhone, InvalidResponse, Messenger, Reason, verdict
from operator_sim.messenger.checks import check_request, parse_model
from operator_sim.wire import IdentificationRequest, is_msisdn
from tests.messenger_support import FakeOperator, FakeTime, code_body, request_body

NUMBER = "+79000000001"

# Russian mobile codes phonenumbers accepts for every subscriber number (930 is unassigned).
_CODES = [c for c in range(900, 1000) if c != 930]
_SEPARATORS = st.sampled_from(["", " ", "-", ".", "  "])


@st.composite
def typed_russian_numbers(draw: st.DrawFn) -> tuple[str, str]:
    """A Russian mobile number as a user might type it, and its E.164 form."""
    code = draw(st.sampled_from(_CODES))
    digits = f"{code}{draw(st.text('0123456789', min_size=7, max_size=7))}"
    sep = draw(_SEPARATORS)
    area = draw(st.sampled_from([f"({code})", str(code)]))
    prefix = draw(st.sampled_from(["8", "+7", "+7 ", "8 ", ""]))
    grouped = f"{prefix}{area}{sep}{digits[3:6]}{sep}{digits[6:8]}{sep}{digits[8:10]}"
    typed = draw(st.sampled_from([grouped, f"{prefix}{digits}"]))
    return typed, f"+7{digits}"


@given(typed_russian_numbers())
def test_every_way_of_typing_a_russian_number_normalises_to_e164(case: tuple[str, str]) -> None:
    from operator_sim.messenger import normalise_phone

    typed, expected = case
    assert normalise_phone(typed) == expected


@given(st.text(max_size=40))
def test_anything_typed_is_either_refused_or_canonical_e164(text: str) -> None:
    from operator_sim.messenger import normalise_phone

    try:
        msisdn = normalise_phone(text)
    except InvalidPhone:
        return
    assert is_msisdn(msisdn)
    assert normalise_phone(msisdn) == msisdn  # idempotent


def test_documented_examples_normalise() -> None:
    from operator_sim.messenger import normalise_phone

    for typed in ("8 (900) 000-00-01", "+7 900 000 00 01", "9000000001"):
        assert normalise_phone(typed) == "+79000000001"
    for bad in ("", "12345", "call me", "+7 900 000 00 011", "+7 900 000 00 01 ext. 2"):
        with pytest.raises(InvalidPhone):
            normalise_phone(bad)


# --- the invariant --------------------------------------------------------------------

_MUTATIONS = [
    "drop_field",
    "other_msisdn",
    "other_operator",
    "not_json",
    "html",
    "array",
    "wrong_status_code",
    "long_deadline",
    "answer_without_time",
    "null_body",
    "extra_field",
]


@st.composite
def operator_answers(draw: st.DrawFn) -> tuple[int, str, bytes, bool]:
    """(HTTP status, content type, body, whether it is a valid timely present for NUMBER)."""
    status = draw(st.sampled_from(["answered", "expired"]))
    result = draw(st.sampled_from(["present", "absent"])) if status == "answered" else None
    after = timedelta(seconds=draw(st.integers(0, 30 * 60))) if status == "answered" else None
    deadline = timedelta(seconds=draw(st.integers(1, 20 * 60)))
    body: Any = request_body(status=status, result=result, answered_after=after, deadline=deadline)
    timely_present = result == "present" and after is not None and after <= deadline
    http, ctype = 201, "application/json"
    mutation = draw(st.none() | st.sampled_from(_MUTATIONS))
    if mutation is not None:
        timely_present = False
    if mutation == "drop_field":
        del body[draw(st.sampled_from(sorted(body)))]
    elif mutation == "other_msisdn":
        body["msisdn"] = "+79000000002"
    elif mutation == "other_operator":
        body["operator_id"] = "beta"
    elif mutation == "long_deadline":
        body = request_body(
            status=status,
            result=result,
            answered_after=after,
            deadline=timedelta(minutes=draw(st.integers(21, 600))),
        )
    elif mutation == "answer_without_time":
        body["result"], body["answered_at"], body["status"] = "present", None, "answered"
    elif mutation == "extra_field":
        body["passport"] = "4510 123456"
    raw = json.dumps(body).encode()
    if mutation == "not_json":
        raw = raw[: draw(st.integers(0, len(raw) - 1))]
    elif mutation == "html":
        ctype, raw = "text/html", b"<html><body>present</body></html>"
    elif mutation == "array":
        raw = json.dumps([body]).encode()
    elif mutation == "null_body":
        raw = b"null"
    elif mutation == "wrong_status_code":
        http = draw(st.sampled_from([200, 202, 204, 301, 400, 409, 500]))
    return http, ctype, raw, timely_present


def _pure_verdict(http: int, ctype: str, raw: bytes) -> Reason:
    if http != 201 or ctype != "application/json":
        return Reason.INVALID_RESPONSE
    try:
        req = check_request(
            parse_model(IdentificationRequest, raw),
            operator_id="alfa",
            msisdn=NUMBER,
            request_id=None,
        )
    except InvalidResponse:
        return Reason.INVALID_RESPONSE
    reason = verdict(req)
    assert reason is not None  # generated answers are never pending
    return reason


@settings(max_examples=400)
@given(operator_answers())
def test_verdict_is_present_exactly_for_a_valid_timely_present(
    answer: tuple[int, str, bytes, bool],
) -> None:
    http, ctype, raw, timely_present = answer
    assert (_pure_verdict(http, ctype, raw) is Reason.PRESENT) == timely_present


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(answer=operator_answers())
async def test_messenger_identifies_only_after_a_valid_timely_present(
    tmp_path: Path, answer: tuple[int, str, bytes, bool]
) -> None:
    http, ctype, raw, timely_present = answer
    fake = FakeOperator()
    fake.create = [web.Response(status=http, body=raw, content_type=ctype)]
    fake.codes = [
        lambda sent: web.json_response(code_body(sent["request_id"], sent["code"]), status=201)
    ]
    server = TestServer(fake.app())
    await server.start_server()
    db = tmp_path / f"m-{uuid.uuid4().hex}.db"  # one test directory for every example
    try:
        messenger = Messenger(
            str(server.make_url("/")), "key", db_path=db, retry=FakeTime().policy(attempts=1)
        )
        async with messenger:
            outcome = await messenger.identify("user", NUMBER)
            assert outcome.identified == timely_present
            assert await messenger.can_send("user") == timely_present
            assert (outcome.code is not None) == timely_present
        registered = fake.posted("identification-codes")
        assert len(registered) == (1 if timely_present else 0)
    finally:
        await server.close()
