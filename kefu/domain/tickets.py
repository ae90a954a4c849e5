"""Ticket rules: kinds, statuses and their one state machine, priorities, numbers.

The state machine is the only place that decides whether a status change is legal;
``actions.tickets.do_change_status`` asks it and records what it answers.
See docs/subsystems/tickets.md.
"""

from __future__ import annotations

import re
import secrets
from enum import StrEnum


class TicketKind(StrEnum):
    QUESTION = "question"
    INCIDENT = "incident"
    COMPLAINT = "complaint"
    ACCOUNT_SECURITY = "account_security"


class TicketStatus(StrEnum):
    NEW = "new"
    OPEN = "open"
    PENDING = "pending"  # waiting on the contact; pauses the SLA clock
    ON_HOLD = "on_hold"  # waiting on a third party; pauses the SLA clock
    SOLVED = "solved"
    CLOSED = "closed"  # terminal: a new message on a closed ticket opens a follow-up


class Priority(StrEnum):
    URGENT = "urgent"
    HIGH = "high"
    NORMAL = "normal"
    LOW = "low"


class Channel(StrEnum):
    CHAT = "chat"
    EMAIL = "email"
    PHONE = "phone"
    SOCIAL = "social"
    WEB = "web"
    API = "api"


PRIORITY_RANK: dict[Priority, int] = {
    Priority.URGENT: 0,
    Priority.HIGH: 1,
    Priority.NORMAL: 2,
    Priority.LOW: 3,
}

_TRANSITIONS: dict[TicketStatus, frozenset[TicketStatus]] = {
    TicketStatus.NEW: frozenset(
        {TicketStatus.OPEN, TicketStatus.PENDING, TicketStatus.ON_HOLD, TicketStatus.SOLVED}
    ),
    TicketStatus.OPEN: frozenset({TicketStatus.PENDING, TicketStatus.ON_HOLD, TicketStatus.SOLVED}),
    TicketStatus.PENDING: frozenset({TicketStatus.OPEN, TicketStatus.ON_HOLD, TicketStatus.SOLVED}),
    TicketStatus.ON_HOLD: frozenset({TicketStatus.OPEN, TicketStatus.PENDING, TicketStatus.SOLVED}),
    TicketStatus.SOLVED: frozenset({TicketStatus.OPEN, TicketStatus.CLOSED}),
    TicketStatus.CLOSED: frozenset(),
}

SLA_PAUSED = frozenset({TicketStatus.PENDING, TicketStatus.ON_HOLD})
UNRESOLVED = frozenset(
    {TicketStatus.NEW, TicketStatus.OPEN, TicketStatus.PENDING, TicketStatus.ON_HOLD}
)


def allowed_transitions(status: TicketStatus) -> frozenset[TicketStatus]:
    return _TRANSITIONS[status]


def can_transition(current: TicketStatus, target: TicketStatus) -> bool:
    return target in _TRANSITIONS[current]


def status_after_contact_message(current: TicketStatus) -> TicketStatus:
    """A contact writing on a ticket wakes it: pending/solved go back to open.

    On hold stays on hold (we still wait on the third party); closed stays closed
    and the caller opens a follow-up ticket instead.
    """
    if current in (TicketStatus.PENDING, TicketStatus.SOLVED):
        return TicketStatus.OPEN
    return current


def status_after_agent_reply(current: TicketStatus) -> TicketStatus:
    """An agent's public reply on a new ticket opens it; otherwise nothing changes."""
    if current is TicketStatus.NEW:
        return TicketStatus.OPEN
    return current


def effective_priority(kind: TicketKind, requested: Priority | None) -> Priority:
    """Account-security tickets are always urgent: money can leave the account any minute."""
    if kind is TicketKind.ACCOUNT_SECURITY:
        return Priority.URGENT
    if requested is not None:
        return requested
    if kind is TicketKind.COMPLAINT:
        return Priority.HIGH
    return Priority.NORMAL


def check_priority_allowed(kind: TicketKind, priority: Priority) -> bool:
    """Whether ``priority`` may be set on a ticket of ``kind``."""
    return not (kind is TicketKind.ACCOUNT_SECURITY and priority is not Priority.URGENT)


# Ticket numbers: "K" and eight digits, the last a Damm check digit. Read out on the
# phone, a single wrong or swapped digit is caught before anyone looks the ticket up.
NUMBER_PREFIX = "K"
NUMBER_RE = re.compile(r"^[Kk]\s?(\d{8})$")
SUBJECT_NUMBER_RE = re.compile(r"\[#K(\d{8})\]")

_DAMM = (
    (0, 3, 1, 7, 5, 9, 8, 6, 4, 2),
    (7, 0, 9, 2, 1, 5, 4, 8, 6, 3),
    (4, 2, 0, 6, 8, 7, 1, 3, 5, 9),
    (1, 7, 5, 0, 9, 8, 3, 4, 2, 6),
    (6, 1, 2, 3, 0, 4, 5, 9, 7, 8),
    (3, 6, 7, 4, 2, 0, 9, 5, 8, 1),
    (5, 8, 6, 9, 7, 2, 0, 1, 3, 4),
    (8, 9, 4, 5, 3, 6, 2, 0, 1, 7),
    (9, 4, 3, 8, 6, 1, 7, 2, 0, 5),
    (2, 5, 8, 1, 4, 3, 6, 7, 9, 0),
)


def damm_digit(digits: str) -> int:
    interim = 0
    for ch in digits:
        interim = _DAMM[interim][int(ch)]
    return interim


def generate_ticket_number() -> str:
    # The first digit is 1-9 so a number never starts with a zero that people drop.
    body = str(secrets.randbelow(9) + 1) + "".join(str(secrets.randbelow(10)) for _ in range(6))
    return f"{NUMBER_PREFIX}{body}{damm_digit(body)}"


def normalize_ticket_number(text: str) -> str | None:
    """Canonical form of a ticket number as typed or spoken, or None if it is not one."""
    match = NUMBER_RE.match(text.strip().replace("#", ""))
    if match is None:
        return None
    digits = match.group(1)
    if damm_digit(digits) != 0:
        return None
    return f"{NUMBER_PREFIX}{digits}"


def subject_tag(number: str) -> str:
    return f"[#{number}]"
