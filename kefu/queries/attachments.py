"""Attachment reads with the permission check: uploader, or whoever sees the ticket."""

from __future__ import annotations

from sqlalchemy.orm import Session

from kefu.domain import access
from kefu.domain.access import Actor, ActorKind
from kefu.domain.errors import NotFound
from kefu.models import Attachment, Message, Ticket


def access_attachment_by_id(session: Session, actor: Actor, attachment_id: int) -> Attachment:
    att = session.get(Attachment, attachment_id)
    if att is None:
        raise NotFound("attachment not found")
    # The uploader sees their own upload, even before it is on a message.
    if actor.kind is ActorKind.AGENT and att.uploaded_by_agent_id == actor.id:
        return att
    if actor.kind is ActorKind.CONTACT and att.uploaded_by_contact_id == actor.id:
        return att
    # Otherwise it must be on a message of a ticket the actor can see…
    if att.ticket_id is None or att.message_id is None:
        raise NotFound("attachment not found")
    ticket = session.get(Ticket, att.ticket_id)
    if ticket is None or not access.can_see_ticket(
        actor, team_id=ticket.team_id, assignee_id=ticket.assignee_id, contact_id=ticket.contact_id
    ):
        raise NotFound("attachment not found")
    # …and a file on an internal note is as internal as the note.
    message = session.get(Message, att.message_id)
    if message is None or not access.can_see_message(actor, is_internal=message.is_internal):
        raise NotFound("attachment not found")
    return att
