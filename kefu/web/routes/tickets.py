"""/api/v1/tickets: tickets, their messages and their history."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, TypeVar

from fastapi import APIRouter, Query, Request
from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.responses import Response

from kefu.actions.contacts import ContactData, do_find_or_create_contact
from kefu.actions.guard import do_record_sensitive_reveal
from kefu.actions.messages import NewMessage, do_add_message, do_record_reveal
from kefu.actions.tickets import (
    NewTicket,
    do_assign,
    do_change_status,
    do_merge_tickets,
    do_set_priority,
    do_tag,
    do_update_ticket_fields,
)
from kefu.actions.tickets import do_create_ticket as create_ticket_action
from kefu.domain.access import Actor
from kefu.domain.errors import PermissionDenied, ValidationFailed
from kefu.domain.exchange_fields import ExchangeFields
from kefu.domain.tickets import Channel, Priority, TicketKind, TicketStatus
from kefu.models import Ticket
from kefu.queries.messages import list_messages, list_ticket_events
from kefu.queries.tickets import SORTS, TicketFilter, access_ticket_by_number, list_tickets
from kefu.web.deps import AgentDep, PrincipalDep, ReadDbDep, StateDep
from kefu.web.idempotency import run_idempotent
from kefu.web.schemas import (
    MAX_ID,
    EventList,
    EventPublic,
    MergeRequest,
    MessageCreate,
    MessageList,
    MessagePublic,
    TicketCreate,
    TicketList,
    TicketPublic,
    TicketUpdate,
)

router = APIRouter(prefix="/tickets", tags=["tickets"])

NumberPath = Annotated[str, "ticket number"]


def _fields(body: TicketCreate | TicketUpdate) -> ExchangeFields:
    return ExchangeFields(
        exchange_uid=body.exchange_uid,
        txid=body.txid,
        order_id=body.order_id,
        coin=body.coin,
        network=body.network,
        amount=body.amount,
    )


def _public(db: Session, ticket: Ticket, actor: Actor, *, reveal: bool = False) -> TicketPublic:
    merged_into = None
    if ticket.merged_into_id is not None:
        merged_into = db.scalar(select(Ticket.number).where(Ticket.id == ticket.merged_into_id))
    # Agents see PII in the subject masked, as in message bodies (docs/security.md).
    return TicketPublic.of(ticket, merged_into, mask_pii=actor.is_agent and not reveal)


def _resolve_contact(db: Session, actor: Actor, body: TicketCreate) -> int | None:
    if actor.is_contact:
        if body.contact_id is not None and body.contact_id != actor.id:
            raise PermissionDenied("contacts create tickets for themselves only")
        return actor.id
    if body.contact_id is not None:
        return body.contact_id
    ref = body.contact
    if ref is None:
        return None
    contact = do_find_or_create_contact(
        db,
        actor,
        ContactData(email=ref.email, phone=ref.phone, exchange_uid=ref.exchange_uid, name=ref.name),
    )
    return contact.id


@router.post("", status_code=201, response_model=TicketPublic)
def create_ticket(
    request: Request, body: TicketCreate, principal: PrincipalDep, state: StateDep
) -> Response:
    actor = principal.actor
    if principal.agent is not None and not principal.has_scope("write"):
        raise PermissionDenied("token lacks the scope", scope="write")

    def run(db: Session) -> TicketPublic:
        channel = body.channel
        if actor.is_contact and channel is Channel.API:
            channel = Channel.WEB
        first = None
        if body.body.strip() or body.attachment_ids:
            first = NewMessage(body=body.body, channel=channel, attachment_ids=body.attachment_ids)
        ticket = create_ticket_action(
            db,
            actor,
            NewTicket(
                subject=body.subject,
                channel=channel,
                kind=body.kind,
                priority=body.priority,
                contact_id=_resolve_contact(db, actor, body),
                team_id=body.team_id,
                assignee_id=body.assignee_id,
                tags=body.tags if not actor.is_contact else (),
                fields=_fields(body),
                first_message=first,
            ),
        )
        return _public(db, ticket, actor)

    with state.transaction() as db:
        return run_idempotent(request, db, principal.key, body, 201, lambda: run(db))


E = TypeVar("E", TicketStatus, Priority, TicketKind, Channel)


def _parse_enum_list(values: list[str] | None, enum: type[E], field: str) -> list[E]:
    out: list[E] = []
    for raw in values or []:
        for part in raw.split(","):
            part = part.strip()
            if not part:
                continue
            try:
                out.append(enum(part))
            except ValueError:
                raise ValidationFailed("unknown value", field=field, value=part[:50]) from None
    return out


@router.get("", response_model=TicketList)
def get_tickets(
    db: ReadDbDep,
    principal: PrincipalDep,
    status: Annotated[list[str] | None, Query(max_length=200)] = None,
    priority: Annotated[list[str] | None, Query(max_length=200)] = None,
    kind: Annotated[list[str] | None, Query(max_length=200)] = None,
    channel: Annotated[list[str] | None, Query(max_length=200)] = None,
    team_id: Annotated[int | None, Query(ge=1, le=MAX_ID)] = None,
    assignee_id: Annotated[int | None, Query(ge=1, le=MAX_ID)] = None,
    unassigned: bool = False,
    tag: Annotated[str | None, Query(max_length=64)] = None,
    contact_id: Annotated[int | None, Query(ge=1, le=MAX_ID)] = None,
    created_after: datetime | None = None,
    created_before: datetime | None = None,
    sort: Annotated[
        str, Query(pattern="^(" + "|".join(s.replace("-", "\\-") for s in SORTS) + ")$")
    ] = "-created_at",
    limit: Annotated[int, Query(ge=1, le=100)] = 25,
    cursor: Annotated[str | None, Query(max_length=500)] = None,
    q: Annotated[
        str | None,
        Query(
            max_length=200,
            description="Agents: a ticket number, contact email/name/UID, TxID, order id, "
            "or words in the subject or any message (Chinese segmented like the help center).",
        ),
    ] = None,
) -> TicketList:
    if q and not principal.actor.is_agent:
        # Message search covers internal notes; a contact must not learn of their words.
        raise PermissionDenied("searching message text is for agents")
    for name, value in (("created_after", created_after), ("created_before", created_before)):
        if value is not None and value.tzinfo is None:
            raise ValidationFailed("timestamps need a time zone", field=name)
    page = list_tickets(
        db,
        principal.actor,
        TicketFilter(
            status=_parse_enum_list(status, TicketStatus, "status"),
            priority=_parse_enum_list(priority, Priority, "priority"),
            kind=_parse_enum_list(kind, TicketKind, "kind"),
            channel=_parse_enum_list(channel, Channel, "channel"),
            team_id=team_id,
            assignee_id=assignee_id,
            unassigned=unassigned,
            tag=tag,
            contact_id=contact_id,
            created_after=created_after,
            created_before=created_before,
            text=(q.strip() or None) if q else None,
        ),
        sort=sort,
        limit=limit,
        cursor=cursor,
    )
    mask = principal.actor.is_agent
    return TicketList(items=[TicketPublic.of(t, mask_pii=mask) for t in page.items], next=page.next)


@router.get("/{number}", response_model=TicketPublic)
def get_ticket(
    number: NumberPath,
    db: ReadDbDep,
    principal: PrincipalDep,
    state: StateDep,
    reveal: Annotated[
        bool, Query(description="Agents: the subject unmasked (needs the permission; audited).")
    ] = False,
) -> TicketPublic:
    ticket = access_ticket_by_number(db, principal.actor, number)
    if reveal:
        with state.transaction() as wdb:
            do_record_sensitive_reveal(wdb, principal.actor, fields=["subject"], ticket=ticket)
    return _public(db, ticket, principal.actor, reveal=reveal)


@router.patch("/{number}", response_model=TicketPublic)
def update_ticket(
    number: NumberPath, body: TicketUpdate, principal: AgentDep, state: StateDep
) -> TicketPublic:
    actor = principal.actor
    sent = body.model_fields_set
    field_names = {"exchange_uid", "txid", "order_id", "coin", "network", "amount"}
    with state.transaction() as db:
        ticket = access_ticket_by_number(db, actor, number)
        if sent & ({"subject", "kind"} | field_names):
            do_update_ticket_fields(
                db,
                actor,
                ticket,
                subject=body.subject,
                kind=body.kind,
                fields=_fields(body) if sent & field_names else None,
            )
        if "team_id" in sent or "assignee_id" in sent:
            kwargs = {}
            if "team_id" in sent:
                kwargs["team_id"] = body.team_id
            if "assignee_id" in sent:
                kwargs["assignee_id"] = body.assignee_id
            do_assign(db, actor, ticket, **kwargs)
        if body.priority is not None:
            do_set_priority(db, actor, ticket, body.priority)
        if body.add_tags or body.remove_tags:
            do_tag(db, actor, ticket, add=body.add_tags, remove=body.remove_tags)
        if body.status is not None:
            do_change_status(db, actor, ticket, body.status)
        return _public(db, ticket, actor)


@router.post("/{number}/merge", response_model=TicketPublic)
def merge_ticket(
    number: NumberPath, body: MergeRequest, principal: AgentDep, state: StateDep
) -> TicketPublic:
    with state.transaction() as db:
        source = access_ticket_by_number(db, principal.actor, number)
        target = access_ticket_by_number(db, principal.actor, body.into)
        return _public(db, do_merge_tickets(db, principal.actor, source, target), principal.actor)


@router.get("/{number}/messages", response_model=MessageList)
def get_messages(
    number: NumberPath,
    db: ReadDbDep,
    principal: PrincipalDep,
    state: StateDep,
    after_seq: Annotated[int, Query(ge=0, le=MAX_ID)] = 0,
    limit: Annotated[int, Query(ge=1, le=500)] = 200,
    reveal: bool = False,
) -> MessageList:
    """Agents see PII masked; ``reveal=true`` (with the permission) shows it and is
    written to the audit log. A contact sees their own messages as written."""
    actor = principal.actor
    ticket = access_ticket_by_number(db, actor, number)
    rows = list_messages(db, actor, ticket, after_seq=after_seq, limit=limit)
    if reveal:
        if not actor.is_agent or not actor.can_view_sensitive:
            raise PermissionDenied("viewing sensitive data needs the permission")
        with state.transaction() as wdb:
            do_record_reveal(wdb, actor, ticket.id, [m.id for m in rows])
    mask = actor.is_agent and not reveal
    return MessageList(items=[MessagePublic.of(m, mask_pii=mask) for m in rows])


@router.post("/{number}/messages", status_code=201, response_model=MessagePublic)
def post_message(
    request: Request,
    number: NumberPath,
    body: MessageCreate,
    principal: PrincipalDep,
    state: StateDep,
) -> Response:
    actor = principal.actor
    if principal.agent is not None and not principal.has_scope("write"):
        raise PermissionDenied("token lacks the scope", scope="write")

    def run(db: Session) -> MessagePublic:
        ticket = access_ticket_by_number(db, actor, number)
        message = do_add_message(
            db,
            actor,
            ticket,
            NewMessage(
                body=body.body,
                channel=ticket.channel,
                is_internal=body.is_internal,
                attachment_ids=body.attachment_ids,
                client_msg_id=body.client_msg_id,
            ),
        )
        return MessagePublic.of(message, mask_pii=actor.is_agent)

    with state.transaction() as db:
        return run_idempotent(request, db, principal.key, body, 201, lambda: run(db))


@router.get("/{number}/events", response_model=EventList)
def get_events(number: NumberPath, db: ReadDbDep, principal: AgentDep) -> EventList:
    ticket = access_ticket_by_number(db, principal.actor, number)
    return EventList(items=[EventPublic.of(e) for e in list_ticket_events(db, ticket)])
