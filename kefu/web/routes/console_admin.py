"""Console admin pages: macros (supervisors and admins) and the agents and teams list.

The API (``/api/v1/admin``) stays the way to script these; the pages are for people.
"""

from __future__ import annotations

import hashlib
import hmac
from datetime import timedelta
from typing import Annotated, Any

import pyotp
import segno
from fastapi import APIRouter, Form, Path, Request
from markupsafe import Markup
from sqlalchemy.orm import Session
from starlette.responses import HTMLResponse, RedirectResponse, Response

from kefu.actions.agents import (
    do_confirm_totp,
    do_create_agent,
    do_create_team,
    do_update_agent,
)
from kefu.actions.auth import do_create_api_token, do_revoke_api_token
from kefu.actions.inboxes import do_create_inbox, do_set_inbox_active
from kefu.actions.macros import check_new_macro_slug, do_delete_macro, do_save_macro
from kefu.actions.official_channels import do_add_official_channel, do_remove_official_channel
from kefu.actions.tickets import do_delete_tag, do_rename_tag
from kefu.domain.access import Role, can_administer, can_manage_macros
from kefu.domain.clock import utcnow
from kefu.domain.errors import KefuError, PermissionDenied, ValidationFailed
from kefu.domain.macros import VARIABLES
from kefu.domain.tickets import Channel
from kefu.domain.verify import ChannelKind
from kefu.models import Agent
from kefu.queries.articles import searches_without_results, unhelpful_articles
from kefu.queries.console import list_inboxes, open_counts_by_team, tag_counts
from kefu.queries.macros import list_macros
from kefu.queries.official_channels import (
    list_official_channels,
    top_impersonations,
    verify_lookup_counts,
)
from kefu.queries.people import (
    access_agent_by_id,
    list_agents,
    list_all_api_tokens,
    list_api_tokens,
    list_teams,
)
from kefu.web.deps import AppState, ConsoleDep, Principal, StateDep
from kefu.web.pages import render
from kefu.web.routes.console import console_context

router = APIRouter(prefix="/agent/admin", include_in_schema=False)


@router.get("/macros", response_class=HTMLResponse)
def macros_page(request: Request, principal: ConsoleDep, state: StateDep) -> Response:
    with state.read_sessions() as session:
        return render(
            request,
            "pages/console/macros.html",
            **console_context(principal),
            macros=list_macros(session, principal.actor),
            teams=list_teams(session),
            variables=VARIABLES,
            can_manage=can_manage_macros(principal.actor),
            error=None,
            form={},
        )


@router.post("/macros", response_class=HTMLResponse)
def save_macro(
    request: Request,
    principal: ConsoleDep,
    state: StateDep,
    slug: Annotated[str, Form(max_length=64)],
    title: Annotated[str, Form(max_length=200)],
    body: Annotated[str, Form(max_length=20_000)],
    team: Annotated[str, Form(max_length=12)] = "",
    locale: Annotated[str, Form(max_length=8)] = "zh-CN",
    replace: Annotated[bool, Form()] = False,
) -> Response:
    actor = principal.actor
    try:
        with state.transaction() as session:
            if not replace:
                check_new_macro_slug(session, slug)
            do_save_macro(
                session,
                actor,
                slug=slug,
                title=title,
                body=body,
                locale=locale,
                team_id=int(team) if team.isdigit() else None,
            )
    except PermissionDenied:
        raise
    except KefuError as exc:
        # Back to the form with what was typed and why it was refused.
        with state.read_sessions() as session:
            return render(
                request,
                "pages/console/macros.html",
                status_code=exc.status,
                **console_context(principal),
                macros=list_macros(session, actor),
                teams=list_teams(session),
                variables=VARIABLES,
                can_manage=True,
                error=exc.message,
                unknown=exc.params.get("unknown", []),
                form={"slug": slug, "title": title, "body": body, "team": team},
            )
    return RedirectResponse("/agent/admin/macros", status_code=303)


@router.post("/macros/{macro_id}/delete")
def delete_macro(
    macro_id: Annotated[int, Path(ge=1, lt=2**31)], principal: ConsoleDep, state: StateDep
) -> Response:
    with state.transaction() as session:
        do_delete_macro(session, principal.actor, macro_id)
    return RedirectResponse("/agent/admin/macros", status_code=303)


