"""How a call's duration is typed and shown (domain/calls.py)."""

from __future__ import annotations

import pytest

from kefu.domain.calls import MAX_CALL_SECONDS, format_duration, parse_duration
from kefu.domain.errors import ValidationFailed


@pytest.mark.parametrize(
    ("typed", "seconds"),
    [
        ("", 0),
        ("  ", 0),
        ("566", 566),
        ("9:26", 566),
        ("9：26", 566),  # a full-width colon from a Chinese keyboard
        ("0:05", 5),
        ("120:00", 7200),
        ("1:02:03", 3723),
        ("24:00:00", MAX_CALL_SECONDS),
    ],
)
def test_durations_as_agents_type_them(typed: str, seconds: int) -> None:
    assert parse_duration(typed) == seconds


@pytest.mark.parametrize(
    "typed", ["abc", "-5", "9:60", "9:5", "1:2:3:4", "24:00:01", "90000", "１２", "9分26秒"]
)
def test_other_durations_are_refused(typed: str) -> None:
    with pytest.raises(ValidationFailed) as raised:
        parse_duration(typed)
    assert raised.value.params.get("field") == "duration"


@pytest.mark.parametrize(
    ("seconds", "shown"), [(0, "0:00"), (5, "0:05"), (566, "9:26"), (3723, "1:02:03"), (-3, "0:00")]
)
def test_durations_are_shown_as_a_clock(seconds: int, shown: str) -> None:
    assert format_duration(seconds) == shown
