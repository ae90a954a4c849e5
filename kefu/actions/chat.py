"""Live chat: start a chat, bot suggestions, the stolen-account fast lane, the queue,
routing to agents, presence, transfer, leaving a message, ending and rating, files
(screenshots) in a chat, and the transcript by email.

Each ``do_*`` runs inside the caller's transaction. Routing (``do_route_chats``) runs
in the same transaction as whatever freed a slot or queued a chat, so a chat is never
left waiting while an agent sits idle. See docs/chat-protocol.md.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from sqlalchemy import func, select, tuple_
from sqlalchemy.orm import Session

from kefu import events
from kefu.actions.attachments import ALLOWED_TYPES
from kefu.actions.guard import screen_inbound
from kefu.actions.history import record_event
from kefu.actions.messages import (
    CheckedMessage,
    NewMessage,
    check_may_add_message,
    counts_as_response,
    do_add_message,
    do_add_messages_unsafe,
    screen_message_body,
    status_after_message,
)
from kefu.actions.outbox import do_enqueue_job
from kefu.actions.tickets import (
    NewTicket,
    do_assign,
    do_change_status,
    do_create_ticket,
    do_tag,
    do_update_ticket_fields,
)
from kefu.domain import access
from kefu.domain.access import SYSTEM, Actor, ActorKind
from kefu.domain.chat import (
    LIVE_STATES,
    TOPICS,
    AgentLoad,
    ChatState,
    ChatTopic,
    Presence,
    asks_for_human,
    is_account_takeover,
    pick_agent,
)
from kefu.domain.clock import as_utc, utcnow
from kefu.domain.errors import (
    InvalidTransition,
    KefuError,
    NotFound,
    PermissionDenied,
    RateLimited,
    ValidationFailed,
)
from kefu.domain.exchange_fields import ExchangeFields
from kefu.domain.tickets import (
    Channel,
    Priority,
    TicketKind,
    TicketStatus,
    normalize_ticket_number,
)
from kefu.events import discard_pending_since, pending_count
from kefu.infra.i18n import DEFAULT_LOCALE, gettext_for
from kefu.models import Agent, AgentTeam, Attachment, Contact, Event, Message, Rating, Team, Ticket
from kefu.queries.chat import queue_order
from kefu.queries.tickets import access_ticket_by_number

log = logging.getLogger(__name__)

# A suggestion source, (text, locale) → articles: the help-center search, or nothing.
Suggest = Callable[[str, str], Sequence[dict[str, Any]]]

MAX_CHAT_TEXT = 4000
# Files a chat takes: screenshots, and a PDF (a bank statement, an exchange's notice).
# The upload route refuses anything else from a visitor, and a ``msg`` naming another
# kind of upload (a zip sent through the API) is refused before anything is stored.
CHAT_ATTACHMENT_TYPES = (
    frozenset({"image/png", "image/jpeg", "image/webp", "image/gif", "application/pdf"})
    & ALLOWED_TYPES
)
MAX_CHAT_ATTACHMENTS = 5
# The transcript by email: a mail worth asking for again after a typo, not a way to
# make kefu mail someone every few seconds.
TRANSCRIPTS_PER_HOUR = 3
TRANSCRIPT_JOB = "email.transcript"
# What the system says in a chat: English message ids, translated to the contact's
# locale through the catalog (kefu/locale).
BOT_INTRO = "Hi, I'm the assistant. These articles may help; tap “Talk to a person” any time."
LEFT_MESSAGE = "Your message is saved; we will reply by email. Track it with your ticket number."
SECURITY_INSTRUCTIONS = (
    "Your chat is marked URGENT and goes to our account-security team first. Meanwhile:\n"
    "1. If you can still log in, freeze the account and change your login and fund passwords;\n"
    "2. Reset two-factor authentication; check recent devices and the withdrawal whitelist;\n"
    "3. Never share codes, passwords, seed phrases or private keys - support never asks;\n"
    "4. Beware of accounts offering to 'recover funds'; check any channel at /verify."
)


@dataclass(frozen=True, slots=True)
class ChatStart:
    topic: ChatTopic
    text: str
    client_msg_id: str | None = None
    fields: ExchangeFields = field(default_factory=ExchangeFields)


def _system_says(session: Session, ticket: Ticket, message_id: str, **meta: Any) -> Message:
    """A system message in the contact's language."""
    contact = session.get(Contact, ticket.contact_id) if ticket.contact_id else None
    text = gettext_for(contact.locale if contact else DEFAULT_LOCALE, message_id)
    return do_add_message(
        session, SYSTEM, ticket, NewMessage(body=text, channel=Channel.CHAT, meta=meta)
    )


