"""The ticket state machine, priority rules and ticket numbers."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kefu.domain.tickets import (
    SLA_PAUSED,
    Priority,
    TicketKind,
    TicketStatus,
    allowed_transitions,
    can_transition,
    check_priority_allowed,
    damm_digit,
    effective_priority,
    generate_ticket_number,
    normalize_ticket_number,
    status_after_agent_reply,
    status_after_contact_message,
    subject_tag,
)

STATUSES = list(TicketStatus)


def test_closed_is_terminal() -> None:
    assert allowed_transitions(TicketStatus.CLOSED) == frozenset()


def test_only_solved_tickets_close() -> None:
    for status in STATUSES:
        assert can_transition(status, TicketStatus.CLOSED) == (status is TicketStatus.SOLVED)


def test_nothing_goes_back_to_new() -> None:
    assert not any(can_transition(s, TicketStatus.NEW) for s in STATUSES)


def test_no_self_transitions() -> None:
    assert not any(can_transition(s, s) for s in STATUSES)


def test_sla_pauses_while_waiting() -> None:
    assert {TicketStatus.PENDING, TicketStatus.ON_HOLD} == SLA_PAUSED


@given(st.lists(st.tuples(st.sampled_from(STATUSES), st.sampled_from(["agent", "contact", "set"]))))
def test_no_sequence_reaches_an_invalid_state(steps: list[tuple[TicketStatus, str]]) -> None:
    """Whatever happens to a ticket, it is always in a known status, a closed ticket
    never reopens, and a solved ticket only leaves to open or closed."""
    status = TicketStatus.NEW
    was_closed = False
    for target, how in steps:
        before = status
        if how == "agent":
            status = status_after_agent_reply(status)
        elif how == "contact":
            status = status_after_contact_message(status)
        elif can_transition(status, target):
            status = target
        assert status in STATUSES
        if was_closed:
            assert status is TicketStatus.CLOSED
        if before is TicketStatus.SOLVED and status is not before:
            assert status in (TicketStatus.OPEN, TicketStatus.CLOSED)
        if before is not status:
            assert status is not TicketStatus.NEW
        was_closed = status is TicketStatus.CLOSED


def test_contact_message_wakes_pending_and_solved() -> None:
    assert status_after_contact_message(TicketStatus.PENDING) is TicketStatus.OPEN
    assert status_after_contact_message(TicketStatus.SOLVED) is TicketStatus.OPEN
    assert status_after_contact_message(TicketStatus.ON_HOLD) is TicketStatus.ON_HOLD
    assert status_after_contact_message(TicketStatus.CLOSED) is TicketStatus.CLOSED
    assert status_after_contact_message(TicketStatus.NEW) is TicketStatus.NEW


def test_agent_reply_opens_new_ticket_only() -> None:
    assert status_after_agent_reply(TicketStatus.NEW) is TicketStatus.OPEN
    for s in STATUSES[1:]:
        assert status_after_agent_reply(s) is s


@pytest.mark.parametrize("requested", [None, *Priority])
def test_account_security_is_always_urgent(requested: Priority | None) -> None:
    assert effective_priority(TicketKind.ACCOUNT_SECURITY, requested) is Priority.URGENT
    assert check_priority_allowed(TicketKind.ACCOUNT_SECURITY, Priority.URGENT)
    if requested is not None and requested is not Priority.URGENT:
        assert not check_priority_allowed(TicketKind.ACCOUNT_SECURITY, requested)


def test_default_priorities() -> None:
    assert effective_priority(TicketKind.QUESTION, None) is Priority.NORMAL
    assert effective_priority(TicketKind.COMPLAINT, None) is Priority.HIGH
    assert effective_priority(TicketKind.QUESTION, Priority.LOW) is Priority.LOW
    assert check_priority_allowed(TicketKind.QUESTION, Priority.LOW)


def test_ticket_numbers_are_well_formed_and_self_checking() -> None:
    numbers = {generate_ticket_number() for _ in range(2000)}
    assert len(numbers) > 1990  # random, not sequential
    for number in numbers:
        assert number.startswith("K") and len(number) == 9
        assert number[1] != "0"
        assert damm_digit(number[1:]) == 0
        assert normalize_ticket_number(number) == number
        assert subject_tag(number) == f"[#{number}]"


def test_normalize_accepts_spoken_forms_and_catches_typos() -> None:
    number = generate_ticket_number()
    digits = number[1:]
    assert normalize_ticket_number(f" k{digits} ") == number
    assert normalize_ticket_number(f"#{number}") == number
    assert normalize_ticket_number(f"K {digits}") == number
    # Every single-digit error is caught by the Damm check digit …
    for i in range(8):
        for d in "0123456789":
            if d != digits[i]:
                wrong = digits[:i] + d + digits[i + 1 :]
                assert normalize_ticket_number("K" + wrong) is None
    # … and so is every swap of two adjacent different digits.
    for i in range(7):
        if digits[i] != digits[i + 1]:
            swapped = digits[:i] + digits[i + 1] + digits[i] + digits[i + 2 :]
            assert normalize_ticket_number("K" + swapped) is None


@pytest.mark.parametrize("text", ["", "K123", "K1234567890", "X12345678", "K1234abcd", "'; DROP"])
def test_normalize_rejects_garbage(text: str) -> None:
    assert normalize_ticket_number(text) is None