@router.get("/agents", response_class=HTMLResponse)
def agents_page(request: Request, principal: ConsoleDep, state: StateDep) -> Response:
    """The desk at a glance: agents, teams with their open tickets, inboxes, tags; admins
    add agents, teams and inboxes and switch them on and off here."""
    return _agents(request, principal, state)


account_router = APIRouter(prefix="/agent/account", include_in_schema=False)


def _sign_enrolment(secret_key: str, agent_id: int, totp_secret: str) -> str:
    message = f"totp-enrol:{agent_id}:{totp_secret}".encode()
    return hmac.new(secret_key.encode(), message, hashlib.sha256).hexdigest()


def _account_page(
    request: Request,
    principal: Principal,
    state: AppState,
    *,
    error: str | None = None,
    new_token: str | None = None,
) -> Response:
    agent = principal.agent
    assert agent is not None  # noqa: S101  # ConsoleDep guarantees an agent
    # A fresh candidate each time; it only counts once a code from the app matches it.
    candidate = pyotp.random_base32()
    uri = pyotp.TOTP(candidate).provisioning_uri(name=agent.email, issuer_name="kefu")
    qr = segno.make(uri, error="m").svg_inline(scale=4, dark="#1d2330")
    with state.read_sessions() as session:
        tokens = list_api_tokens(session, agent.id)
    return render(
        request,
        "pages/console/account.html",
        status_code=422 if error else 200,
        **console_context(principal),
        enrolled=agent.totp_secret is not None,
        candidate=candidate,
        signature=_sign_enrolment(state.secret_key, agent.id, candidate),
        uri=uri,
        qr=Markup(qr),  # noqa: S704  # segno's SVG of our own URI, no user input
        error=error,
        tokens=tokens,
        new_token=new_token,
        now=utcnow(),
    )


@account_router.get("", response_class=HTMLResponse)
def account_page(request: Request, principal: ConsoleDep, state: StateDep) -> Response:
    return _account_page(request, principal, state)


@account_router.post("/totp", response_class=HTMLResponse)
def enrol_totp(
    request: Request,
    principal: ConsoleDep,
    state: StateDep,
    secret: Annotated[str, Form(max_length=64)],
    signature: Annotated[str, Form(max_length=64)],
    code: Annotated[str, Form(max_length=10)],
) -> Response:
    agent = principal.agent
    assert agent is not None  # noqa: S101  # ConsoleDep guarantees an agent
    # The secret came back from our own page: check it is the one we offered this agent.
    expected = _sign_enrolment(state.secret_key, agent.id, secret)
    if not hmac.compare_digest(expected, signature):
        raise ValidationFailed("invalid enrolment", field="secret")
    try:
        with state.transaction() as session:
            me = session.get(Agent, agent.id)
            if me is None:
                raise PermissionDenied("unknown agent")
            do_confirm_totp(session, principal.actor, me, secret=secret, code=code)
    except ValidationFailed as exc:
        return _account_page(request, principal, state, error=exc.message)
    state.principals.clear()
    return RedirectResponse("/agent/account?enrolled=1", status_code=303)


@router.get("/helpcenter", response_class=HTMLResponse)
def helpcenter_page(request: Request, principal: ConsoleDep, state: StateDep) -> Response:
    """What customers looked for in the help center and did not find, and the articles
    they voted unhelpful: where to write or fix an article next."""
    # Supervisors and admins review the help center; agents write articles via the API.
    if not principal.actor.is_supervisor_or_admin:
        raise PermissionDenied("supervisors and admins only")
    with state.read_sessions() as session:
        return render(
            request,
            "pages/console/helpcenter.html",
            **console_context(principal),
            gaps=searches_without_results(session),
            unhelpful=unhelpful_articles(session),
        )


@router.get("/channels", response_class=HTMLResponse)
def channels_page(request: Request, principal: ConsoleDep, state: StateDep) -> Response:
    """The official-channel registry behind 防骗验证, and the fakes customers checked."""
    return _channels(request, principal, state)


def _channels(
    request: Request,
    principal: Principal,
    state: AppState,
    *,
    error: str | None = None,
    form: dict[str, str] | None = None,
    status_code: int = 200,
) -> Response:
    with state.read_sessions() as session:
        return render(
            request,
            "pages/console/channels.html",
            status_code=status_code,
            **console_context(principal),
            channels=list_official_channels(session),
            kinds=list(ChannelKind),
            counts=verify_lookup_counts(session),
            fakes=top_impersonations(session, since=utcnow() - timedelta(days=30)),
            can_manage=can_administer(principal.actor),
            error=error,
            form=form or {},
        )


