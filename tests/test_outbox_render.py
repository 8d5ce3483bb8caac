"""Hand-assembled JSON on the hot path is byte for byte what the wire models render."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from operator_sim.clock import ms_to_datetime
from operator_sim.server.outbox import answered_body
from operator_sim.store.requests import StoredRequest
from operator_sim.wire import ID_PATTERN, IdentificationAnsweredEvent, format_ms, format_timestamp

_MS = st.integers(min_value=0, max_value=221_000_000_000_000)  # the clock stops before 9000


@st.composite
def stored_requests(draw: st.DrawFn) -> StoredRequest:
    received = draw(_MS)
    return StoredRequest(
        id="ir_" + draw(st.from_regex(r"[0-9A-HJKMNP-TV-Z]{26}", fullmatch=True)),
        messenger_id="demo",
        operator_id=draw(st.from_regex(ID_PATTERN, fullmatch=True)),
        msisdn=draw(st.from_regex(r"\+[1-9][0-9]{6,14}", fullmatch=True)),
        status=draw(st.sampled_from(["answered", "expired", "pending"])),
        result=draw(st.sampled_from([None, "present", "absent"])),
        received_at=received,
        due_at=received + 1_200_000,
        answered_at=draw(st.one_of(st.none(), _MS)),
        rule_id=None,
    )


@given(_MS)
def test_format_ms_is_format_timestamp_of_the_same_instant(ms: int) -> None:
    assert format_ms(ms) == format_timestamp(ms_to_datetime(ms))


@given(stored_requests())
def test_a_request_renders_as_its_wire_model(request: StoredRequest) -> None:
    assert request.to_json() == request.to_wire().model_dump_json()


@given(stored_requests(), _MS)
def test_the_answered_event_renders_as_its_wire_model(request: StoredRequest, at: int) -> None:
    event_id = "evt_01JABCDEFGHJKMNPQRSTVWXYZ0"
    body = answered_body(event_id, request.operator_id, at, request.to_json())
    model = IdentificationAnsweredEvent(
        id=event_id,
        type="identification.answered",
        operator_id=request.operator_id,
        occurred_at=ms_to_datetime(at),
        deliver_by=ms_to_datetime(at + 24 * 3600 * 1000),
        data=request.to_wire(),
    )
    assert body == model.model_dump_json()
    assert IdentificationAnsweredEvent.model_validate_json(body).model_dump() == model.model_dump()