def do_start_chat(
    session: Session, actor: Actor, start: ChatStart, *, suggest: Suggest | None = None
) -> Ticket:
    """Open a chat for a contact. A stolen-account report skips the bot and the normal
    queue; anything else is answered first by help-center suggestions."""
    if actor.kind is not ActorKind.CONTACT or actor.id is None:
        raise PermissionDenied("only contacts start chats")
    contact = session.get(Contact, actor.id)
    if contact is None:
        raise PermissionDenied("unknown contact")
    if start.client_msg_id is not None:
        # A resend of the same start (the client lost the acknowledgement) is one chat.
        existing = session.scalar(
            select(Ticket)
            .join(Message, Message.ticket_id == Ticket.id)
            .where(
                Message.contact_id == contact.id,
                Message.client_msg_id == start.client_msg_id,
                Ticket.channel == Channel.CHAT,
            )
        )
        if existing is not None:
            return existing
    text = start.text.strip()
    if not text:
        raise ValidationFailed("message is empty", field="text")
    if len(text) > MAX_CHAT_TEXT:
        raise ValidationFailed("message too long", field="text")
    fast_lane = start.topic is ChatTopic.ACCOUNT_SECURITY or is_account_takeover(text)
    topic = ChatTopic.ACCOUNT_SECURITY if fast_lane else start.topic
    rule = TOPICS[topic]
    identified = contact.exchange_uid is not None
    tags = ["chat", f"topic:{topic.value}"]
    if rule.needs_identity and not identified:
        if not fast_lane:
            raise PermissionDenied("this topic needs you to be logged in", topic=topic.value)
        # A victim is often locked out of the account: take the report, verify later.
        tags.append("identity_unverified")
    if fast_lane:
        tags.append("fast_lane")
    team_id = session.scalar(select(Team.id).where(Team.slug == rule.team_slug))
    subject = " ".join(text.split())[:60]
    ticket = do_create_ticket(
        session,
        SYSTEM,
        NewTicket(
            subject=subject,
            channel=Channel.CHAT,
            kind=rule.kind,
            priority=Priority.URGENT if fast_lane else None,
            contact_id=contact.id,
            team_id=team_id,
            tags=tags,
            fields=start.fields,
            first_message=NewMessage(
                body=text, channel=Channel.CHAT, client_msg_id=start.client_msg_id
            ),
            author=actor,
        ),
    )
    ticket.chat_topic = topic.value
    if fast_lane:
        _system_says(session, ticket, SECURITY_INSTRUCTIONS, kind="security_instructions")
        _enqueue(session, actor, ticket)
        return ticket
    wants_human = asks_for_human(text)
    suggestions = list(suggest(text, contact.locale)) if suggest and not wants_human else []
    if not suggestions:
        _enqueue(session, actor, ticket)
        return ticket
    ticket.chat_state = ChatState.BOT
    _system_says(session, ticket, BOT_INTRO, kind="bot_suggestions", articles=suggestions)
    session.flush()
    record_event(session, actor, events.CHAT_STATE_CHANGED, ticket=ticket, data=_state(ticket))
    return ticket


