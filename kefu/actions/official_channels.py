"""Writes on the official-channel registry (admin) and the verification lookup log.

See docs/security.md.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from kefu import events
from kefu.actions.guard import screen_inbound
from kefu.actions.history import record_event
from kefu.domain.access import Actor
from kefu.domain.errors import Conflict, NotFound, PermissionDenied, ValidationFailed
from kefu.domain.verify import ChannelKind, VerifyResult, normalize_entry
from kefu.models import OfficialChannel, VerifyLookup


def do_add_official_channel(
    session: Session, actor: Actor, *, kind: ChannelKind, value: str, label: str = ""
) -> OfficialChannel:
    if not actor.is_admin and actor.id is not None:
        raise PermissionDenied("admins only")
    normalized = normalize_entry(kind, value)
    if normalized is None:
        raise ValidationFailed("not a valid value for this kind of channel", field="value")
    exists = session.scalar(
        select(OfficialChannel.id).where(
            OfficialChannel.kind == kind, OfficialChannel.value == normalized
        )
    )
    if exists is not None:
        raise Conflict("this channel is already registered", field="value")
    row = OfficialChannel(kind=kind, value=normalized, label=" ".join(label.split())[:200])
    session.add(row)
    session.flush()
    record_event(
        session,
        actor,
        events.OFFICIAL_CHANNEL_ADDED,
        data={"id": row.id, "kind": kind.value, "value": normalized},
    )
    return row


def do_remove_official_channel(session: Session, actor: Actor, channel_id: int) -> None:
    if not actor.is_admin and actor.id is not None:
        raise PermissionDenied("admins only")
    row = session.get(OfficialChannel, channel_id)
    if row is None:
        raise NotFound("official channel not found")
    record_event(
        session,
        actor,
        events.OFFICIAL_CHANNEL_REMOVED,
        data={"id": row.id, "kind": row.kind.value, "value": row.value},
    )
    session.delete(row)
    session.flush()


def do_record_verify_lookup(session: Session, query: str, result: VerifyResult) -> None:
    """Count a lookup for abuse analytics. What the customer pasted is kept (admins see
    the fakes being checked), but screened first: people paste a whole scam message,
    seed phrase and all, into the check."""
    session.add(
        VerifyLookup(
            query=screen_inbound(query).text[:500],
            kind=result.kind.value if result.kind is not None else None,
            verdict=result.verdict,
            matched=result.matched,
        )
    )
