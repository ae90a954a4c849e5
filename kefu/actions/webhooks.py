"""Writes on webhooks (admin): where ticket events are delivered."""

from __future__ import annotations

import secrets
from collections.abc import Sequence

from sqlalchemy.orm import Session

from kefu.domain.access import Actor
from kefu.domain.errors import NotFound, PermissionDenied, ValidationFailed
from kefu.events import WEBHOOK_EVENTS
from kefu.models import Webhook


def do_create_webhook(
    session: Session, actor: Actor, *, url: str, events: Sequence[str]
) -> Webhook:
    if not actor.is_admin:
        raise PermissionDenied("admins only")
    unknown = set(events) - WEBHOOK_EVENTS
    if unknown:
        raise ValidationFailed("unknown event", field="events", value=sorted(unknown)[0][:64])
    hook = Webhook(url=url, secret=secrets.token_urlsafe(32), events=sorted(set(events)))
    session.add(hook)
    session.flush()
    return hook


def do_delete_webhook(session: Session, actor: Actor, webhook_id: int) -> None:
    if not actor.is_admin:
        raise PermissionDenied("admins only")
    hook = session.get(Webhook, webhook_id)
    if hook is None:
        raise NotFound("webhook not found")
    session.delete(hook)
    session.flush()