def do_chat_message(
    session: Session,
    actor: Actor,
    ticket: Ticket,
    text: str,
    client_msg_id: str | None,
    *,
    is_internal: bool = False,
    attachment_ids: Sequence[int] = (),
) -> Message:
    """A message typed into a chat, with files uploaded before (``attachment_ids``). An
    agent's internal note may follow an ended chat; anything else needs the chat live.
    A stolen-account report written to the bot moves the chat to the fast lane there
    and then."""
    if not is_internal and ticket.chat_state not in LIVE_STATES:
        raise InvalidTransition("chat has ended", state=str(ticket.chat_state))
    if attachment_ids:
        check_chat_attachments(session, actor, attachment_ids)
    message = do_add_message(
        session,
        actor,
        ticket,
        NewMessage(
            body=text,
            channel=Channel.CHAT,
            client_msg_id=client_msg_id,
            is_internal=is_internal,
            attachment_ids=attachment_ids,
        ),
    )
    if (
        actor.kind is ActorKind.CONTACT
        and ticket.chat_state is ChatState.BOT
        and is_account_takeover(text)
    ):
        _to_fast_lane(session, actor, ticket)
    return message


def check_chat_attachments(session: Session, actor: Actor, attachment_ids: Sequence[int]) -> None:
    """Files a chat message may carry: a few, of the chat's types. Who may attach them
    (their uploader, once) is ``do_add_message``'s rule; only the actor's own uploads
    are looked at here, so nobody learns the type of someone else's file."""
    if len(attachment_ids) > MAX_CHAT_ATTACHMENTS:
        raise ValidationFailed(
            "too many attachments", field="attachments", max=MAX_CHAT_ATTACHMENTS
        )
    uploader = (
        Attachment.uploaded_by_contact_id
        if actor.kind is ActorKind.CONTACT
        else Attachment.uploaded_by_agent_id
    )
    types = session.scalars(
        select(Attachment.content_type).where(
            Attachment.id.in_(list(attachment_ids)), uploader == actor.id
        )
    ).all()
    for content_type in types:
        if content_type not in CHAT_ATTACHMENT_TYPES:
            raise ValidationFailed(
                "this file type cannot be sent in a chat",
                field="attachments",
                content_type=content_type,
            )


@dataclass(frozen=True, slots=True)
class ChatMessageIn:
    """A ``msg`` frame: text typed into a chat (or an agent's note on it), with the
    ids of files uploaded for it."""

    actor: Actor
    ticket: str  # the number as the client sent it
    text: str
    client_msg_id: str
    is_internal: bool = False
    attachment_ids: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class ChatMessageStored:
    ticket: str  # the ticket's number
    seq: int


ChatMessageOutcome = ChatMessageStored | Exception


