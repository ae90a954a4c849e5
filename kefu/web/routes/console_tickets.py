"""The console's ticket page: one timeline across channels, the composer (reply on the
ticket's channel, or an internal note), macros, and the sidebar of fields.

Every write runs start to commit in one worker thread (``state.transaction()``), like
the API's; events go out on commit, so other consoles and the contact's socket see it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Form, Path, Query, Request
from sqlalchemy.orm import Session
from starlette.responses import HTMLResponse, Response

from kefu.actions.calls import CallLog, do_log_call
from kefu.actions.chat import do_accept_chat, do_chat_message, do_end_chat
from kefu.actions.guard import (
    display_body,
    display_phone,
    display_text,
    do_record_sensitive_reveal,
    screen_inbound,
)
from kefu.actions.messages import NewMessage, do_add_message, do_record_reveal
from kefu.actions.tickets import (
    do_assign,
    do_change_status,
    do_set_priority,
    do_tag,
    do_update_ticket_fields,
    normalize_tags,
)
from kefu.channels.email.parse import parse_email
from kefu.domain.access import Actor
from kefu.domain.calls import CallDirection, CallOutcome, format_duration, parse_duration
from kefu.domain.chat import LIVE_STATES
from kefu.domain.errors import PermissionDenied, ValidationFailed
from kefu.domain.exchange_fields import ExchangeFields
from kefu.domain.macros import render_macro
from kefu.domain.tickets import Priority, TicketKind, TicketStatus
from kefu.models import Agent, Contact, Message, Ticket
from kefu.queries.console import (
    agent_names,
    get_ticket_message,
    other_tickets,
    team_names,
    ticket_timeline,
)
from kefu.queries.macros import access_macro_by_id, list_macros, macro_values
from kefu.queries.people import list_agents, list_teams
from kefu.queries.tickets import access_ticket_by_number
from kefu.web.deps import ConsoleDep, Principal, StateDep
from kefu.web.pages import render
from kefu.web.routes.console import console_context, form_id, is_htmx
from kefu.web.routes.helpcenter import article_url

router = APIRouter(prefix="/agent/tickets", include_in_schema=False)

MAX_BODY = 100_000
SUGGESTED_ARTICLES = 5
# What a reveal of the ticket page unmasks besides the messages (the audit says so).
REVEALED_FIELDS = ("subject", "contact.name", "contact.email", "contact.phone")


def _identity(text: str) -> str:
    return text


def _raw_body(message: Message) -> str:
    return message.body


def _page_data(
    session: Session, principal: Principal, number: str, *, reveal: bool = False
) -> dict[str, Any]:
    actor = principal.actor
    ticket = access_ticket_by_number(session, actor, number)
    contact = session.get(Contact, ticket.contact_id) if ticket.contact_id else None
    return {
        "ticket": ticket,
        "contact": contact,
        "timeline": ticket_timeline(session, ticket),
        "names": agent_names(session),
        "team_names": team_names(session),
        "agents": [a for a in list_agents(session) if a.is_active],
        "teams": list_teams(session),
        "macros": list_macros(session, actor),
        "others": other_tickets(session, actor, ticket),
        "reveal": reveal,
        "show": _identity if reveal else display_text,
        "show_body": _raw_body if reveal else display_body,
        "show_phone": _identity if reveal else display_phone,
        "call_duration": format_duration,
        "call_directions": list(CallDirection),
        "call_outcomes": list(CallOutcome),
        "can_reveal": actor.can_view_sensitive,
        "statuses": list(TicketStatus),
        "priorities": list(Priority),
        "kinds": list(TicketKind),
        "chat_live": ticket.chat_state in LIVE_STATES,
    }


@router.get("/{number}", response_class=HTMLResponse)
def ticket_page(
    request: Request,
    number: Annotated[str, "ticket number"],
    principal: ConsoleDep,
    state: StateDep,
    reveal: bool = False,
) -> Response:
    """``reveal=1`` shows the PII masked by default (in the messages, the subjects and
    the contact's details), for agents with the permission; every reveal is written to
    the audit log first."""
    actor = principal.actor
    if reveal:
        if not actor.can_view_sensitive:
            raise PermissionDenied("viewing sensitive data needs the permission")
        with state.transaction() as wdb:
            ticket = access_ticket_by_number(wdb, actor, number)
            timeline = ticket_timeline(wdb, ticket)
            ids = [i.message.id for i in timeline.items if i.message is not None]
            do_record_reveal(wdb, actor, ticket.id, ids)
            # The rest of the page as the API audits it: the subject (GET ticket
            # ?reveal) and the contact's fields (GET contact ?reveal).
            contact_ids = [ticket.contact_id] if ticket.contact_id is not None else []
            do_record_sensitive_reveal(
                wdb,
                actor,
                fields=REVEALED_FIELDS,
                ticket=ticket,
                contact_ids=contact_ids,
            )
    with state.read_sessions() as session:
        data = _page_data(session, principal, number, reveal=reveal)
        return render(request, "pages/console/ticket.html", **(console_context(principal) | data))


@router.get("/{number}/timeline", response_class=HTMLResponse)
def timeline_after(
    request: Request,
    number: Annotated[str, "ticket number"],
    principal: ConsoleDep,
    state: StateDep,
) -> Response:
    """The whole timeline, re-rendered: the live console swaps it in when a message or
    a change arrives over the socket (debounced), so events and notes show too."""
    with state.read_sessions() as session:
        ticket = access_ticket_by_number(session, principal.actor, number)
        return render(
            request,
            "partials/console/timeline.html",
            ticket=ticket,
            timeline=ticket_timeline(session, ticket),
            names=agent_names(session),
            team_names=team_names(session),
            show=display_text,
            show_body=display_body,
            show_phone=display_phone,
            call_duration=format_duration,
        )


@router.post("/{number}/messages", response_class=HTMLResponse)
def post_message(
    request: Request,
    number: Annotated[str, "ticket number"],
    principal: ConsoleDep,
    state: StateDep,
    # Optional: files dropped on the composer may go without a word.
    body: Annotated[str, Form(max_length=MAX_BODY)] = "",
    internal: Annotated[bool, Form()] = False,
    attachment_ids: Annotated[list[int], Form(max_length=20)] = [],  # noqa: B006  # FastAPI copies defaults
    client_msg_id: Annotated[str | None, Form(max_length=64)] = None,
) -> Response:
    """A reply (sent on the ticket's channel: chat socket, email through the outbox …)
    or an internal note. A resend with the same ``client_msg_id`` is stored once."""
    actor = principal.actor
    if not body.strip() and not attachment_ids:
        raise ValidationFailed("write something first", field="body")
    with state.transaction() as session:
        ticket = access_ticket_by_number(session, actor, number)
        if (
            ticket.chat_state is not None
            and not attachment_ids
            and (ticket.chat_state in LIVE_STATES or not internal)
        ):
            # A live chat's rules (and the "chat has ended" refusal) live in the chat
            # actions; the socket and this form share them.
            do_chat_message(session, actor, ticket, body, client_msg_id, is_internal=internal)
        else:
            do_add_message(
                session,
                actor,
                ticket,
                NewMessage(
                    body=body,
                    channel=ticket.channel,
                    is_internal=internal,
                    attachment_ids=attachment_ids,
                    client_msg_id=client_msg_id,
                ),
            )
    return _timeline_response(request, state, principal, number)


@router.post("/{number}/calls", response_class=HTMLResponse)
def log_call(
    request: Request,
    number: Annotated[str, "ticket number"],
    principal: ConsoleDep,
    state: StateDep,
    direction: Annotated[CallDirection, Form()],
    outcome: Annotated[CallOutcome, Form()],
    summary: Annotated[str, Form(max_length=MAX_BODY)] = "",
    duration: Annotated[str, Form(max_length=12)] = "",
    phone: Annotated[str, Form(max_length=32)] = "",
    client_msg_id: Annotated[str | None, Form(max_length=64)] = None,
) -> Response:
    """A phone call taken or made for this ticket, logged as an internal phone message
    with its facts (``actions.calls``); the timeline shows it as a call."""
    call = CallLog(
        direction=direction,
        outcome=outcome,
        summary=summary,
        duration_seconds=parse_duration(duration),
        phone=phone or None,
        client_msg_id=client_msg_id or None,
    )
    with state.transaction() as session:
        ticket = access_ticket_by_number(session, principal.actor, number)
        do_log_call(session, principal.actor, ticket, call)
    return _timeline_response(request, state, principal, number)


def _timeline_response(
    request: Request, state: StateDep, principal: Principal, number: str
) -> Response:
    response = timeline_after(request, number, principal, state)
    response.headers["HX-Trigger"] = "ticket-changed"
    return response


@router.post("/{number}/fields", response_class=HTMLResponse)
def update_fields(
    request: Request,
    number: Annotated[str, "ticket number"],
    principal: ConsoleDep,
    state: StateDep,
    status: Annotated[TicketStatus | None, Form()] = None,
    priority: Annotated[Priority | None, Form()] = None,
    kind: Annotated[TicketKind | None, Form()] = None,
    assignee: Annotated[str | None, Form(max_length=12)] = None,
    team: Annotated[str | None, Form(max_length=12)] = None,
    tags: Annotated[str | None, Form(max_length=2000)] = None,
    txid: Annotated[str | None, Form(max_length=130)] = None,
    coin: Annotated[str | None, Form(max_length=16)] = None,
    network: Annotated[str | None, Form(max_length=24)] = None,
    amount: Annotated[str | None, Form(max_length=48)] = None,
    order_id: Annotated[str | None, Form(max_length=64)] = None,
) -> Response:
    """The sidebar's form: every field it sends is applied by its own action (each
    writes its own history), all in one transaction."""
    actor = principal.actor
    with state.transaction() as session:
        ticket = access_ticket_by_number(session, actor, number)
        if kind is not None:
            do_update_ticket_fields(session, actor, ticket, kind=kind)
        fields = ExchangeFields(
            txid=txid or None,
            coin=coin or None,
            network=network or None,
            amount=amount or None,
            order_id=order_id or None,
        )
        if any((txid, coin, network, amount, order_id)):
            do_update_ticket_fields(session, actor, ticket, fields=fields)
        if priority is not None and priority is not ticket.priority:
            do_set_priority(session, actor, ticket, priority)
        if assignee is not None:
            do_assign(session, actor, ticket, assignee_id=_optional_id(assignee))
        if team is not None:
            do_assign(session, actor, ticket, team_id=_optional_id(team))
        if tags is not None:
            wanted = normalize_tags(tags.replace("，", ",").split(","))
            current = ticket.tags
            do_tag(
                session,
                actor,
                ticket,
                add=[t for t in wanted if t not in current],
                remove=[t for t in current if t not in wanted],
            )
        if status is not None and status is not ticket.status:
            do_change_status(session, actor, ticket, status)
    return _timeline_response(request, state, principal, number)


def _optional_id(value: str) -> int | None:
    return None if value in ("", "none") else form_id(value)


@router.post("/{number}/accept", response_class=HTMLResponse)
def accept_chat(
    request: Request,
    number: Annotated[str, "ticket number"],
    principal: ConsoleDep,
    state: StateDep,
) -> Response:
    """Take a waiting chat out of turn (接入)."""
    return _chat_action(request, number, principal, state, do_accept_chat)


@router.post("/{number}/end", response_class=HTMLResponse)
def end_chat(
    request: Request,
    number: Annotated[str, "ticket number"],
    principal: ConsoleDep,
    state: StateDep,
) -> Response:
    """End the chat; the agent ending it marks the ticket solved."""
    return _chat_action(request, number, principal, state, do_end_chat)


def _chat_action(
    request: Request,
    number: str,
    principal: Principal,
    state: StateDep,
    act: Callable[[Session, Actor, Ticket], Ticket],
) -> Response:
    with state.transaction() as session:
        act(session, principal.actor, access_ticket_by_number(session, principal.actor, number))
    target = f"/agent/tickets/{number}"
    if is_htmx(request):
        return Response(status_code=204, headers={"HX-Redirect": target})
    return Response(status_code=303, headers={"Location": target})


@router.get("/{number}/macro", response_class=HTMLResponse)
def apply_macro(
    request: Request,
    number: Annotated[str, "ticket number"],
    principal: ConsoleDep,
    state: StateDep,
    macro: Annotated[int, Query(ge=1, lt=2**31)],
    body: Annotated[str, Query(max_length=MAX_BODY)] = "",
) -> Response:
    """The composer's text with the macro, its placeholders filled for this ticket,
    added at the end (HTMX swaps the textarea)."""
    actor = principal.actor
    with state.read_sessions() as session:
        ticket: Ticket = access_ticket_by_number(session, actor, number)
        chosen = access_macro_by_id(session, actor, macro)
        contact = session.get(Contact, ticket.contact_id) if ticket.contact_id else None
        agent = session.get(Agent, actor.id) if actor.id else None
        values = macro_values(ticket, contact, agent)
    # The composer shows what the agent may see: PII in the subject or the name stays
    # masked (and is not echoed back to the customer in full either).
    for key in ("ticket.subject", "contact.name"):
        values[key] = display_text(values[key])
    text = render_macro(chosen.body, values)
    combined = f"{body.rstrip()}\n\n{text}" if body.strip() else text
    return render(request, "partials/console/composer_body.html", body=combined)


@router.get("/{number}/suggested-articles", response_class=HTMLResponse)
def suggested_articles(
    request: Request,
    number: Annotated[str, "ticket number"],
    principal: ConsoleDep,
    state: StateDep,
) -> Response:
    """The sidebar's help-center suggestions, as the API gives them
    (``GET /api/v1/tickets/{number}/suggested-articles``). The ticket page loads this
    fragment after it has rendered, so searching costs the page nothing."""
    with state.read_sessions() as session:
        ticket = access_ticket_by_number(session, principal.actor, number)
        subject = ticket.subject
        # A closed or merged ticket has no composer to insert a link into.
        has_composer = ticket.status is not TicketStatus.CLOSED and ticket.merged_into_id is None
    base = state.settings.base_url.rstrip("/")
    hits = state.search.suggest([subject], "zh-CN", SUGGESTED_ARTICLES)
    articles = [
        {"title": title, "url": article_url(article_id), "link": base + article_url(article_id)}
        for article_id, title, _score in hits
    ]
    return render(
        request,
        "partials/console/suggested_articles.html",
        articles=articles,
        has_composer=has_composer,
    )


@router.get("/{number}/messages/{seq}/quoted", response_class=HTMLResponse)
def quoted_history(
    request: Request,
    number: Annotated[str, "ticket number"],
    seq: Annotated[int, Path(ge=1, lt=2**31)],
    principal: ConsoleDep,
    state: StateDep,
) -> Response:
    """The quoted history cut from an email reply, read back from the original mail
    kept byte for byte (``meta.email.original_sha256``). Loaded when the agent opens the
    fold-out: parsing a mail per message would cost every page render."""
    with state.read_sessions() as session:
        ticket = access_ticket_by_number(session, principal.actor, number)
        message = get_ticket_message(session, ticket, seq)
        mail = (message.meta or {}).get("email") or {}
        sha = mail.get("original_sha256") if isinstance(mail, dict) else None
    quoted = None
    if isinstance(sha, str) and state.files.exists(sha):
        quoted = _quoted_part(state.files.get(sha))
    return render(request, "partials/console/quoted_history.html", quoted=quoted)


def _quoted_part(raw: bytes) -> str:
    """What the reply quoted: the received text after the new part, or the whole text
    when the new part is not a prefix of it (inline ``>`` answers)."""
    parsed = parse_email(raw)
    full = parsed.text.strip()
    reply = (parsed.reply_text or "").strip()
    quoted = full[len(reply) :].strip() if reply and full.startswith(reply) else full
    # An original is only kept when it held no secret; screen it again all the same
    # (the detectors improve, old mails stay), then mask PII as the timeline does.
    return display_text(screen_inbound(quoted).text)
