"""Recording what happened: an Event row (history and audit), a realtime event on
commit, and an outbox job per subscribed webhook, all from one call."""

from __future__ import annotations

from typing import Any

from sqlalchemy import event as sa_event
from sqlalchemy import select
from sqlalchemy.orm import Session

from kefu.actions.outbox import do_enqueue_job
from kefu.domain.access import Actor
from kefu.events import WEBHOOK_EVENTS, RealtimeEvent, publish_on_commit
from kefu.models import Event, Ticket, Webhook

WEBHOOK_JOB = "webhook.deliver"


def record_event(
    session: Session,
    actor: Actor,
    kind: str,
    *,
    ticket: Ticket | None = None,
    data: dict[str, Any] | None = None,
    realtime: dict[str, Any] | None = None,
    is_internal: bool = False,
) -> Event:
    """Write the history row and queue what follows from it.

    ``realtime`` is the payload sent to consoles and sockets (defaults to ``data``);
    ``is_internal`` keeps it away from the contact's topics.
    """
    data = data or {}
    row = Event(
        ticket_id=ticket.id if ticket is not None else None,
        kind=kind,
        actor_type=actor.kind.value,
        actor_id=actor.id,
        data=data,
    )
    session.add(row)
    payload = realtime if realtime is not None else data
    if ticket is not None:
        payload = {"ticket": ticket.number, **payload}
        publish_on_commit(
            session,
            RealtimeEvent(
                type=kind,
                ticket_id=ticket.id,
                team_id=ticket.team_id,
                assignee_id=ticket.assignee_id,
                contact_id=ticket.contact_id,
                is_internal=is_internal,
                data=payload,
            ),
        )
    else:
        publish_on_commit(session, RealtimeEvent(type=kind, is_internal=True, data=payload))
    if kind in WEBHOOK_EVENTS:
        enqueue_webhooks(session, kind, payload, is_internal=is_internal)
    return row


_HOOKS_KEY = "kefu.active_webhooks"
# Built once: it runs in nearly every write transaction (an inbound mail, an API call).
_ACTIVE_HOOKS = select(Webhook.id, Webhook.events).where(Webhook.is_active.is_(True))


def _active_webhooks(session: Session) -> list[tuple[int, frozenset[str]]]:
    """Active webhooks, read once per transaction (a request records several events)."""
    cached: list[tuple[int, frozenset[str]]] | None = session.info.get(_HOOKS_KEY)
    if cached is None:
        with session.no_autoflush:
            rows = session.execute(_ACTIVE_HOOKS).all()
        cached = [(hook_id, frozenset(events or ())) for hook_id, events in rows]
        session.info[_HOOKS_KEY] = cached
    return cached


@sa_event.listens_for(Session, "after_transaction_end")
def _forget_webhooks(session: Session, transaction: Any) -> None:
    # Only when the outermost transaction ends: every flush opens and ends an inner
    # one, and forgetting there read the webhooks again for each event recorded.
    if transaction.parent is None:
        session.info.pop(_HOOKS_KEY, None)


def enqueue_webhooks(
    session: Session, kind: str, payload: dict[str, Any], *, is_internal: bool
) -> None:
    """An outbox job per active webhook subscribed to ``kind`` (``record_event`` calls
    it; so does a batched write that inserts its Event rows itself)."""
    for hook_id, hook_events in _active_webhooks(session):
        if hook_events and kind not in hook_events:
            continue
        do_enqueue_job(
            session,
            WEBHOOK_JOB,
            {"webhook_id": hook_id, "event": kind, "internal": is_internal, "data": payload},
        )