def do_add_chat_messages(
    session: Session, items: Sequence[ChatMessageIn]
) -> list[ChatMessageOutcome]:
    """Many chat messages at once, as the socket's batching writer hands them over:
    for each, what ``access_ticket_by_number`` and ``do_chat_message`` would do, with
    the same checks in the same order and the same errors, but in a few statements for
    the whole batch (one read of the tickets, one of the client ids already stored,
    then ``do_add_messages_unsafe``). Each item is stored or fails alone: the outcome
    list holds its sequence number or its error, in the order given.

    An item that does more than add a message (a secret to warn about, fast-lane words
    to the bot, a status change, the first response, a ticket's later items once one
    of its items went this way) takes the full path, ``do_chat_message`` in a
    savepoint of its own, after the batch. A ticket's messages keep their order: its
    items before the first such item are all in the batch."""
    outcomes: list[ChatMessageOutcome | None] = [None] * len(items)
    numbers = [normalize_ticket_number(i.ticket) for i in items]
    tickets: dict[str, Any] = {}
    if any(numbers):
        wanted = list({n for n in numbers if n})
        for row in session.execute(_CHAT_TICKET.where(Ticket.number.in_(wanted))):
            tickets[row.number] = row
    pairs = zip(numbers, items, strict=True)
    keys = {(tickets[n].id, i.client_msg_id) for n, i in pairs if n in tickets}
    stored: dict[tuple[int, str], int] = {}
    if keys:
        for tid, cid, seq in session.execute(
            select(Message.ticket_id, Message.client_msg_id, Message.seq).where(
                tuple_(Message.ticket_id, Message.client_msg_id).in_(list(keys))
            )
        ):
            stored[(tid, cid or "")] = seq
    batch: list[CheckedMessage] = []
    batch_items: list[int] = []
    first_copy: dict[tuple[int, str], int] = {}  # (ticket, client id) -> place in batch
    copies: list[tuple[int, int]] = []  # (item, place in batch of its first copy)
    full_path: list[int] = []
    diverted: set[int] = set()  # tickets whose later items take the full path too
    for index, item in enumerate(items):
        try:
            plan = _plan_chat_message(session, item, numbers[index], tickets, stored, diverted)
        except KefuError as exc:
            outcomes[index] = exc
            continue
        if isinstance(plan, ChatMessageStored):
            outcomes[index] = plan
        elif plan is None:
            diverted.add(tickets[numbers[index] or ""].id)
            full_path.append(index)
        else:
            key = (plan.ticket_id, item.client_msg_id)
            if key in first_copy:  # a resend within the batch is the first copy
                copies.append((index, first_copy[key]))
                continue
            first_copy[key] = len(batch)
            batch.append(plan)
            batch_items.append(index)
    if batch:
        mark = pending_count(session)
        try:
            with session.begin_nested():
                seqs = do_add_messages_unsafe(session, batch)
        except Exception:
            # A write the checks could not foresee (another node's insert of the same
            # client id): each item goes its own way, to fail alone if it must.
            log.exception("batched chat write failed; storing one by one")
            discard_pending_since(session, mark)
            full_path = sorted([*full_path, *batch_items, *(i for i, _ in copies)])
            copies = []
        else:
            for index, plan, seq in zip(batch_items, batch, seqs, strict=True):
                outcomes[index] = ChatMessageStored(plan.ticket_number, seq)
            for index, place in copies:
                outcomes[index] = outcomes[batch_items[place]]
    for index in full_path:
        outcomes[index] = _chat_message_full_path(session, items[index])
    return [o if o is not None else RuntimeError("not processed") for o in outcomes]


_CHAT_TICKET = select(
    Ticket.id,
    Ticket.number,
    Ticket.channel,
    Ticket.status,
    Ticket.chat_state,
    Ticket.contact_id,
    Ticket.team_id,
    Ticket.assignee_id,
    Ticket.merged_into_id,
    Ticket.txid,
    Ticket.first_response_at,
)


def _plan_chat_message(
    session: Session,
    item: ChatMessageIn,
    number: str | None,
    tickets: dict[str, Any],
    stored: dict[tuple[int, str], int],
    diverted: set[int],
) -> CheckedMessage | ChatMessageStored | None:
    """The checks of ``access_ticket_by_number``, ``do_chat_message`` and
    ``do_add_message`` in their order, on the ticket's row: raises as they would;
    returns the stored copy of a resend, the message ready for the batch, or None
    for an item that needs the full path."""
    actor = item.actor
    row = tickets.get(number) if number else None
    # A ticket the actor may not see is "not found", never "forbidden".
    if row is None:
        raise NotFound("ticket not found")
    if not access.can_see_ticket(
        actor, team_id=row.team_id, assignee_id=row.assignee_id, contact_id=row.contact_id
    ):
        raise NotFound("ticket not found")
    if row.id in diverted:
        return None  # an earlier item may have changed the ticket: read it again
    if not item.is_internal and row.chat_state not in LIVE_STATES:
        raise InvalidTransition("chat has ended", state=str(row.chat_state))
    check_may_add_message(
        actor,
        contact_id=row.contact_id,
        status=row.status,
        is_merged=row.merged_into_id is not None,
        is_internal=item.is_internal,
    )
    seq = stored.get((row.id, item.client_msg_id))
    if seq is not None:
        return ChatMessageStored(row.number, seq)
    # Before the screen: the full path screens these itself (no scan twice).
    if actor.kind not in (ActorKind.CONTACT, ActorKind.AGENT):
        return None
    # Files are type-checked and claimed on the full path (do_chat_message).
    if item.attachment_ids:
        return None
    screened = screen_message_body(
        session,
        actor,
        item.text,
        is_internal=item.is_internal,
        txid=row.txid,
        has_attachments=False,
    )
    # The contact is warned in the chat and agents get an event.
    if screened.secret_kinds:
        return None
    if status_after_message(actor, row.status, is_internal=item.is_internal) is not row.status:
        return None
    if counts_as_response(actor, is_internal=item.is_internal) and row.first_response_at is None:
        return None
    # A stolen-account report to the bot moves the chat to the fast lane.
    if actor.is_contact and row.chat_state is ChatState.BOT and is_account_takeover(item.text):
        return None
    # An agent's public reply on an email ticket is also sent by mail.
    if row.channel is Channel.EMAIL and not item.is_internal and not actor.is_contact:
        return None
    return CheckedMessage(
        actor=actor,
        ticket_id=row.id,
        ticket_number=row.number,
        team_id=row.team_id,
        assignee_id=row.assignee_id,
        contact_id=row.contact_id,
        body=screened.text,
        channel=Channel.CHAT,
        is_internal=item.is_internal,
        client_msg_id=item.client_msg_id,
        display=screened.display,
    )


