"""The SMS gateway's pure decisions: segments, the throttle, plans, delivery, codes."""

from __future__ import annotations

import math
from datetime import timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from operator_sim.domain.sms import (
    Plan,
    Throttle,
    count_segments,
    delivery_outcome,
    find_code,
    next_step,
    parse_throttle,
    plan_message,
    retry_after_ms,
    retry_after_seconds,
)
from operator_sim.wire import RuleSpec

GSM_BASIC = (
    "@£$¥èéùìòÇØøÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?¡ABCXYZÄÖÑÜ§¿abcxyzäöñüà\n\r"
)
GSM_EXTENSION = "^{}\\[~]|€\x0c"


def test_an_extension_character_is_never_split_across_parts() -> None:
    # 152 plain septets, then a two-septet character: it starts the second part.
    assert count_segments("a" * 152 + "€" + "a" * 7).count == 2
    assert count_segments("a" * 152 + "€" + "a" * 152).count == 3
    assert count_segments("a" * 151 + "€" + "a" * 153).count == 2


def test_a_surrogate_pair_is_never_split_across_parts() -> None:
    assert count_segments("😀" * 35).count == 1  # 70 UTF-16 units
    assert count_segments("😀" * 36).count == 2
    assert count_segments("ж" * 66 + "😀" + "ж" * 66).count == 3


def test_an_escape_character_or_a_lowercase_c_cedilla_is_ucs2() -> None:
    assert count_segments("a\x1bb").encoding == "ucs2"
    assert count_segments("ç").encoding == "ucs2"
    assert count_segments("Ç").encoding == "gsm7"


@given(st.text(alphabet=GSM_BASIC + GSM_EXTENSION, min_size=1, max_size=1600))
def test_gsm_segments_hold_every_septet_and_no_more_parts_than_needed(text: str) -> None:
    septets = sum(2 if c in GSM_EXTENSION else 1 for c in text)
    counted = count_segments(text)
    assert counted.encoding == "gsm7"
    if septets <= 160:
        assert counted.count == 1
    else:
        # Enough parts for every septet; at most one more for characters pushed over.
        assert math.ceil(septets / 153) <= counted.count <= math.ceil(septets / 152)


@given(st.text(alphabet="жщэЖЩЭ", min_size=1, max_size=1600))
def test_ucs2_segments_are_70_or_67_per_part(text: str) -> None:
    counted = count_segments(text)
    expected = 1 if len(text) <= 70 else math.ceil(len(text) / 67)
    assert (counted.encoding, counted.count) == ("ucs2", expected)


@pytest.mark.parametrize(
    ("spec", "throttle"),
    [
        ("5/PT10M", Throttle(5, 600_000)),
        ("1/60", Throttle(1, 60_000)),
        (" 3 / PT1H ", Throttle(3, 3_600_000)),
        ("0", None),
    ],
)
def test_throttles_parse(spec: str, throttle: Throttle | None) -> None:
    assert parse_throttle(spec) == throttle


@pytest.mark.parametrize("spec", ["", "5", "5/", "/PT1M", "0/PT1M", "5/PT0S", "5/soon", "x/PT1M"])
def test_bad_throttles_are_refused(spec: str) -> None:
    with pytest.raises(ValueError, match="sms throttle"):
        parse_throttle(spec)


def test_retry_after_is_when_the_oldest_message_leaves_the_window() -> None:
    throttle = Throttle(5, 600_000)
    assert retry_after_ms(throttle, oldest_in_window_ms=1_000, now_ms=61_000) == 540_000
    assert retry_after_seconds(540_000, scale=None) == 540  # manual: simulated seconds
    assert retry_after_seconds(540_000, scale=60.0) == 9  # scaled: real seconds
    assert retry_after_seconds(1, scale=1.0) == 1  # never 0


def _rule(action: dict[str, object]) -> RuleSpec:
    return RuleSpec.model_validate({"id": "r", "match": {"endpoint": "sms.send"}, "action": action})


def test_rules_plan_the_message() -> None:
    assert plan_message(None) == Plan(None, 3000)
    assert plan_message(_rule({"type": "sms_unreachable"})).behaviour == "unreachable"
    assert plan_message(_rule({"type": "sms_report_lost"})).behaviour == "report_lost"
    assert plan_message(_rule({"type": "sms_blocked"})).behaviour == "blocked"
    assert plan_message(_rule({"type": "sms_delay", "by": "PT2M"})) == Plan(None, 120_000)
    assert plan_message(_rule({"type": "delay", "seconds": 1})) == Plan(None, 3000)


def test_after_sent_a_message_is_delivered_or_expires() -> None:
    minute = int(timedelta(minutes=1).total_seconds() * 1000)
    assert next_step(Plan(None, 3000), sent_at_ms=0, expires_at_ms=minute) == ("deliver", 3000)
    assert next_step(Plan(None, minute), sent_at_ms=0, expires_at_ms=minute) == ("expire", minute)
    assert next_step(Plan("unreachable", 3000), sent_at_ms=0, expires_at_ms=minute) == (
        "expire",
        minute,
    )
    assert next_step(Plan("report_lost", 3000), sent_at_ms=0, expires_at_ms=minute) == (
        "deliver",
        3000,
    )


def test_delivery_follows_the_subscriber_database() -> None:
    assert delivery_outcome(has_record=True, active=True).delivered
    assert delivery_outcome(has_record=False, active=False).reason == "unknown_subscriber"
    assert delivery_outcome(has_record=True, active=False).reason == "contract_terminated"


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("Your code is 482913.", "482913"),
        ("1234", "1234"),
        ("code:12345678!", "12345678"),
        ("123 is short, 123456789 is long", None),
        ("Call +79001234567", None),
        ("٤٥٦٧٨٩ are not ASCII digits", None),
        ("first 1111 then 2222", "1111"),
    ],
)
def test_a_code_is_four_to_eight_digits_standing_alone(text: str, code: str | None) -> None:
    assert find_code(text) == code