@router.post("/channels", response_class=HTMLResponse)
def add_channel(
    request: Request,
    principal: ConsoleDep,
    state: StateDep,
    kind: Annotated[ChannelKind, Form()],
    value: Annotated[str, Form(max_length=320)],
    label: Annotated[str, Form(max_length=200)] = "",
) -> Response:
    try:
        with state.transaction() as session:
            do_add_official_channel(session, principal.actor, kind=kind, value=value, label=label)
    except PermissionDenied:
        raise
    except KefuError as exc:
        form = {"kind": kind.value, "value": value, "label": label}
        return _channels(
            request, principal, state, error=exc.message, form=form, status_code=exc.status
        )
    return RedirectResponse("/agent/admin/channels", status_code=303)


@router.post("/channels/{channel_id}/delete")
def remove_channel(
    channel_id: Annotated[int, Path(ge=1, lt=2**31)], principal: ConsoleDep, state: StateDep
) -> Response:
    with state.transaction() as session:
        do_remove_official_channel(session, principal.actor, channel_id)
    return RedirectResponse("/agent/admin/channels", status_code=303)


@account_router.post("/tokens", response_class=HTMLResponse)
def create_token(
    request: Request,
    principal: ConsoleDep,
    state: StateDep,
    name: Annotated[str, Form(max_length=200)],
    scopes: Annotated[list[str], Form(max_length=3)] = [],  # noqa: B006  # FastAPI copies defaults
) -> Response:
    """A new API token for the agent's scripts; shown once, stored only as a hash."""
    agent = principal.agent
    assert agent is not None  # noqa: S101  # ConsoleDep guarantees an agent
    with state.transaction() as session:
        me = session.get(Agent, agent.id)
        if me is None:
            raise PermissionDenied("unknown agent")
        created = do_create_api_token(
            session, principal.actor, me, name=name, scopes=scopes or ["read"]
        )
    response = _account_page(request, principal, state, new_token=created.raw)
    response.headers["Cache-Control"] = "no-store"  # the raw token is on this page only
    return response


@account_router.post("/tokens/{token_id}/revoke")
def revoke_token(
    token_id: Annotated[int, Path(ge=1, lt=2**31)], principal: ConsoleDep, state: StateDep
) -> Response:
    with state.transaction() as session:
        do_revoke_api_token(session, principal.actor, token_id)
    state.principals.clear()
    return RedirectResponse("/agent/account", status_code=303)


def _agents(
    request: Request,
    principal: Principal,
    state: AppState,
    *,
    error: str | None = None,
    form: dict[str, str] | None = None,
    status_code: int = 200,
) -> Response:
    admin = can_administer(principal.actor)
    with state.read_sessions() as session:
        return render(
            request,
            "pages/console/agents.html",
            status_code=status_code,
            **console_context(principal),
            agents=list_agents(session),
            teams=list_teams(session),
            open_by_team=open_counts_by_team(session),
            inboxes=list_inboxes(session),
            tags=tag_counts(session),
            # Every agent's tokens are the admins' to see (and revoke); never the secret.
            all_tokens=list_all_api_tokens(session, principal.actor) if admin else [],
            channels=list(Channel),
            roles=list(Role),
            can_manage=admin,
            error=error,
            form=form or {},
            now=utcnow(),
        )


def _admin_write(
    request: Request, principal: Principal, state: AppState, form: dict[str, str], work: Any
) -> Response:
    """Run an admin change; on a refusal, the page again with the form and the reason."""
    try:
        with state.transaction() as session:
            work(session)
    except PermissionDenied:
        raise
    except KefuError as exc:
        return _agents(
            request, principal, state, error=exc.message, form=form, status_code=exc.status
        )
    state.principals.clear()  # roles, teams and activity are part of who is calling
    return RedirectResponse("/agent/admin/agents", status_code=303)