def _chat_message_full_path(session: Session, item: ChatMessageIn) -> ChatMessageOutcome:
    """One item the slow way, in a savepoint: its failure undoes only its own writes."""
    mark = pending_count(session)
    try:
        with session.begin_nested():
            ticket = access_ticket_by_number(session, item.actor, item.ticket)
            message = do_chat_message(
                session,
                item.actor,
                ticket,
                item.text,
                item.client_msg_id,
                is_internal=item.is_internal,
                attachment_ids=item.attachment_ids,
            )
            return ChatMessageStored(ticket.number, message.seq)
    except KefuError as exc:
        discard_pending_since(session, mark)
        return exc
    except Exception as exc:
        log.exception("chat message failed")
        discard_pending_since(session, mark)
        return exc


def _to_fast_lane(session: Session, actor: Actor, ticket: Ticket) -> None:
    # The ticket actions own kind, priority (account security is always urgent), team
    # and tags, with their history events.
    do_update_ticket_fields(session, SYSTEM, ticket, kind=TicketKind.ACCOUNT_SECURITY)
    security = session.scalar(
        select(Team.id).where(Team.slug == TOPICS[ChatTopic.ACCOUNT_SECURITY].team_slug)
    )
    if security is not None:
        do_assign(session, SYSTEM, ticket, team_id=security)
    do_tag(session, SYSTEM, ticket, add=["fast_lane", "topic:account_security"])
    ticket.chat_topic = ChatTopic.ACCOUNT_SECURITY.value
    _system_says(session, ticket, SECURITY_INSTRUCTIONS, kind="security_instructions")
    _enqueue(session, actor, ticket)


def do_request_human(session: Session, actor: Actor, ticket: Ticket) -> Ticket:
    """转人工: leave the bot for the queue (or straight to a free agent)."""
    _check_party(actor, ticket)
    if ticket.chat_state is ChatState.BOT:
        _enqueue(session, actor, ticket)
    elif ticket.chat_state not in (ChatState.QUEUED, ChatState.ACTIVE):
        raise InvalidTransition("chat is not live", state=str(ticket.chat_state))
    return ticket


def _enqueue(session: Session, actor: Actor, ticket: Ticket) -> None:
    ticket.chat_state = ChatState.QUEUED
    if ticket.queued_at is None:
        ticket.queued_at = utcnow()
    session.flush()
    record_event(session, actor, events.CHAT_STATE_CHANGED, ticket=ticket, data=_state(ticket))
    do_route_chats(session)


def _state(ticket: Ticket) -> dict[str, Any]:
    return {
        "chat_state": ticket.chat_state.value if ticket.chat_state else None,
        "priority": ticket.priority.value,
        "assignee_id": ticket.assignee_id,
        "team_id": ticket.team_id,
    }


def _check_party(actor: Actor, ticket: Ticket) -> None:
    if ticket.chat_state is None:
        raise InvalidTransition("not a chat")
    if actor.kind is ActorKind.CONTACT and ticket.contact_id != actor.id:
        raise PermissionDenied("not your chat")


