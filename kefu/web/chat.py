"""The live-chat socket, ``/api/v1/chat/ws``: contacts and agents, one protocol.

Frames are JSON objects with a ``type``; the protocol, its guarantees and its close
codes are in docs/chat-protocol.md. In short: every message is stored before it is
acknowledged; the server numbers messages per ticket; a resend with the same client
id is not stored twice; a client that reconnects says what it saw last and is sent
exactly what it missed. Deliveries go through pub/sub, so with Redis a contact on one
``kefu serve`` and an agent on another reach each other.

Writes from all sockets are batched: a single writer task takes what is waiting,
stores it in one transaction (one savepoint per item, so one bad item does not sink
the rest) in one worker thread, commits, then acknowledges. Under load this turns
hundreds of commits a second into a few dozen.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import logging
import sys
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import urlsplit

import orjson
from prometheus_client import Counter, Gauge
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from starlette.concurrency import run_in_threadpool
from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState

from kefu import events
from kefu.actions.chat import (
    CHAT_ATTACHMENT_TYPES,
    MAX_CHAT_ATTACHMENTS,
    ChatMessageIn,
    ChatMessageStored,
    ChatStart,
    RatingInput,
    do_accept_chat,
    do_add_chat_messages,
    do_end_chat,
    do_leave_message,
    do_rate_ticket,
    do_request_human,
    do_request_transcript,
    do_set_presence,
    do_start_chat,
    do_transfer_chat,
)
from kefu.actions.contacts import ContactData, do_create_contact
from kefu.actions.guard import display_email
from kefu.actions.messages import message_public
from kefu.domain.access import SYSTEM, Actor, ActorKind
from kefu.domain.chat import ChatState, ChatTopic, Presence
from kefu.domain.errors import KefuError, NotAuthenticated, RateLimited
from kefu.domain.exchange_fields import ExchangeFields
from kefu.events import discard_pending_since, pending_count
from kefu.infra.i18n import gettext_for
from kefu.infra.pubsub.base import PubSub, Subscription
from kefu.models import Attachment, Ticket
from kefu.queries.chat import live_chats, messages_after, queue_status
from kefu.queries.tickets import access_ticket_by_number
from kefu.web.deps import SESSION_COOKIE, AppState, principal_from_credentials

log = logging.getLogger(__name__)
T = TypeVar("T")

MAX_FRAME_CHARS = 16 * 1024
SEND_BUFFER_FRAMES = 512
HELLO_TIMEOUT_S = 10.0
# Per connection: a steady 10 frames a second with bursts of 40; typing counts too.
RATE_PER_S = 10.0
RATE_BURST = 40.0
# A client this far over the limit is flooding, not typing fast: it is disconnected.
FLOOD_STRIKES = 50
QUEUE_TOPIC = events.QUEUE_TOPIC
QUEUE_REFRESH_S = 1.0
SWITCH_INTERVAL_S = 0.0005

# Close codes (4000-4999 are the application's; see docs/chat-protocol.md).
CLOSE_NORMAL = 1000
CLOSE_POLICY = 1008  # flooding, or a frame too large
CLOSE_BAD_HELLO = 4001  # no hello, or a credential that does not check out
CLOSE_SLOW = 4008  # the client did not read its frames; the server cannot buffer more
# websockets' closing handshake gives a client that does not read 10 s to take the
# close frame, 10 s to answer a half-close and 10 s more after the close, then aborts
# the connection: about 30 s, well inside this.
CLOSE_SLOW_WAIT_S = 60.0

OPEN_SOCKETS = Gauge("kefu_chat_sockets", "Chat websockets open in this process")
SLOW_DROPS = Counter(
    "kefu_chat_slow_clients_dropped_total",
    "Chat sockets closed with 4008 because the client did not read its frames",
)


class _NoFrames(logging.Filter):
    """websockets logs every frame at DEBUG on uvicorn's logger ("< TEXT '{...}'"): what
    customers type, before kefu has masked a pasted seed phrase or code. Nothing
    unscreened is logged (issue 6), so frame records are dropped; the rest stay."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.msg not in ("< %s", "> %s")


logging.getLogger("uvicorn.error").addFilter(_NoFrames())


def _dumps(obj: dict[str, Any]) -> str:
    return orjson.dumps(obj).decode()


def sign_visitor(secret: str, contact_id: int) -> str:
    """A token an anonymous visitor keeps to come back to their chats."""
    body = f"v1.{contact_id}"
    mac = hmac.new(secret.encode(), body.encode(), hashlib.sha256).hexdigest()[:32]
    return f"{body}.{mac}"


def check_visitor(secret: str, token: str) -> int | None:
    parts = token.split(".")
    if len(parts) != 3 or parts[0] != "v1" or len(parts[1]) > 12:
        return None
    # ASCII digits only: str.isdigit() takes "²", which int() refuses.
    if not parts[1].isascii() or not parts[1].isdigit():
        return None
    expected = sign_visitor(secret, int(parts[1]))
    return int(parts[1]) if hmac.compare_digest(expected, token) else None


# What the writer is given: a chat message (batched by ``do_add_chat_messages``), or
# any other work, run as it is in a savepoint of its own.
Work = Callable[[Session], Any] | ChatMessageIn


