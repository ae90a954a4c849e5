"""Writes on inboxes: the configured entry points (a mailbox address, a chat widget, a
phone line) and the team their tickets go to. Admins only, audited.

See docs/subsystems/console.md.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from kefu import events
from kefu.actions.history import record_event
from kefu.domain.access import Actor
from kefu.domain.errors import Conflict, NotFound, PermissionDenied, ValidationFailed
from kefu.domain.tickets import Channel
from kefu.models import Inbox, Team


def _require_admin(actor: Actor) -> None:
    if not actor.is_admin and actor.id is not None:
        raise PermissionDenied("admins only")


def do_create_inbox(
    session: Session,
    actor: Actor,
    *,
    name: str,
    channel: Channel,
    address: str | None = None,
    team_id: int | None = None,
    config: dict[str, Any] | None = None,
) -> Inbox:
    _require_admin(actor)
    name = " ".join(name.split())
    if not name or len(name) > 200:
        raise ValidationFailed("an inbox needs a name of at most 200 characters", field="name")
    address = (address or "").strip().lower() or None
    if address is not None:
        if len(address) > 320 or (channel is Channel.EMAIL and "@" not in address):
            raise ValidationFailed("not a valid address for this channel", field="address")
        if session.scalar(select(Inbox.id).where(Inbox.address == address)) is not None:
            raise Conflict("an inbox with this address exists", field="address")
    if team_id is not None and session.get(Team, team_id) is None:
        raise ValidationFailed("unknown team", field="team_id")
    inbox = Inbox(name=name, channel=channel, address=address, team_id=team_id, config=config or {})
    session.add(inbox)
    session.flush()
    record_event(
        session,
        actor,
        events.INBOX_SAVED,
        data={"inbox_id": inbox.id, "channel": channel.value, "address": address},
    )
    return inbox


def do_set_inbox_active(session: Session, actor: Actor, inbox_id: int, *, active: bool) -> Inbox:
    _require_admin(actor)
    inbox = session.get(Inbox, inbox_id)
    if inbox is None:
        raise NotFound("inbox not found")
    if inbox.is_active != active:
        inbox.is_active = active
        session.flush()
        record_event(
            session, actor, events.INBOX_SAVED, data={"inbox_id": inbox.id, "active": active}
        )
    return inbox