def agent_loads(session: Session) -> list[AgentLoad]:
    """Every active agent who is not offline, with their live-chat load."""
    agents = session.execute(
        select(Agent.id, Agent.presence, Agent.max_chats, Agent.last_chat_assigned_at).where(
            Agent.is_active.is_(True), Agent.presence != Presence.OFFLINE
        )
    ).all()
    if not agents:
        return []
    ids = [a.id for a in agents]
    active = dict(
        session.execute(
            select(Ticket.assignee_id, func.count())
            .where(Ticket.chat_state == ChatState.ACTIVE, Ticket.assignee_id.in_(ids))
            .group_by(Ticket.assignee_id)
        ).all()
    )
    teams: dict[int, set[int]] = {}
    for agent_id, team_id in session.execute(
        select(AgentTeam.agent_id, AgentTeam.team_id).where(AgentTeam.agent_id.in_(ids))
    ):
        teams.setdefault(agent_id, set()).add(team_id)
    return [
        AgentLoad(
            agent_id=a.id,
            presence=a.presence,
            capacity=max(0, a.max_chats),
            active_chats=int(active.get(a.id, 0)),
            team_ids=frozenset(teams.get(a.id, ())),
            last_assigned_rank=a.last_chat_assigned_at.timestamp()
            if a.last_chat_assigned_at
            else 0,
        )
        for a in agents
    ]


def queued_chats(session: Session, *, lock: bool = False) -> list[Ticket]:
    """The queue in order: urgent first, then longest waiting."""
    stmt = select(Ticket).where(Ticket.chat_state == ChatState.QUEUED).order_by(*queue_order())
    if lock and session.get_bind().dialect.name == "postgresql":
        # Two processes routing at once each take different chats.
        stmt = stmt.with_for_update(skip_locked=True)
    return list(session.scalars(stmt.limit(1000)))


def do_route_chats(session: Session) -> list[Ticket]:
    """Give waiting chats to free agents: urgent first, then longest waiting, each to
    the least-loaded online agent of its team (any team's, if nobody of its team is
    online at all). Returns the chats assigned."""
    queue = queued_chats(session, lock=True)
    if not queue:
        return []
    loads = {a.agent_id: a for a in agent_loads(session)}
    assigned: list[Ticket] = []
    for ticket in queue:
        pool = list(loads.values())
        team_online = any(
            ticket.team_id in a.team_ids and a.presence is Presence.ONLINE for a in pool
        )
        agent_id = pick_agent(pool, ticket.team_id if team_online else None)
        if agent_id is None:
            continue
        _give(session, ticket, agent_id)
        load = loads[agent_id]
        loads[agent_id] = AgentLoad(
            load.agent_id,
            load.presence,
            load.capacity,
            load.active_chats + 1,
            load.team_ids,
            utcnow().timestamp(),
        )
        assigned.append(ticket)
    return assigned


def _give(session: Session, ticket: Ticket, agent_id: int) -> None:
    do_assign(session, SYSTEM, ticket, assignee_id=agent_id)
    ticket.chat_state = ChatState.ACTIVE
    agent = session.get(Agent, agent_id)
    if agent is not None:
        agent.last_chat_assigned_at = utcnow()
    if ticket.status is TicketStatus.NEW:
        do_change_status(session, SYSTEM, ticket, TicketStatus.OPEN)
    session.flush()
    data = _state(ticket) | {"agent_name": agent.name if agent else ""}
    record_event(session, SYSTEM, events.CHAT_STATE_CHANGED, ticket=ticket, data=data)


def do_set_presence(
    session: Session, actor: Actor, presence: Presence, *, capacity: int | None = None
) -> Agent:
    if actor.kind is not ActorKind.AGENT or actor.id is None:
        raise PermissionDenied("agents only")
    agent = session.get(Agent, actor.id)
    if agent is None:
        raise PermissionDenied("unknown agent")
    if capacity is not None:
        if not 0 <= capacity <= 50:
            raise ValidationFailed("capacity must be between 0 and 50", field="capacity")
        agent.max_chats = capacity
    changed = agent.presence is not presence
    agent.presence = presence
    agent.presence_at = utcnow()
    session.flush()
    if changed:
        record_event(
            session,
            actor,
            events.AGENT_PRESENCE_CHANGED,
            data={"agent_id": agent.id, "presence": presence.value, "capacity": agent.max_chats},
        )
    if presence is Presence.ONLINE:
        do_route_chats(session)
    return agent


