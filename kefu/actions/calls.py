"""Logging a phone call on a ticket (issue 7: "one timeline across channels … calls").

A call is a Message through the one write path (``do_add_message``): channel
``phone``, the agent's summary as the body (screened for secrets like every text, and
searchable), and the call's facts in ``meta`` (``{"kind": "call", "call": {…}}``). It
is internal: a summary is written for colleagues, not sent to the customer. See
docs/subsystems/console.md.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.orm import Session

from kefu.actions.contacts import normalize_phone
from kefu.actions.messages import NewMessage, do_add_message
from kefu.domain.access import Actor
from kefu.domain.calls import MAX_CALL_SECONDS, CallDirection, CallOutcome
from kefu.domain.errors import PermissionDenied, ValidationFailed
from kefu.domain.tickets import Channel
from kefu.models import Contact, Message, Ticket

CALL_KIND = "call"


@dataclass(frozen=True, slots=True)
class CallLog:
    direction: CallDirection
    outcome: CallOutcome
    summary: str
    duration_seconds: int = 0
    # The number called or calling; None: the contact's phone, if they have one.
    phone: str | None = None
    client_msg_id: str | None = None


def do_log_call(session: Session, actor: Actor, ticket: Ticket, call: CallLog) -> Message:
    """Store a call on ``ticket`` as an internal phone message; a resend with the same
    ``client_msg_id`` returns the stored one (``do_add_message``)."""
    # Calls are made and taken by agents; a contact or a channel has no say in the log.
    if not actor.is_agent:
        raise PermissionDenied("only agents log calls")
    if not 0 <= call.duration_seconds <= MAX_CALL_SECONDS:
        raise ValidationFailed("duration must be seconds or m:ss", field="duration")
    if not call.summary.strip():
        raise ValidationFailed("write a summary of the call", field="summary")
    phone = None
    if call.phone and call.phone.strip():
        phone = normalize_phone(call.phone)
    if phone is None and ticket.contact_id is not None:
        contact = session.get(Contact, ticket.contact_id)
        phone = contact.phone if contact is not None else None
    facts = {
        "direction": call.direction.value,
        "outcome": call.outcome.value,
        "duration_seconds": call.duration_seconds,
        # Stored as dialled, shown masked like every phone (guard.display_phone).
        "phone": phone,
    }
    return do_add_message(
        session,
        actor,
        ticket,
        NewMessage(
            body=call.summary,
            channel=Channel.PHONE,
            is_internal=True,
            client_msg_id=call.client_msg_id,
            meta={"kind": CALL_KIND, "call": facts},
        ),
    )
