"""Writes on saved filters: an agent's own named inbox views.

See docs/subsystems/console.md.
"""

from __future__ import annotations

from urllib.parse import parse_qsl, urlencode

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from kefu.domain.access import Actor
from kefu.domain.errors import NotFound, PermissionDenied, ValidationFailed
from kefu.domain.tickets import Channel, Priority, TicketKind, TicketStatus
from kefu.models import SavedView
from kefu.queries.console import InboxView
from kefu.queries.tickets import SORTS

MAX_SAVED_VIEWS = 30
_CHOICES: dict[str, frozenset[str]] = {
    "status": frozenset(TicketStatus),
    "priority": frozenset(Priority),
    "channel": frozenset(Channel),
    "kind": frozenset(TicketKind),
    "sort": frozenset(SORTS),
}


def normalize_view_query(query: str) -> str:
    """The filter bar's query string, reduced to the filters it may hold, each checked:
    a saved filter never stores something the inbox would refuse later."""
    kept: dict[str, str] = {}
    for key, value in parse_qsl(query[:2000]):
        value = value.strip()
        if not value or key in kept:
            continue
        if key in _CHOICES:
            if value not in _CHOICES[key]:
                raise ValidationFailed("unknown filter value", field="query")
            kept[key] = value
        elif key == "tag":
            kept[key] = value[:64]
        elif key == "q":
            kept[key] = value[:200]
    return urlencode(kept)


def do_save_view(session: Session, actor: Actor, *, name: str, view: str, query: str) -> SavedView:
    """Save (or overwrite, by name) one of the agent's own filters."""
    if not actor.is_agent or actor.id is None:
        raise PermissionDenied("agents only")
    name = " ".join(name.split())
    if not 1 <= len(name) <= 80:
        raise ValidationFailed("a saved filter needs a name of at most 80 characters", field="name")
    try:
        inbox_view = InboxView(view)
    except ValueError:
        raise ValidationFailed("unknown view", field="view") from None
    clean = normalize_view_query(query)
    saved = session.scalar(
        select(SavedView).where(SavedView.agent_id == actor.id, SavedView.name == name)
    )
    if saved is None:
        count = session.scalar(
            select(func.count()).select_from(SavedView).where(SavedView.agent_id == actor.id)
        )
        if (count or 0) >= MAX_SAVED_VIEWS:
            raise ValidationFailed("too many saved filters", field="name")
        saved = SavedView(agent_id=actor.id, name=name, view=inbox_view.value, query=clean)
        session.add(saved)
    else:
        saved.view, saved.query = inbox_view.value, clean
    session.flush()
    return saved


def do_delete_view(session: Session, actor: Actor, view_id: int) -> None:
    saved = session.get(SavedView, view_id)
    # Someone else's saved filter is "not found", like a ticket one may not see.
    if saved is None or saved.agent_id != actor.id:
        raise NotFound("saved filter not found")
    session.delete(saved)
    session.flush()