@router.post("/agents", response_class=HTMLResponse)
def create_agent(
    request: Request,
    principal: ConsoleDep,
    state: StateDep,
    email: Annotated[str, Form(max_length=320)],
    name: Annotated[str, Form(max_length=200)],
    password: Annotated[str, Form(max_length=1024)],
    role: Annotated[Role, Form()] = Role.AGENT,
    team_ids: Annotated[list[int], Form(max_length=50)] = [],  # noqa: B006  # FastAPI copies defaults
) -> Response:
    """A new agent with a first password to hand over (they change it and enrol 2FA)."""
    return _admin_write(
        request,
        principal,
        state,
        {"email": email, "name": name, "role": role.value},
        lambda s: do_create_agent(
            s,
            principal.actor,
            email=email,
            name=name,
            role=role,
            password=password,
            team_ids=[t for t in team_ids if 0 < t < 2**31],
        ),
    )


@router.post("/agents/{agent_id}", response_class=HTMLResponse)
def update_agent(
    request: Request,
    agent_id: Annotated[int, Path(ge=1, lt=2**31)],
    principal: ConsoleDep,
    state: StateDep,
    is_active: Annotated[bool | None, Form()] = None,
    can_view_sensitive: Annotated[bool | None, Form()] = None,
) -> Response:
    """Deactivate or reactivate an agent; grant or take back the sensitive-data reveal."""

    def work(session: Session) -> None:
        agent = access_agent_by_id(session, principal.actor, agent_id)
        do_update_agent(
            session,
            principal.actor,
            agent,
            is_active=is_active,
            can_view_sensitive=can_view_sensitive,
        )

    return _admin_write(request, principal, state, {}, work)


@router.post("/teams", response_class=HTMLResponse)
def create_team(
    request: Request,
    principal: ConsoleDep,
    state: StateDep,
    slug: Annotated[str, Form(max_length=64)],
    name: Annotated[str, Form(max_length=200)],
) -> Response:
    return _admin_write(
        request,
        principal,
        state,
        {"team_slug": slug, "team_name": name},
        lambda s: do_create_team(s, principal.actor, slug=slug, name=name),
    )


@router.post("/inboxes", response_class=HTMLResponse)
def create_inbox(
    request: Request,
    principal: ConsoleDep,
    state: StateDep,
    name: Annotated[str, Form(max_length=200)],
    channel: Annotated[Channel, Form()],
    address: Annotated[str, Form(max_length=320)] = "",
    team: Annotated[str, Form(max_length=12)] = "",
) -> Response:
    return _admin_write(
        request,
        principal,
        state,
        {"inbox_name": name, "inbox_address": address},
        lambda s: do_create_inbox(
            s,
            principal.actor,
            name=name,
            channel=channel,
            address=address,
            team_id=int(team) if team.isdigit() and int(team) < 2**31 else None,
        ),
    )


@router.post("/inboxes/{inbox_id}", response_class=HTMLResponse)
def toggle_inbox(
    request: Request,
    inbox_id: Annotated[int, Path(ge=1, lt=2**31)],
    principal: ConsoleDep,
    state: StateDep,
    active: Annotated[bool, Form()],
) -> Response:
    return _admin_write(
        request,
        principal,
        state,
        {},
        lambda s: do_set_inbox_active(s, principal.actor, inbox_id, active=active),
    )


@router.post("/tags/rename", response_class=HTMLResponse)
def rename_tag(
    request: Request,
    principal: ConsoleDep,
    state: StateDep,
    tag: Annotated[str, Form(max_length=64)],
    new_name: Annotated[str, Form(max_length=200)],
) -> Response:
    """Rename a tag on every ticket (into a tag in use: the two merge); admins only."""
    return _admin_write(
        request,
        principal,
        state,
        {},
        lambda s: do_rename_tag(s, principal.actor, tag, new_name),
    )


@router.post("/tags/delete", response_class=HTMLResponse)
def delete_tag(
    request: Request,
    principal: ConsoleDep,
    state: StateDep,
    tag: Annotated[str, Form(max_length=64)],
) -> Response:
    """Take a tag off every ticket; admins only."""
    return _admin_write(
        request, principal, state, {}, lambda s: do_delete_tag(s, principal.actor, tag)
    )


@router.post("/tokens/{token_id}/revoke")
def revoke_any_token(
    token_id: Annotated[int, Path(ge=1, lt=2**31)], principal: ConsoleDep, state: StateDep
) -> Response:
    """An admin revokes any agent's token (a leaked script key, someone who left)."""
    if not can_administer(principal.actor):
        raise PermissionDenied("admins only")
    with state.transaction() as session:
        do_revoke_api_token(session, principal.actor, token_id)
    state.principals.clear()  # the revoked token stops working here at once
    return RedirectResponse("/agent/admin/agents#all-tokens", status_code=303)
