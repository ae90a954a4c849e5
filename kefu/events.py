"""Realtime events: names, payloads, who receives them, and publishing on commit.

Actions call ``publish_on_commit``; nothing is sent until the transaction commits, and
a rollback drops what was queued. ``audience`` is the single place that decides which
topics an event reaches: an internal note never reaches a contact's topic.
See docs/subsystems/realtime.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
from sqlalchemy import event as sa_event
from sqlalchemy.orm import Session

from kefu.infra.pubsub.base import PubSub

log = logging.getLogger(__name__)

# The event catalogue. Each name is "<noun>.<past participle>".
TICKET_CREATED = "ticket.created"
TICKET_UPDATED = "ticket.updated"
TICKET_ASSIGNED = "ticket.assigned"
TICKET_STATUS_CHANGED = "ticket.status_changed"
TICKET_PRIORITY_CHANGED = "ticket.priority_changed"
TICKET_TAGGED = "ticket.tagged"
TICKET_MERGED = "ticket.merged"
MESSAGE_CREATED = "message.created"
CONTACT_CREATED = "contact.created"
CONTACT_UPDATED = "contact.updated"
AGENT_CREATED = "agent.created"
AGENT_UPDATED = "agent.updated"
AGENT_LOGGED_IN = "agent.logged_in"
AGENT_LOGIN_FAILED = "agent.login_failed"
AGENT_LOCKED = "agent.locked"
TOKEN_CREATED = "token.created"  # noqa: S105  # an event name
TOKEN_REVOKED = "token.revoked"  # noqa: S105  # an event name
ATTACHMENT_UPLOADED = "attachment.uploaded"
SECRET_MASKED = "secret.masked"  # noqa: S105  # an event name
ARTICLE_SAVED = "article.saved"
SENSITIVE_REVEALED = "sensitive.revealed"
OFFICIAL_CHANNEL_ADDED = "official_channel.added"
OFFICIAL_CHANNEL_REMOVED = "official_channel.removed"
CHAT_STATE_CHANGED = "chat.state_changed"
AGENT_PRESENCE_CHANGED = "agent.presence_changed"
TICKET_RATED = "ticket.rated"
TRANSCRIPT_REQUESTED = "transcript.requested"
MACRO_SAVED = "macro.saved"
MACRO_DELETED = "macro.deleted"
INBOX_SAVED = "inbox.saved"

ALL_EVENTS = frozenset(
    {
        TICKET_CREATED,
        TICKET_UPDATED,
        TICKET_ASSIGNED,
        TICKET_STATUS_CHANGED,
        TICKET_PRIORITY_CHANGED,
        TICKET_TAGGED,
        TICKET_MERGED,
        MESSAGE_CREATED,
        CONTACT_CREATED,
        CONTACT_UPDATED,
        AGENT_CREATED,
        AGENT_UPDATED,
        AGENT_LOGGED_IN,
        AGENT_LOGIN_FAILED,
        AGENT_LOCKED,
        TOKEN_CREATED,
        TOKEN_REVOKED,
        ATTACHMENT_UPLOADED,
        SECRET_MASKED,
        OFFICIAL_CHANNEL_ADDED,
        OFFICIAL_CHANNEL_REMOVED,
        ARTICLE_SAVED,
        SENSITIVE_REVEALED,
        CHAT_STATE_CHANGED,
        AGENT_PRESENCE_CHANGED,
        TICKET_RATED,
        TRANSCRIPT_REQUESTED,
        MACRO_SAVED,
        MACRO_DELETED,
        INBOX_SAVED,
    }
)
# Events that concern a ticket and go out to webhooks.
WEBHOOK_EVENTS = frozenset(
    {
        TICKET_CREATED,
        TICKET_ASSIGNED,
        TICKET_STATUS_CHANGED,
        TICKET_PRIORITY_CHANGED,
        TICKET_TAGGED,
        TICKET_MERGED,
        MESSAGE_CREATED,
        TICKET_RATED,
    }
)


# Events that can move a waiting chat's place in the queue.
QUEUE_EVENTS = frozenset({CHAT_STATE_CHANGED, AGENT_PRESENCE_CHANGED})
QUEUE_TOPIC = "chatqueue"


@dataclass(frozen=True, slots=True)
class RealtimeEvent:
    type: str
    ticket_id: int | None = None
    team_id: int | None = None
    assignee_id: int | None = None
    contact_id: int | None = None
    is_internal: bool = False
    data: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> bytes:
        return orjson.dumps({"type": self.type, "data": self.data})


def audience(event: RealtimeEvent) -> list[str]:
    """The topics an event is published to.

    Agent-side topics: the ticket's agent view, its team (or the general queue), its
    assignee, and ``agents`` for admins' consoles. Contact-side topics only when the
    event is not internal.
    """
    topics: list[str] = ["agents"]
    if event.type in QUEUE_EVENTS:
        # Waiting contacts recompute their place; the event itself is not sent on.
        topics.append(QUEUE_TOPIC)
    if event.ticket_id is not None:
        topics.append(f"ticket:{event.ticket_id}:agents")
        topics.append(f"team:{event.team_id}" if event.team_id is not None else "team:none")
        if event.assignee_id is not None:
            topics.append(f"agent:{event.assignee_id}")
    if event.is_internal:
        return topics
    if event.contact_id is not None:
        if event.ticket_id is not None:
            topics.append(f"ticket:{event.ticket_id}:contact")
        topics.append(f"contact:{event.contact_id}")
    return topics


_PENDING_KEY = "kefu.pending_events"
PUBLISHER_KEY = "kefu.publisher"

Publisher = Callable[[list[RealtimeEvent]], None]


def publish_on_commit(session: Session, event: RealtimeEvent) -> None:
    session.info.setdefault(_PENDING_KEY, []).append(event)


def pending_count(session: Session) -> int:
    return len(session.info.get(_PENDING_KEY, ()))


def discard_pending_since(session: Session, mark: int) -> None:
    """Forget what was queued after ``mark``: a savepoint that queued it rolled back."""
    pending = session.info.get(_PENDING_KEY)
    if pending is not None:
        del pending[mark:]


def pending_events(session: Session) -> list[RealtimeEvent]:
    """What this session will publish on commit (tests use it to inspect actions)."""
    return list(session.info.get(_PENDING_KEY, []))


@sa_event.listens_for(Session, "after_commit")
def _after_commit(session: Session) -> None:
    if session.in_nested_transaction():
        # SQLAlchemy also calls this when a savepoint is released: nothing is stored
        # yet, and the outer transaction may still roll back.
        return
    events: list[RealtimeEvent] = session.info.pop(_PENDING_KEY, [])
    publisher: Publisher | None = session.info.get(PUBLISHER_KEY)
    if events and publisher is not None:
        publisher(events)


@sa_event.listens_for(Session, "after_soft_rollback")
def _after_rollback(session: Session, _previous: Any) -> None:
    if not session.in_transaction():
        session.info.pop(_PENDING_KEY, None)


class EventDispatcher:
    """Hands committed events from worker threads to the event loop's pub/sub.

    Actions run in threads (sync core); ``publish`` is thread-safe and never blocks.
    """

    def __init__(self, pubsub: PubSub) -> None:
        self.pubsub = pubsub
        self._loop: asyncio.AbstractEventLoop | None = None
        self._queue: asyncio.Queue[list[RealtimeEvent]] | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._queue = asyncio.Queue()
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self._queue is not None:
            await self._drain()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def publish(self, events: list[RealtimeEvent]) -> None:
        loop, queue = self._loop, self._queue
        if loop is None or queue is None or loop.is_closed():
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            queue.put_nowait(events)
        else:
            loop.call_soon_threadsafe(queue.put_nowait, events)

    async def _drain(self) -> None:
        assert self._queue is not None  # noqa: S101  # start() ran
        while not self._queue.empty():
            await self._send(self._queue.get_nowait())

    async def _run(self) -> None:
        assert self._queue is not None  # noqa: S101  # start() ran
        while True:
            events = await self._queue.get()
            try:
                await self._send(events)
            except Exception:  # a broken pub/sub must not stop later events
                log.exception("publishing events failed")

    async def _send(self, events: list[RealtimeEvent]) -> None:
        for ev in events:
            data = ev.to_json()
            for topic in audience(ev):
                await self.pubsub.publish(topic, data)