class WriteBatcher:
    """Stores work from every socket in shared transactions, in one worker thread."""

    MAX_BATCH = 256

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self._sessions = sessions
        self._queue: asyncio.Queue[tuple[Work, asyncio.Future[Any]]] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self.batches = 0
        self.items = 0

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            # Finish what was submitted: a client may be waiting for its acknowledgement.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._queue.join(), timeout=10)
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def submit(self, work: Callable[[Session], T]) -> T:
        """Run ``work`` in a transaction; returns after the commit, or raises."""
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait((work, future))
        return await future

    async def submit_message(self, item: ChatMessageIn) -> ChatMessageStored:
        """Store a chat message; returns after the commit, or raises."""
        future: asyncio.Future[ChatMessageStored] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait((item, future))
        return await future

    async def _run(self) -> None:
        while True:
            first = await self._queue.get()
            batch = [first]
            while len(batch) < self.MAX_BATCH and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            try:
                outcomes = await run_in_threadpool(self._apply, [w for w, _ in batch])
            except Exception as exc:  # the commit failed: nobody's work is stored
                log.exception("chat batch failed to commit")
                for _, future in batch:
                    self._queue.task_done()
                    if not future.done():
                        future.set_exception(exc)
                continue
            self.batches += 1
            self.items += len(batch)
            for _ in batch:
                self._queue.task_done()
            for (_, future), (ok, value) in zip(batch, outcomes, strict=True):
                if future.done():
                    continue
                if ok:
                    future.set_result(value)
                else:
                    future.set_exception(value)

    def _apply(self, works: list[Work]) -> list[tuple[bool, Any]]:
        outcomes: list[tuple[bool, Any]] = []
        with self._sessions.begin() as session:
            start = 0
            while start < len(works):
                work = works[start]
                if isinstance(work, ChatMessageIn):
                    # Consecutive messages go in together; other work keeps its place.
                    end = start + 1
                    while end < len(works) and isinstance(works[end], ChatMessageIn):
                        end += 1
                    items = [w for w in works[start:end] if isinstance(w, ChatMessageIn)]
                    outcomes.extend(self._messages(session, items))
                    start = end
                    continue
                start += 1
                mark = pending_count(session)
                try:
                    with session.begin_nested():
                        outcomes.append((True, work(session)))
                except KefuError as exc:
                    discard_pending_since(session, mark)
                    outcomes.append((False, exc))
                except Exception as exc:
                    log.exception("chat work failed")
                    discard_pending_since(session, mark)
                    outcomes.append((False, exc))
        return outcomes

    @staticmethod
    def _messages(session: Session, items: list[ChatMessageIn]) -> list[tuple[bool, Any]]:
        mark = pending_count(session)
        try:
            # Each item succeeds or fails alone inside; this savepoint only guards the
            # rest of the batch against a fault of the batched write itself.
            with session.begin_nested():
                results = do_add_chat_messages(session, items)
        except Exception as exc:
            log.exception("chat messages failed")
            discard_pending_since(session, mark)
            return [(False, exc)] * len(items)
        return [(not isinstance(r, Exception), r) for r in results]


@dataclass(slots=True)
class TokenBucket:
    rate: float
    burst: float
    tokens: float = 0.0
    stamp: float = field(default_factory=time.monotonic)

    def __post_init__(self) -> None:
        self.tokens = self.burst

    def take(self) -> bool:
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False