def do_accept_chat(session: Session, actor: Actor, ticket: Ticket) -> Ticket:
    """An agent takes a waiting chat out of turn (a supervisor picking an urgent one)."""
    if actor.kind is not ActorKind.AGENT or actor.id is None:
        raise PermissionDenied("agents only")
    if ticket.chat_state not in (ChatState.QUEUED, ChatState.BOT):
        raise InvalidTransition("chat is not waiting", state=str(ticket.chat_state))
    _give(session, ticket, actor.id)
    return ticket


def do_transfer_chat(
    session: Session,
    actor: Actor,
    ticket: Ticket,
    *,
    agent_id: int | None = None,
    team_id: int | None = None,
) -> Ticket:
    """Hand a live chat to another agent, or back to a team's queue, keeping its place
    (its original ``queued_at``)."""
    if not access.can_manage_ticket(actor):
        raise PermissionDenied("only agents transfer chats")
    if ticket.chat_state not in LIVE_STATES:
        raise InvalidTransition("chat is not live", state=str(ticket.chat_state))
    if (agent_id is None) == (team_id is None):
        raise ValidationFailed("transfer to an agent or a team", field="agent_id")
    if agent_id is not None:
        target = session.get(Agent, agent_id)
        if target is None or not target.is_active:
            raise ValidationFailed("unknown agent", field="agent_id")
        _give(session, ticket, agent_id)
    else:
        do_assign(session, actor, ticket, assignee_id=None, team_id=team_id)
        _enqueue(session, actor, ticket)  # routes, too
        return ticket
    do_route_chats(session)  # the previous agent has a free slot
    return ticket


def do_leave_message(
    session: Session, actor: Actor, ticket: Ticket, *, email: str | None = None
) -> Ticket:
    """Stop waiting: the chat becomes a ticket answered by email. Nothing typed is lost
    and the ticket keeps its number, so the contact can track it."""
    _check_party(actor, ticket)
    if ticket.chat_state not in (ChatState.BOT, ChatState.QUEUED):
        raise InvalidTransition("chat is not waiting", state=str(ticket.chat_state))
    contact = session.get(Contact, ticket.contact_id) if ticket.contact_id else None
    if email and contact is not None and contact.email is None:
        _remember_email(session, contact, _check_email(email))
    ticket.chat_state = ChatState.LEFT_MESSAGE
    ticket.queued_at = None
    _system_says(session, ticket, LEFT_MESSAGE, kind="left_message")
    record_event(session, actor, events.CHAT_STATE_CHANGED, ticket=ticket, data=_state(ticket))
    return ticket


def _check_email(email: str) -> str:
    email = email.strip().lower()
    if "@" not in email or len(email) > 320 or " " in email:
        raise ValidationFailed("invalid email", field="email")
    return email


def _remember_email(session: Session, contact: Contact, email: str) -> None:
    """A visitor's address, given to hear back, becomes the contact's, so a reply to
    our mail threads to their ticket (unless another contact already has it)."""
    taken = session.scalar(select(Contact.id).where(Contact.email == email))
    if taken is None:
        contact.email = email


