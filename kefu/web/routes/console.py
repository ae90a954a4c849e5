"""The agent console (/agent): login, the inbox views, bulk actions and the chat
workspace. Server-rendered Jinja2 with HTMX; a request with ``HX-Request`` gets the
fragment it swaps, anything else the whole page. See docs/subsystems/console.md.

The ticket page lives in ``console_tickets.py``, the admin pages in ``console_admin.py``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Form, Path, Query, Request
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool
from starlette.responses import HTMLResponse, RedirectResponse, Response

from kefu.actions.auth import do_logout
from kefu.actions.guard import display_text
from kefu.actions.saved_views import do_delete_view, do_save_view
from kefu.actions.tickets import do_assign, do_change_status, do_merge_tickets, do_tag
from kefu.domain.errors import NotAuthenticated, RateLimited, ValidationFailed
from kefu.domain.tickets import (
    Channel,
    Priority,
    TicketKind,
    TicketStatus,
    normalize_ticket_number,
)
from kefu.queries.chat import live_chats, waiting_chats
from kefu.queries.console import (
    InboxView,
    agent_names,
    combine,
    inbox_page,
    list_saved_views,
    view_counts,
    view_filter,
)
from kefu.queries.people import list_agents, list_teams
from kefu.queries.tickets import TicketFilter, access_ticket_by_number
from kefu.web.deps import SESSION_COOKIE, ConsoleDep, Principal, StateDep
from kefu.web.pages import render
from kefu.web.routes.auth import authenticate, set_session_cookie

router = APIRouter(prefix="/agent", include_in_schema=False)

MAX_BULK = 100
SORTS = {"-updated_at", "updated_at", "-created_at", "created_at", "priority"}


def is_htmx(request: Request) -> bool:
    return request.headers.get("hx-request") == "true"


def console_context(principal: Principal) -> dict[str, Any]:
    """What every console page shows: who is logged in, and the CSRF token HTMX sends."""
    assert principal.agent is not None  # noqa: S101  # ConsoleDep guarantees an agent
    assert principal.agent_session is not None  # noqa: S101  # and a cookie session
    return {"me": principal.agent, "csrf": principal.agent_session.csrf_token}


def _safe_next(value: str | None) -> str:
    # Only a path inside the console: never an absolute URL (open redirect).
    if value and value.startswith("/agent") and "//" not in value and "\\" not in value:
        return value
    return "/agent/inbox/mine"


# -- login ---------------------------------------------------------------------------


@router.get("", response_class=HTMLResponse)
async def console_home() -> Response:
    return RedirectResponse("/agent/inbox/mine", status_code=303)


@router.get("/login", response_class=HTMLResponse)
async def login_page(request: Request, next: str | None = None) -> Response:  # the query's name
    return render(request, "pages/console/login.html", next=_safe_next(next), error=None)


@router.post("/login", response_class=HTMLResponse)
async def login_submit(
    request: Request,
    state: StateDep,
    email: Annotated[str, Form(max_length=320)],
    password: Annotated[str, Form(max_length=1024)],
    totp: Annotated[str, Form(max_length=16)] = "",
    next: Annotated[str, Form(max_length=500)] = "",  # the form field's name
) -> Response:
    try:
        result, _public = await authenticate(request, state, email, password, totp or None)
    except (NotAuthenticated, RateLimited) as exc:
        return render(
            request,
            "pages/console/login.html",
            status_code=exc.status,
            next=_safe_next(next),
            email=email,
            error=exc.message,
            needs_totp=bool(exc.params.get("totp_required")),
        )
    response = RedirectResponse(_safe_next(next), status_code=303)
    assert result.session_token is not None  # noqa: S101  # authenticate checked it
    set_session_cookie(response, state, result.session_token)
    return response


@router.post("/logout")
async def logout_submit(request: Request, principal: ConsoleDep, state: StateDep) -> Response:
    raw = request.cookies.get(SESSION_COOKIE)

    def run() -> None:
        with state.transaction() as session:
            do_logout(session, raw or "")

    await run_in_threadpool(run)
    state.principals.clear()
    response = RedirectResponse("/agent/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


# -- inbox ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PickedFilters:
    """The filters an agent picked above the list, echoed back into the form."""

    status: str = ""
    priority: str = ""
    channel: str = ""
    kind: str = ""
    tag: str = ""
    q: str = ""
    sort: str = "-updated_at"

    def as_filter(self) -> TicketFilter:
        try:
            return TicketFilter(
                status=(TicketStatus(self.status),) if self.status else (),
                priority=(Priority(self.priority),) if self.priority else (),
                channel=(Channel(self.channel),) if self.channel else (),
                kind=(TicketKind(self.kind),) if self.kind else (),
                tag=self.tag.strip() or None,
                text=self.q.strip() or None,
            )
        except ValueError:
            raise ValidationFailed("unknown filter value") from None

    @property
    def query(self) -> str:
        from urllib.parse import urlencode

        pairs = {k: getattr(self, k) for k in ("q", "status", "priority", "channel", "kind", "tag")}
        if self.sort != "-updated_at":
            pairs["sort"] = self.sort
        return urlencode({k: v for k, v in pairs.items() if v})


def _picked(
    status: str = "",
    priority: str = "",
    channel: str = "",
    kind: str = "",
    tag: str = "",
    sort: str = "-updated_at",
    q: str = "",
) -> PickedFilters:
    return PickedFilters(
        q=q[:200],
        status=status[:16],
        priority=priority[:16],
        channel=channel[:16],
        kind=kind[:24],
        tag=tag[:64],
        sort=sort if sort in SORTS else "-updated_at",
    )


def _read(state: Any, fn: Any) -> Any:
    with state.read_sessions() as session:
        return fn(session)


@router.get("/inbox/{view}", response_class=HTMLResponse)
def inbox(
    request: Request,
    view: InboxView,
    principal: ConsoleDep,
    state: StateDep,
    status: Annotated[str, Query(max_length=16)] = "",
    priority: Annotated[str, Query(max_length=16)] = "",
    channel: Annotated[str, Query(max_length=16)] = "",
    kind: Annotated[str, Query(max_length=24)] = "",
    tag: Annotated[str, Query(max_length=64)] = "",
    sort: Annotated[str, Query(max_length=16)] = "-updated_at",
    cursor: Annotated[str | None, Query(max_length=500)] = None,
    q: Annotated[str, Query(max_length=200)] = "",
) -> Response:
    actor = principal.actor
    picked = _picked(status, priority, channel, kind, tag, sort, q)
    filters = combine(view_filter(view, actor), picked.as_filter())

    def read(session: Session) -> dict[str, Any]:
        agents, teams = list_agents(session), list_teams(session)
        page = inbox_page(
            session,
            actor,
            filters,
            sort=picked.sort,
            cursor=cursor,
            agents={a.id: a.name for a in agents},
            teams={t.id: t.name for t in teams},
        )
        return {
            "page": page,
            "counts": view_counts(session, actor) if not cursor else None,
            "agents": [a for a in agents if a.is_active],
            "teams": teams,
            "saved": list_saved_views(session, actor),
        }

    data = _read(state, read)
    rows = data["page"].rows
    number = normalize_ticket_number(picked.q) if picked.q else None
    if number and len(rows) == 1 and rows[0].ticket.number == number and not is_htmx(request):
        # A ticket number typed into the search box: straight to the ticket.
        return RedirectResponse(f"/agent/tickets/{number}", status_code=303)
    # Subjects and names are shown with PII masked, as the API shows them to agents;
    # the audited reveal is on the ticket page.
    context = console_context(principal) | data | {"view": view, "picked": picked}
    context["show"] = display_text
    if is_htmx(request):
        return render(request, "partials/console/inbox_rows.html", **context)
    return render(request, "pages/console/inbox.html", **context)


@router.get("/counts", response_class=HTMLResponse)
def counts(request: Request, principal: ConsoleDep, state: StateDep) -> Response:
    """The view counts alone: the live inbox refreshes them when tickets change."""
    data = _read(state, lambda s: view_counts(s, principal.actor))
    return render(
        request,
        "partials/console/view_nav.html",
        counts=data,
        view=request.query_params.get("view", ""),
    )


@router.post("/tickets/bulk", response_class=HTMLResponse)
def bulk(
    request: Request,
    principal: ConsoleDep,
    state: StateDep,
    numbers: Annotated[list[str], Form(max_length=MAX_BULK)],
    action: Annotated[str, Form(max_length=80)] = "",
    tag: Annotated[str, Form(max_length=64)] = "",
) -> Response:
    """One action on the checked tickets, all or nothing: a ticket that refuses it
    (closed, gone) rolls the whole batch back with its reason."""
    actor = principal.actor
    verb, _, arg = action.partition(":") if action else ("tag", "", tag)
    numbers = [n for n in dict.fromkeys(numbers) if n][:MAX_BULK]
    if not numbers:
        raise ValidationFailed("pick at least one ticket")
    with state.transaction() as session:
        tickets = [access_ticket_by_number(session, actor, n) for n in numbers]
        if verb == "assign":
            target = actor.id if arg == "me" else form_id(arg)
            for t in tickets:
                do_assign(session, actor, t, assignee_id=target)
        elif verb == "unassign":
            for t in tickets:
                do_assign(session, actor, t, assignee_id=None)
        elif verb == "team":
            for t in tickets:
                do_assign(session, actor, t, team_id=form_id(arg))
        elif verb == "status":
            try:
                new_status = TicketStatus(arg)
            except ValueError:
                raise ValidationFailed("unknown status") from None
            for t in tickets:
                if t.status is not new_status:
                    do_change_status(session, actor, t, new_status)
        elif verb == "tag":
            if not arg.strip():
                raise ValidationFailed("pick an action")
            for t in tickets:
                do_tag(session, actor, t, add=[arg])
        elif verb == "merge":
            # Into the oldest checked ticket: the customer's first report stays the case.
            target_ticket = min(tickets, key=lambda t: (t.created_at, t.id))
            for t in tickets:
                if t.id != target_ticket.id:
                    do_merge_tickets(session, actor, t, target_ticket)
        else:
            raise ValidationFailed("unknown bulk action")
    response = Response(status_code=204)
    response.headers["HX-Trigger"] = "inbox-changed"
    return response


def form_id(value: str) -> int:
    """A row id typed into a form field (a select's value): a positive 32-bit int."""
    try:
        number = int(value)
    except ValueError:
        raise ValidationFailed("not a number") from None
    if not 0 < number < 2**31:
        raise ValidationFailed("not a number")
    return number


@router.post("/views")
def save_view(
    principal: ConsoleDep,
    state: StateDep,
    name: Annotated[str, Form(max_length=80)],
    view: Annotated[str, Form(max_length=16)],
    query: Annotated[str, Form(max_length=2000)] = "",
) -> Response:
    """Save the inbox as it is filtered now under a name of the agent's choosing."""
    with state.transaction() as session:
        saved = do_save_view(session, principal.actor, name=name, view=view, query=query)
        target = f"/agent/inbox/{saved.view}" + (f"?{saved.query}" if saved.query else "")
    return RedirectResponse(target, status_code=303)


@router.post("/views/{view_id}/delete")
def delete_view(
    view_id: Annotated[int, Path(ge=1, lt=2**31)], principal: ConsoleDep, state: StateDep
) -> Response:
    with state.transaction() as session:
        do_delete_view(session, principal.actor, view_id)
    return RedirectResponse("/agent/inbox/mine", status_code=303)


# -- chat workspace ------------------------------------------------------------------


@router.get("/chats", response_class=HTMLResponse)
def chats(request: Request, principal: ConsoleDep, state: StateDep) -> Response:
    """The agent's live chats and the queue; presence is set over the socket."""
    actor = principal.actor

    def read(session: Session) -> dict[str, Any]:
        return {
            "mine": live_chats(session, actor),
            "queued": waiting_chats(session, actor),
            "names": agent_names(session),
            "show": display_text,
        }

    data = _read(state, read)
    template = (
        "partials/console/chat_lists.html" if is_htmx(request) else "pages/console/chats.html"
    )
    return render(request, template, **(console_context(principal) | data))