class ChatError(Exception):
    """An error frame for the client (``message`` is a catalog key); the socket stays open."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class Heard:
    """An event from pub/sub as the sockets hearing it read it: parsed once, and its
    ``message`` frame rendered once, however many sockets deliver it (the contact's
    and the agent's, at least)."""

    __slots__ = ("event", "files", "frame")

    def __init__(self, event: dict[str, Any]) -> None:
        self.event = event
        self.frame: str | None = None
        # A message with files: their details, read once for every socket it reaches.
        self.files: asyncio.Future[list[dict[str, Any]]] | None = None


class ChatHub:
    """Every chat socket of this process."""

    HEARD_CACHE = 1024

    def __init__(self, state: AppState, pubsub: PubSub) -> None:
        self.state = state
        self.pubsub = pubsub
        self.writer = WriteBatcher(state.sessions)
        self.connections: set[Connection] = set()
        self._heard: dict[bytes, Heard] = {}
        self._switch_interval = sys.getswitchinterval()

    def hear(self, data: bytes) -> Heard | None:
        """``data`` parsed (shared: read it, never change it), or None if it is not an
        event. Recent events are kept by their bytes, which every subscriber receives
        alike (the same object from the memory backend, equal bytes from Redis)."""
        heard = self._heard.get(data)
        if heard is None:
            try:
                event = orjson.loads(data)
            except orjson.JSONDecodeError:
                return None
            if not isinstance(event, dict):
                return None
            if len(self._heard) >= self.HEARD_CACHE:
                self._heard.clear()
            heard = self._heard[data] = Heard(event)
        return heard

    async def start(self) -> None:
        # The writer thread and the event loop share the GIL. Each statement the writer
        # runs releases it in SQLite; getting it back waits for the loop's switch
        # interval (5 ms by default), so a batch of a few hundred rows stalled for
        # most of its time behind a busy loop. 0.5 ms shares the interpreter fairly.
        self._switch_interval = sys.getswitchinterval()
        sys.setswitchinterval(min(self._switch_interval, SWITCH_INTERVAL_S))
        await self.writer.start()

    async def stop(self) -> None:
        for conn in list(self.connections):
            await conn.close(1001)
        await self.writer.stop()
        sys.setswitchinterval(self._switch_interval)

    def suggest(self, text: str, locale: str) -> list[dict[str, Any]]:
        """Help-center articles for a chat's first message (the bot's answer)."""
        index_locale = "en" if locale.lower().startswith("en") else "zh-CN"
        hits = self.state.search.suggest([text], index_locale, limit=3)
        return [
            {"id": i, "title": t, "url": f"/help/articles/{i}"} for i, t, score in hits if score > 0
        ]

    async def serve(self, ws: WebSocket) -> None:
        await ws.accept()
        conn = Connection(self, ws)
        self.connections.add(conn)
        OPEN_SOCKETS.inc()
        try:
            await conn.run()
        finally:
            self.connections.discard(conn)
            OPEN_SOCKETS.dec()


@dataclass
class AgentSide:
    """What only an agent's socket keeps: the tickets it watches and who else is on
    them (collision detection). Visitors' sockets, the thousands, carry none of it."""

    name: str
    watching: dict[int, str] = field(default_factory=dict)  # ticket id -> number
    viewers: dict[str, dict[int, dict[str, Any]]] = field(default_factory=dict)


# History that changes what a console shows; a socket following the inbox hears it as
# ``changed`` (message.created and chat.state_changed have frames of their own).
CHANGE_EVENTS = frozenset(
    {
        events.TICKET_CREATED,
        events.TICKET_UPDATED,
        events.TICKET_ASSIGNED,
        events.TICKET_STATUS_CHANGED,
        events.TICKET_PRIORITY_CHANGED,
        events.TICKET_TAGGED,
        events.TICKET_MERGED,
        events.TICKET_RATED,
    }
)


class Connection:
    # One per open socket, ten thousand idle widgets at a time: no __dict__ each.
    __slots__ = (
        "_dropped",
        "_held",
        "_listener",
        "_out",
        "_queue_refresh_due",
        "_queued",
        "_receiver",
        "_sending",
        "actor",
        "agent_side",
        "bucket",
        "close_code",
        "closed",
        "hub",
        "locale",
        "numbers",
        "sent",
        "strikes",
        "sub",
        "ws",
    )

    def __init__(self, hub: ChatHub, ws: WebSocket) -> None:
        self.hub = hub
        self.ws = ws
        self.actor: Actor | None = None
        self.locale = "zh-CN"
        # Frames waiting for the socket, and the task writing them: both exist only
        # while there is something to send (thousands of idle widgets hold neither).
        self._out: deque[str] | None = None
        self._sending: asyncio.Task[None] | None = None
        self._listener: asyncio.Task[None] | None = None
        # The task reading the socket, once the hello is through (see _drop_slow).
        self._receiver: asyncio.Task[Any] | None = None
        self.bucket = TokenBucket(RATE_PER_S, RATE_BURST)
        self.strikes = 0
        self.sub: Subscription | None = None
        # The highest sequence sent per ticket: replay and live delivery never repeat.
        self.sent: dict[int, int] = {}
        self.numbers: dict[int, str] = {}
        self.closed = False
        self.close_code = CLOSE_NORMAL
        self._dropped = False  # _drop_slow cancelled the receive loop
        self._queue_refresh_due = False
        # The contact's chats last seen waiting in the queue: only those are recomputed
        # when the queue moves (every chat state change reaches every waiting socket).
        self._queued: set[str] | None = None
        self.agent_side: AgentSide | None = None
        # Live messages held per ticket while its replay is read (see _on_start).
        self._held: dict[int, list[tuple[str, dict[str, Any]]]] | None = None

    # -- plumbing ----------------------------------------------------------------------

    def send(self, frame: dict[str, Any]) -> None:
        self.send_text(_dumps(frame))

    def send_text(self, text: str) -> None:
        if self.closed:
            return
        out = self._out
        if out is None:
            out = self._out = deque()
        elif len(out) >= SEND_BUFFER_FRAMES:
            self._drop_slow(out)
            return
        out.append(text)
        self._kick()

    def _drop_slow(self, out: deque[str]) -> None:
        """A client that does not read is dropped; the server never buffers without end.

        The writer is stuck in a send the client does not take and the receive loop
        in a read that may never come: both are let go now, so the socket's
        subscription, its place in routing (an agent goes offline) and its frames go at
        once, whether or not the client ever reads again. The close frame (4008) waits
        behind what the socket already holds; the websocket library gives up on it
        after its close timeout and aborts the connection."""
        self.closed = True
        self.close_code = CLOSE_SLOW
        out.clear()
        SLOW_DROPS.inc()
        sending = self._sending
        if sending is not None:
            # Awaiting the transport's drain: the frame it sends is already written.
            sending.cancel()
            self._sending = None
        receiver = self._receiver
        if receiver is not None and receiver is not asyncio.current_task():
            self._dropped = True
            receiver.cancel()  # run() sees ``_dropped`` and leaves through its cleanup
        self._kick()

    def _kick(self) -> None:
        if self._sending is None:
            self._sending = asyncio.get_running_loop().create_task(self._drain())

    async def close(self, code: int) -> None:
        self.closed = True
        self.close_code = code
        self._kick()

    async def _drain(self) -> None:
        try:
            # Frames queued before a close still go out (an error says why), unless the
            # client is the reason: one that does not read gets nothing more.
            while self._out and self.close_code != CLOSE_SLOW:
                await self.ws.send_text(self._out.popleft())
        except Exception:  # the socket is gone; the receive loop sees it too
            self.closed = True
        # Nothing awaits between the last frame and here: a frame queued later starts
        # a new task.
        self._out = None
        if self.closed and self.ws.application_state is WebSocketState.CONNECTED:
            with contextlib.suppress(Exception):
                await self.ws.close(self.close_code)
        self._sending = None

    async def _subscribe(self, topics: list[str]) -> None:
        """Listen on more topics; the subscription and its task start with the first."""
        if self.sub is None:
            self.sub = await self.hub.pubsub.subscribe(topics)
            self._listener = asyncio.create_task(self._listen())
        elif topics:
            await self.sub.add(topics)

    async def run(self) -> None:
        try:
            if not await self._hello():
                return
            self._receiver = asyncio.current_task()
            try:
                while not self.closed:
                    try:
                        raw = await self.ws.receive_text()
                    except (WebSocketDisconnect, RuntimeError, KeyError):
                        break
                    await self._handle_raw(raw)
            except asyncio.CancelledError:
                receiver = self._receiver
                if not self._dropped or receiver is None:
                    raise
                receiver.uncancel()  # _drop_slow's, not the server's: clean up below
            finally:
                self._receiver = None
        finally:
            self.closed = True
            self._kick()  # what is queued goes out, then the socket is closed
            if self._listener is not None:
                self._listener.cancel()
            if self.sub is not None:
                with contextlib.suppress(Exception):
                    await self.sub.close()
            await self._on_disconnect()
            sending = self._sending
            if sending is not None:
                # A dropped client's close frame waits out the library's own timeouts
                # (about half a minute) rather than leave a socket nobody closes.
                timeout = CLOSE_SLOW_WAIT_S if self.close_code == CLOSE_SLOW else 5
                with contextlib.suppress(asyncio.TimeoutError, asyncio.CancelledError, Exception):
                    await asyncio.wait_for(sending, timeout=timeout)

    async def _on_disconnect(self) -> None:
        actor = self.actor
        if actor is None or actor.kind is not ActorKind.AGENT:
            return
        if self.agent_side is not None:
            for ticket_id, number in self.agent_side.watching.items():
                with contextlib.suppress(Exception):
                    await self._announce(ticket_id, number, on=False, hello=False)
        if any(c.actor == actor for c in self.hub.connections if c is not self):
            return

        def work(session: Session) -> None:
            do_set_presence(session, actor, Presence.OFFLINE)

        # The agent's last socket on this node is gone: they are offline for routing.
        with contextlib.suppress(Exception):
            await self.hub.writer.submit(work)

    async def _handle_raw(self, raw: str) -> None:
        if len(raw) > MAX_FRAME_CHARS:
            self.error("frame_too_large", "frame too large")
            await self.close(CLOSE_POLICY)
            return
        if not self.bucket.take():
            self.strikes += 1
            self.error("rate_limited", "too many frames; slow down")
            if self.strikes >= FLOOD_STRIKES:
                await self.close(CLOSE_POLICY)
            return
        try:
            frame = orjson.loads(raw)
        except orjson.JSONDecodeError:
            self.error("invalid_json", "frame is not valid JSON")
            return
        if not isinstance(frame, dict) or not isinstance(frame.get("type"), str):
            self.error("invalid_frame", "a frame is an object with a type")
            return
        ref = frame.get("id") if isinstance(frame.get("id"), str) else None
        try:
            await self._dispatch(frame)
        except ChatError as exc:
            self.error(exc.code, exc.message, ref=ref)
        except RateLimited as exc:
            params = exc.params | {"retry_after_seconds": exc.retry_after_seconds}
            self.error(exc.code, exc.message, ref=ref, **params)
        except KefuError as exc:
            self.error(exc.code, exc.message, ref=ref, **exc.params)
        except Exception:
            log.exception("chat frame failed")
            self.error("internal", "server error; try again", ref=ref)

    def error(self, code: str, message: str, *, ref: str | None = None, **details: Any) -> None:
        frame: dict[str, Any] = {
            "type": "error",
            "code": code,
            "message": gettext_for(self.locale, message),
        }
        if ref is not None:
            frame["ref"] = ref
        if details:
            frame["details"] = {k: v for k, v in details.items() if isinstance(v, str | int)}
        self.send(frame)

    # -- hello and subscriptions ---------------------------------------------------------

    async def _hello(self) -> bool:
        try:
            raw = await asyncio.wait_for(self.ws.receive_text(), HELLO_TIMEOUT_S)
        except (TimeoutError, WebSocketDisconnect, RuntimeError, KeyError):
            await self.close(CLOSE_BAD_HELLO)
            return False
        try:
            frame = orjson.loads(raw) if len(raw) <= MAX_FRAME_CHARS else None
        except orjson.JSONDecodeError:
            frame = None
        if not isinstance(frame, dict) or frame.get("type") != "hello":
            self.error("hello_required", "the first frame must be hello")
            await self.close(CLOSE_BAD_HELLO)
            return False
        locale = frame.get("locale")
        if isinstance(locale, str) and locale.lower().startswith("en"):
            self.locale = "en"
        try:
            self.actor = await self._authenticate(frame)
        except (NotAuthenticated, ChatError, KefuError) as exc:
            self.error("not_authenticated", exc.message)
            await self.close(CLOSE_BAD_HELLO)
            return False
        topics = self._topics()
        if topics:
            await self._subscribe(topics)
        welcome: dict[str, Any] = {"type": "welcome", "role": self._role()}
        if self.actor is not None and self.actor.kind is ActorKind.CONTACT:
            welcome["contact_id"] = self.actor.id
            if frame.get("token") is None and self.actor.id is not None:
                welcome["visitor"] = sign_visitor(self.hub.state.secret_key, self.actor.id)
        chats = await self._live_chats()
        welcome["chats"] = chats
        welcome["limits"] = {
            "max_frame_chars": MAX_FRAME_CHARS,
            "rate_per_s": RATE_PER_S,
            "burst": RATE_BURST,
            # Files for a msg are uploaded first (POST /api/v1/attachments).
            "max_upload_bytes": self.hub.state.settings.max_upload_bytes,
            "attachment_types": sorted(CHAT_ATTACHMENT_TYPES),
            "max_attachments": MAX_CHAT_ATTACHMENTS,
        }
        self.send(welcome)
        resume = frame.get("resume")
        if isinstance(resume, dict):
            for number, seq in list(resume.items())[:50]:
                if isinstance(number, str) and isinstance(seq, int):
                    await self._resume(number, seq)
        return True

    def _role(self) -> str:
        if self.actor is None:
            return "visitor"
        return self.actor.kind.value

    async def _authenticate(self, frame: dict[str, Any]) -> Actor | None:
        state = self.hub.state
        token = frame.get("token")
        visitor = frame.get("visitor")
        if token is not None and not isinstance(token, str):
            raise ChatError("not_authenticated", "invalid token")
        cookie = self.ws.cookies.get(SESSION_COOKIE) if token is None else None
        if cookie and not _same_origin(self.ws):
            # Cross-site websocket hijacking: a page elsewhere opening this socket gets
            # the agent's cookie sent along. Only the console's own pages may use it.
            cookie = None
        if token or cookie:
            principal = await run_in_threadpool(principal_from_credentials, state, token, cookie)
            if principal.agent is not None and not principal.has_scope("write"):
                raise ChatError("not_authenticated", "token lacks the write scope")
            if principal.agent is not None:
                self.agent_side = AgentSide(name=principal.agent.name)
            return principal.actor
        if isinstance(visitor, str):
            contact_id = check_visitor(state.secret_key, visitor)
            if contact_id is None:
                raise ChatError("not_authenticated", "invalid visitor token")
            return Actor(kind=ActorKind.CONTACT, id=contact_id)
        return None  # an anonymous visitor: a contact is made when they start a chat

    def _topics(self) -> list[str]:
        actor = self.actor
        if actor is None:
            # Nothing to hear until they start a chat: an idle visitor costs no fan-out.
            return []
        if actor.kind is ActorKind.CONTACT:
            return [f"contact:{actor.id}", QUEUE_TOPIC]
        # Chats assigned to the agent; others only when watched (``watch``). A whole
        # team's traffic on every agent's socket would multiply each message by the
        # team's size for frames nobody looks at.
        return [f"agent:{actor.id}"]

    async def _live_chats(self) -> list[dict[str, Any]]:
        actor = self.actor
        if actor is None:
            return []

        def read(session: Session) -> list[dict[str, Any]]:
            return [self._chat_summary(t) for t in live_chats(session, actor)]

        return await self._read(read)

    def _chat_summary(self, ticket: Ticket) -> dict[str, Any]:
        self.numbers[ticket.id] = ticket.number
        self._mark_queued(ticket.number, ticket.chat_state is ChatState.QUEUED)
        return {
            "ticket": ticket.number,
            "chat_state": ticket.chat_state.value if ticket.chat_state else None,
            "last_seq": ticket.last_seq,
            "priority": ticket.priority.value,
            "subject": ticket.subject,
        }

    async def _read(self, fn: Callable[[Session], T]) -> T:
        def run() -> T:
            with self.hub.state.read_sessions() as session:
                return fn(session)

        return await run_in_threadpool(run)

    # -- live delivery -------------------------------------------------------------------

    async def _listen(self) -> None:
        assert self.sub is not None  # noqa: S101  # started by _subscribe
        async for topic, data in self.sub:
            if topic == QUEUE_TOPIC:
                self._queue_changed()
                continue
            heard = self.hub.hear(data)
            if heard is not None:
                await self._deliver(heard.event, heard)
        # The subscription was cut (this socket fell too far behind): reconnect resumes.
        await self.close(CLOSE_SLOW)

    async def _deliver(self, event: dict[str, Any], heard: Heard | None = None) -> None:
        kind = event.get("type")
        data = event.get("data") or {}
        if kind == "message.created":
            message = data.get("message") or {}
            number = data.get("ticket")
            if not isinstance(number, str):
                return
            if message.get("attachments") and (heard is None or heard.frame is None):
                message = message | {"files": await self._files_of(message, heard)}
            self._send_message(number, message, live=True, heard=heard)
        elif kind == "chat.state_changed":
            await self._send_state(data)
            if self.agent_side is not None:
                self.send({"type": "changed", "ticket": data.get("ticket"), "event": kind})
        elif kind == "chat.viewing":
            await self._viewing(data)
        elif kind in ("chat.typing", "chat.read"):
            if data.get("from") == "agent" and self.agent_side is not None:
                # Another agent on the same ticket (never this agent's own echo).
                if self.actor is not None and data.get("agent_id") != self.actor.id:
                    self.send({"type": kind.split(".")[1]} | data)
            elif data.get("from") != self._role():
                self.send({"type": kind.split(".")[1]} | data)
        elif (
            kind in CHANGE_EVENTS
            and self.agent_side is not None
            and isinstance(data.get("ticket"), str)
        ):
            self.send({"type": "changed", "ticket": data["ticket"], "event": kind})

    async def _files_of(self, message: dict[str, Any], heard: Heard | None) -> list[dict[str, Any]]:
        """What a client needs to show a message's files (the event carries their ids),
        read after the commit that stored them; once per process for a heard event."""
        ids = [i for i in message.get("attachments") or () if isinstance(i, int)]

        def read(session: Session) -> list[dict[str, Any]]:
            rows = session.scalars(select(Attachment).where(Attachment.id.in_(ids))).all()
            by_id = {a.id: a for a in rows}
            return [_file_view(by_id[i]) for i in ids if i in by_id]

        if heard is None:
            return await self._read(read)
        if heard.files is None:
            heard.files = asyncio.ensure_future(self._read(read))
        try:
            return await asyncio.shield(heard.files)
        except Exception:  # the ids still go out; a resume reads the details again
            log.exception("reading a message's files failed")
            return []

    async def _viewing(self, data: dict[str, Any]) -> None:
        """Another agent opened or left a ticket this socket watches: tell the console
        who is here, and answer a newcomer so they learn about this agent too."""
        side, actor = self.agent_side, self.actor
        number, agent_id = data.get("ticket"), data.get("agent_id")
        if side is None or actor is None or not isinstance(number, str):
            return
        if agent_id == actor.id or number not in side.watching.values():
            return
        if not isinstance(agent_id, int):
            return
        here = side.viewers.setdefault(number, {})
        if data.get("on"):
            here[agent_id] = {"id": agent_id, "name": str(data.get("agent_name", ""))[:200]}
            if data.get("hello"):
                ticket_id = next(t for t, n in side.watching.items() if n == number)
                await self._announce(ticket_id, number, on=True, hello=False)
        else:
            here.pop(agent_id, None)
        self.send({"type": "viewers", "ticket": number, "agents": list(here.values())})

    async def _announce(self, ticket_id: int, number: str, *, on: bool, hello: bool) -> None:
        side, actor = self.agent_side, self.actor
        if side is None or actor is None:
            return
        payload = {
            "ticket": number,
            "agent_id": actor.id,
            "agent_name": side.name,
            "on": on,
            "hello": hello,
        }
        await self.hub.pubsub.publish(
            f"ticket:{ticket_id}:agents", orjson.dumps({"type": "chat.viewing", "data": payload})
        )

    def _send_message(
        self,
        number: str,
        message: dict[str, Any],
        *,
        live: bool = False,
        heard: Heard | None = None,
    ) -> None:
        seq = message.get("seq")
        ticket_id = message.get("ticket_id")
        if not isinstance(seq, int) or not isinstance(ticket_id, int):
            return
        if live and self._held is not None and ticket_id in self._held:
            self._held[ticket_id].append((number, message))
            return
        if seq <= self.sent.get(ticket_id, 0):
            return
        self.sent[ticket_id] = seq
        self.numbers[ticket_id] = number
        if heard is None:
            self.send({"type": "message", "ticket": number} | _public(message))
            return
        # The frame is the same for every socket this event reaches.
        if heard.frame is None:
            heard.frame = _dumps({"type": "message", "ticket": number} | _public(message))
        self.send_text(heard.frame)

    def _mark_queued(self, number: str, queued: bool) -> None:
        if queued:
            self._queued = (self._queued or set()) | {number}
        elif self._queued is not None:
            self._queued.discard(number)
            if not self._queued:
                self._queued = None

    async def _send_state(self, data: dict[str, Any]) -> None:
        number = data.get("ticket")
        frame = {"type": "state"} | {
            k: data.get(k) for k in ("ticket", "chat_state", "priority", "agent_name")
        }
        self.send(frame)
        if isinstance(number, str):
            self._mark_queued(number, data.get("chat_state") == ChatState.QUEUED.value)
        if data.get("chat_state") == ChatState.QUEUED.value and isinstance(number, str):
            await self._send_queue_position(number)

    def _queue_changed(self) -> None:
        """Someone joined, left or was served, or an agent came or went: a waiting
        contact's place may have moved. Recomputed at most once a second per socket."""
        actor = self.actor
        if actor is None or actor.kind is not ActorKind.CONTACT or self._queue_refresh_due:
            return
        self._queue_refresh_due = True
        asyncio.get_running_loop().call_later(
            QUEUE_REFRESH_S, lambda: asyncio.ensure_future(self._refresh_queue())
        )

    async def _refresh_queue(self) -> None:
        self._queue_refresh_due = False
        if self.closed:
            return
        for number in list(self._queued or ()):
            with contextlib.suppress(KefuError):
                await self._send_queue_position(number)

    async def _send_queue_position(self, number: str) -> None:
        actor = self.actor
        if actor is None or actor.kind is not ActorKind.CONTACT:
            return

        def read(session: Session) -> dict[str, Any] | None:
            ticket = access_ticket_by_number(session, actor, number)
            if ticket.chat_state is not ChatState.QUEUED:
                return None
            q = queue_status(session, ticket)
            return {
                "type": "queue",
                "ticket": number,
                "position": q.position,
                "waiting": q.waiting,
                "agents_online": q.agents_online,
                "eta_seconds": q.eta_seconds,
            }

        frame = await self._read(read)
        self._mark_queued(number, frame is not None)
        if frame is not None:
            self.send(frame)

    async def _resume(self, number: str, after_seq: int) -> None:
        actor = self.actor
        if actor is None:
            return
        internal = actor.kind is ActorKind.AGENT

        def read(session: Session) -> tuple[Ticket, list[dict[str, Any]]]:
            ticket = access_ticket_by_number(session, actor, number)
            rows = messages_after(session, ticket, after_seq, internal=internal)
            return ticket, [
                message_public(m) | {"files": [_file_view(a) for a in m.attachments]} for m in rows
            ]

        ticket, rows = await self._read(read)
        self.sent.setdefault(ticket.id, after_seq)
        self._mark_queued(ticket.number, ticket.chat_state is ChatState.QUEUED)
        for message in rows:
            self._send_message(ticket.number, message)
        if ticket.chat_state is ChatState.QUEUED:
            await self._send_queue_position(ticket.number)

    # -- frames from the client ----------------------------------------------------------

    async def _dispatch(self, frame: dict[str, Any]) -> None:
        kind = frame["type"]
        handler = _HANDLERS.get(kind)
        if handler is None:
            raise ChatError("unknown_type", "unknown frame type")
        await handler(self, frame)

    def _need_actor(self) -> Actor:
        if self.actor is None:
            raise ChatError("no_chat", "start a chat first")
        return self.actor

    def _need_agent(self) -> Actor:
        actor = self._need_actor()
        if actor.kind is not ActorKind.AGENT:
            raise ChatError("agents_only", "agents only")
        return actor

    async def _on_ping(self, frame: dict[str, Any]) -> None:
        self.send({"type": "pong", "t": frame.get("t")})

    async def _on_start(self, frame: dict[str, Any]) -> None:
        try:
            topic = ChatTopic(frame.get("topic") or "other")
        except ValueError:
            raise ChatError("invalid_topic", "unknown topic") from None
        text = _text(frame)
        client_id = _client_id(frame)
        given = frame.get("fields")
        raw_fields: dict[str, Any] = given if isinstance(given, dict) else {}
        fields = ExchangeFields(
            **{
                k: str(v)[:130]
                for k, v in raw_fields.items()
                if k in ("order_id", "txid", "coin", "network", "amount") and v
            }
        )
        if self.actor is not None and self.actor.kind is ActorKind.AGENT:
            raise ChatError("contacts_only", "agents do not start chats")
        actor = self.actor
        locale = self.locale
        suggest = self.hub.suggest

        def work(session: Session) -> tuple[Actor, dict[str, Any]]:
            nonlocal actor
            if actor is None:
                visitor = ContactData(name="Visitor" if locale == "en" else "访客", locale=locale)
                actor = Actor(
                    kind=ActorKind.CONTACT, id=do_create_contact(session, SYSTEM, visitor).id
                )
            start = ChatStart(topic=topic, text=text, client_msg_id=client_id, fields=fields)
            ticket = do_start_chat(session, actor, start, suggest=suggest)
            return actor, self._chat_summary(ticket)

        new_actor, summary = await self.hub.writer.submit(work)
        ticket_id = next(t for t, n in self.numbers.items() if n == summary["ticket"])
        # A subscription added now may start mid-burst (the bot's answer live, the
        # opening message not): hold live messages of this chat until the replay below
        # has sent everything stored, so none is skipped and the order holds.
        held = self._held if self._held is not None else {}
        held[ticket_id] = []
        self._held = held
        if self.actor is None:
            # The visitor now has a contact: listen on its topic, and give it a token to
            # come back with.
            self.actor = new_actor
            await self._subscribe([f"contact:{new_actor.id}", QUEUE_TOPIC])
            self.send(
                {
                    "type": "visitor",
                    "contact_id": new_actor.id,
                    "visitor": sign_visitor(self.hub.state.secret_key, new_actor.id or 0),
                }
            )
        self.send({"type": "started", "ref": client_id} | summary)
        # The opening message is the chat's first.
        self.send({"type": "ack", "id": client_id, "ticket": summary["ticket"], "seq": 1})
        # Replay what was stored with it (the opening message, the bot's or the safety
        # instructions): events published before the topic was added are not lost.
        try:
            await self._resume(summary["ticket"], 0)
        finally:
            for number, message in held.pop(ticket_id, []):
                self._send_message(number, message)
            if not held:
                self._held = None

    async def _on_msg(self, frame: dict[str, Any]) -> None:
        actor = self._need_actor()
        attachment_ids = _attachment_ids(frame)
        item = ChatMessageIn(
            actor=actor,
            ticket=_ticket(frame),
            # A screenshot may go without words.
            text=_text(frame) if not attachment_ids else _optional_text(frame),
            client_msg_id=_client_id(frame),
            is_internal=bool(frame.get("internal")),
            attachment_ids=attachment_ids,
        )
        stored = await self.hub.writer.submit_message(item)
        self.send(
            {"type": "ack", "id": item.client_msg_id, "ticket": stored.ticket, "seq": stored.seq}
        )

    async def _on_typing(self, frame: dict[str, Any]) -> None:
        await self._ephemeral(frame, "chat.typing", {})

    async def _on_read(self, frame: dict[str, Any]) -> None:
        seq = frame.get("seq")
        if not isinstance(seq, int) or seq < 0:
            raise ChatError("invalid_frame", "seq must be a number")
        await self._ephemeral(frame, "chat.read", {"seq": seq})

    async def _ephemeral(self, frame: dict[str, Any], kind: str, extra: dict[str, Any]) -> None:
        """Typing and read receipts: relayed, never stored."""
        actor = self._need_actor()
        number = _ticket(frame)

        def read(session: Session) -> tuple[int, int | None, int | None]:
            ticket = access_ticket_by_number(session, actor, number)
            return ticket.id, ticket.contact_id, ticket.assignee_id

        ticket_id, contact_id, assignee_id = await self._read(read)
        payload = {"ticket": number, "from": self._role()} | extra
        data = orjson.dumps({"type": kind, "data": payload})
        if actor.kind is ActorKind.AGENT:
            # Typing a note is not typing to the customer.
            if contact_id is not None and frame.get("internal") is not True:
                await self.hub.pubsub.publish(f"contact:{contact_id}", data)
            if kind == "chat.typing" and self.agent_side is not None:
                # Other agents on the ticket see who is writing (collision detection).
                colleague = payload | {"agent_id": actor.id, "agent_name": self.agent_side.name}
                await self.hub.pubsub.publish(
                    f"ticket:{ticket_id}:agents",
                    orjson.dumps({"type": kind, "data": colleague}),
                )
        else:
            await self.hub.pubsub.publish(f"ticket:{ticket_id}:agents", data)
            if assignee_id is not None:
                await self.hub.pubsub.publish(f"agent:{assignee_id}", data)

    async def _on_resume(self, frame: dict[str, Any]) -> None:
        self._need_actor()
        after = frame.get("after", 0)
        if not isinstance(after, int) or after < 0:
            raise ChatError("invalid_frame", "after must be a number")
        await self._resume(_ticket(frame), after)

    async def _on_watch(self, frame: dict[str, Any]) -> None:
        """An agent opens a chat in the console: its events follow on this socket."""
        actor = self._need_agent()
        number = _ticket(frame)

        def read(session: Session) -> int:
            return access_ticket_by_number(session, actor, number).id

        ticket_id = await self._read(read)
        await self._subscribe([f"ticket:{ticket_id}:agents"])
        after = frame.get("after", 0)
        await self._resume(number, after if isinstance(after, int) and after >= 0 else 0)
        if self.agent_side is not None and ticket_id not in self.agent_side.watching:
            self.agent_side.watching[ticket_id] = number
            await self._announce(ticket_id, number, on=True, hello=True)

    async def _on_follow(self, frame: dict[str, Any]) -> None:
        """The console's inbox: hear about the tickets of the agent's teams and of the
        general queue (admins: every ticket), as ``changed`` frames."""
        actor = self._need_agent()
        if actor.is_admin:
            topics = ["agents"]
        else:
            topics = [f"team:{t}" for t in sorted(actor.team_ids)] + ["team:none"]
        await self._subscribe(topics)
        self.send({"type": "done", "ref": frame.get("id")})

    async def _ticket_action(self, frame: dict[str, Any], act: Callable[..., Any]) -> None:
        actor = self._need_actor()
        number = _ticket(frame)

        def work(session: Session) -> None:
            act(session, actor, access_ticket_by_number(session, actor, number))

        await self.hub.writer.submit(work)
        self.send({"type": "done", "ref": frame.get("id"), "ticket": number})

    async def _on_human(self, frame: dict[str, Any]) -> None:
        await self._ticket_action(frame, do_request_human)

    async def _on_leave(self, frame: dict[str, Any]) -> None:
        email = frame.get("email") if isinstance(frame.get("email"), str) else None
        await self._ticket_action(frame, lambda s, a, t: do_leave_message(s, a, t, email=email))

    async def _on_end(self, frame: dict[str, Any]) -> None:
        await self._ticket_action(frame, do_end_chat)

    async def _on_transcript(self, frame: dict[str, Any]) -> None:
        """The contact asks for the chat's transcript by email (during or after it)."""
        actor = self._need_actor()
        number = _ticket(frame)
        given = frame.get("email")
        if given is not None and not isinstance(given, str):
            raise ChatError("invalid_frame", "email must be a string")
        email = given.strip() if given else None

        def work(session: Session) -> str:
            ticket = access_ticket_by_number(session, actor, number)
            return do_request_transcript(session, actor, ticket, email=email or None)

        to = await self.hub.writer.submit(work)
        # The address as the contact's own screen may show it, masked like everywhere.
        self.send(
            {"type": "done", "ref": frame.get("id"), "ticket": number, "email": display_email(to)}
        )

    async def _on_rate(self, frame: dict[str, Any]) -> None:
        def num(name: str) -> int | None:
            value = frame.get(name)
            return value if isinstance(value, int) and not isinstance(value, bool) else None

        stars = num("stars")
        if stars is None:
            raise ChatError("invalid_frame", "stars is required")
        comment = frame.get("comment") if isinstance(frame.get("comment"), str) else ""
        data = RatingInput(
            stars=stars,
            speed=num("speed"),
            professionalism=num("professionalism"),
            communication=num("communication"),
            resolution=num("resolution"),
            comment=comment or "",
        )
        await self._ticket_action(frame, lambda s, a, t: do_rate_ticket(s, a, t, data))

    async def _on_presence(self, frame: dict[str, Any]) -> None:
        actor = self._need_agent()
        try:
            presence = Presence(str(frame.get("status")))
        except ValueError:
            raise ChatError("invalid_frame", "status is online, away or offline") from None
        capacity = frame.get("capacity")
        if capacity is not None and not isinstance(capacity, int):
            raise ChatError("invalid_frame", "capacity must be a number")

        def work(session: Session) -> None:
            do_set_presence(session, actor, presence, capacity=capacity)

        await self.hub.writer.submit(work)
        self.send({"type": "done", "ref": frame.get("id"), "presence": presence.value})

    async def _on_accept(self, frame: dict[str, Any]) -> None:
        self._need_agent()
        await self._ticket_action(frame, do_accept_chat)

    async def _on_transfer(self, frame: dict[str, Any]) -> None:
        self._need_agent()
        agent_id = frame.get("agent_id") if isinstance(frame.get("agent_id"), int) else None
        team_id = frame.get("team_id") if isinstance(frame.get("team_id"), int) else None
        await self._ticket_action(
            frame, lambda s, a, t: do_transfer_chat(s, a, t, agent_id=agent_id, team_id=team_id)
        )


def _text(frame: dict[str, Any]) -> str:
    value = frame.get("text")
    if not isinstance(value, str) or not value.strip():
        raise ChatError("invalid_frame", "text is required")
    return value


def _optional_text(frame: dict[str, Any]) -> str:
    value = frame.get("text")
    if value is None:
        return ""
    if not isinstance(value, str):
        raise ChatError("invalid_frame", "text must be a string")
    return value


def _attachment_ids(frame: dict[str, Any]) -> tuple[int, ...]:
    """The ids of files uploaded for a ``msg`` (``attachments``, optional)."""
    value = frame.get("attachments")
    if value is None:
        return ()
    if not isinstance(value, list) or len(value) > MAX_CHAT_ATTACHMENTS:
        raise ChatError("invalid_frame", "attachments is a list of up to 5 attachment ids")
    ids = tuple(dict.fromkeys(value))
    for i in ids:
        if not isinstance(i, int) or isinstance(i, bool) or not 1 <= i <= 2**53:
            raise ChatError("invalid_frame", "attachments is a list of up to 5 attachment ids")
    return ids


def _file_view(att: Attachment) -> dict[str, Any]:
    """A file as a message frame describes it: enough to show a thumbnail or a link."""
    return {
        "id": att.id,
        "filename": att.filename,
        "content_type": att.content_type,
        "size": att.size,
        "url": f"/api/v1/attachments/{att.id}",
    }


def _client_id(frame: dict[str, Any]) -> str:
    value = frame.get("id")
    if not isinstance(value, str) or not 1 <= len(value) <= 64:
        raise ChatError("invalid_frame", "id (the client's message id, 1-64 chars) is required")
    return value


def _ticket(frame: dict[str, Any]) -> str:
    value = frame.get("ticket")
    if not isinstance(value, str) or not 1 <= len(value) <= 20:
        raise ChatError("invalid_frame", "ticket is required")
    return value


def _same_origin(ws: WebSocket) -> bool:
    """The handshake came from a page of this site (or from no browser at all)."""
    origin = ws.headers.get("origin")
    if origin is None:
        return True
    return urlsplit(origin).netloc.lower() == (ws.headers.get("host") or "").lower()


def _public(message: dict[str, Any]) -> dict[str, Any]:
    keys = ("seq", "body", "author", "created_at", "client_msg_id", "kind", "articles")
    return {k: message[k] for k in keys if k in message} | {
        "attachments": message.get("attachments", []),
        "files": message.get("files", []),
    }


_HANDLERS: dict[str, Callable[[Connection, dict[str, Any]], Any]] = {
    "ping": Connection._on_ping,
    "start": Connection._on_start,
    "msg": Connection._on_msg,
    "typing": Connection._on_typing,
    "read": Connection._on_read,
    "resume": Connection._on_resume,
    "watch": Connection._on_watch,
    "follow": Connection._on_follow,
    "human": Connection._on_human,
    "leave": Connection._on_leave,
    "end": Connection._on_end,
    "transcript": Connection._on_transcript,
    "rate": Connection._on_rate,
    "presence": Connection._on_presence,
    "accept": Connection._on_accept,
    "transfer": Connection._on_transfer,
}

__all__ = ["ChatHub", "check_visitor", "sign_visitor"]