def do_request_transcript(
    session: Session, actor: Actor, ticket: Ticket, *, email: str | None = None
) -> str:
    """The contact asks for the chat's transcript by email, to ``email`` or the address
    kefu has for them (an anonymous visitor must give one). The mail is an outbox job,
    rendered when it is sent with the chat's visible messages up to now; at most
    ``TRANSCRIPTS_PER_HOUR`` per ticket. Returns the address it goes to."""
    # Only the chat's own contact: a transcript is their conversation, mailed out.
    if actor.kind is not ActorKind.CONTACT:
        raise PermissionDenied("only the chat's contact asks for its transcript")
    _check_party(actor, ticket)
    contact = session.get(Contact, ticket.contact_id) if ticket.contact_id else None
    if contact is None:
        raise PermissionDenied("not your chat")
    if email:
        to = _check_email(email)
        if contact.email is None:
            _remember_email(session, contact, to)
    elif contact.email:
        to = contact.email
    else:
        raise ValidationFailed("an email address is required", field="email")
    now = utcnow()
    since = now - timedelta(hours=1)
    recent = session.scalars(
        select(Event.created_at)
        .where(
            Event.ticket_id == ticket.id,
            Event.kind == events.TRANSCRIPT_REQUESTED,
            Event.created_at >= since,
        )
        .order_by(Event.created_at)
    ).all()
    if len(recent) >= TRANSCRIPTS_PER_HOUR:
        wait = max(1, int((as_utc(recent[0]) + timedelta(hours=1) - now).total_seconds()) + 1)
        raise RateLimited(
            "too many transcript requests; try again later",
            retry_after_seconds=wait,
            limit=TRANSCRIPTS_PER_HOUR,
        )
    session.flush()
    # Kept for agents only: the address is the contact's business, not the timeline's.
    record_event(
        session,
        actor,
        events.TRANSCRIPT_REQUESTED,
        ticket=ticket,
        data={"up_to_seq": ticket.last_seq},
        is_internal=True,
    )
    do_enqueue_job(
        session,
        TRANSCRIPT_JOB,
        {"ticket_id": ticket.id, "to": to, "up_to_seq": ticket.last_seq},
    )
    return to


def do_end_chat(session: Session, actor: Actor, ticket: Ticket) -> Ticket:
    """End a live chat. An agent ending it marks the ticket solved; a contact leaving
    leaves it for the agent to solve. Either frees the agent's slot."""
    _check_party(actor, ticket)
    if ticket.chat_state not in LIVE_STATES:
        return ticket
    ticket.chat_state = ChatState.ENDED
    ticket.queued_at = None
    if actor.kind is ActorKind.AGENT and ticket.status not in (
        TicketStatus.SOLVED,
        TicketStatus.CLOSED,
    ):
        do_change_status(session, actor, ticket, TicketStatus.SOLVED)
    session.flush()
    record_event(session, actor, events.CHAT_STATE_CHANGED, ticket=ticket, data=_state(ticket))
    do_route_chats(session)
    return ticket


@dataclass(frozen=True, slots=True)
class RatingInput:
    stars: int
    speed: int | None = None
    professionalism: int | None = None
    communication: int | None = None
    resolution: int | None = None
    comment: str = ""


def do_rate_ticket(session: Session, actor: Actor, ticket: Ticket, data: RatingInput) -> Rating:
    """The contact's rating of a ticket: stars plus 响应速度, 专业程度, 沟通态度, 问题解决."""
    if actor.kind is not ActorKind.CONTACT or ticket.contact_id != actor.id:
        raise PermissionDenied("only the ticket's contact rates it")
    for name in ("stars", "speed", "professionalism", "communication", "resolution"):
        value = getattr(data, name)
        if value is None and name != "stars":
            continue  # the four dimensions are optional
        if not isinstance(value, int) or not 1 <= value <= 5:
            raise ValidationFailed("ratings are 1 to 5", field=name)
    rating = session.scalar(select(Rating).where(Rating.ticket_id == ticket.id))
    if rating is None:
        rating = Rating(ticket_id=ticket.id, contact_id=actor.id, stars=data.stars)
        session.add(rating)
    rating.agent_id = ticket.assignee_id
    rating.stars = data.stars
    rating.speed = data.speed
    rating.professionalism = data.professionalism
    rating.communication = data.communication
    rating.resolution = data.resolution
    rating.comment = screen_inbound(data.comment.strip()[:1000]).text
    rating.created_at = utcnow()
    session.flush()
    record_event(
        session,
        actor,
        events.TICKET_RATED,
        ticket=ticket,
        data={
            "stars": rating.stars,
            "speed": rating.speed,
            "professionalism": rating.professionalism,
            "communication": rating.communication,
            "resolution": rating.resolution,
        },
        is_internal=True,
    )
    return rating
