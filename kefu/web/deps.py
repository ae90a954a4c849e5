"""Dependencies: the app state, the request's transaction, and who is calling.

The request owns the transaction. Reads (``ReadDbDep``) use a read-only session that on
SQLite takes no write lock, so readers run side by side. A write runs start to commit
inside one call, ``with state.transaction() as db:`` in the route, which FastAPI runs
in one worker thread: SQLite's single write lock is then held only for the work
itself, never across trips through the event loop. The commit happens before the
route returns, so a 2xx means it is stored.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Annotated

import jwt
from fastapi import Depends, Request
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from starlette.concurrency import run_in_threadpool

from kefu.actions.auth import (
    TOKEN_PREFIX,
    agent_actor,
    check_csrf,
    do_touch_agent_session,
    do_touch_api_token,
    needs_touch,
    token_hash,
)
from kefu.actions.contacts import ContactData, do_upsert_contact_from_identity
from kefu.domain.access import SYSTEM, Actor, ActorKind
from kefu.domain.errors import NotAuthenticated, PermissionDenied
from kefu.events import EventDispatcher
from kefu.infra.files import FileStore
from kefu.infra.ratelimit import RateLimiter
from kefu.models import Agent, AgentSession, ApiToken, Contact
from kefu.queries.articles import ArticleSearch
from kefu.queries.people import get_agent_by_api_token, get_agent_session
from kefu.settings import Settings

SESSION_COOKIE = "kefu_session"
CSRF_HEADER = "x-csrf-token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


@dataclass
class AppState:
    settings: Settings
    sessions: sessionmaker[Session]
    read_sessions: sessionmaker[Session]
    dispatcher: EventDispatcher
    files: FileStore
    limiter: RateLimiter
    secret_key: str
    search: ArticleSearch = field(init=False)
    principals: PrincipalCache = field(default_factory=lambda: PrincipalCache())

    def __post_init__(self) -> None:
        # Searches read through the lock-free read sessions.
        self.search = ArticleSearch(self.read_sessions)

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """A write transaction, committed when the block ends without an error."""
        with self.sessions.begin() as session:
            yield session


# Dependencies that do no I/O are ``async def``: FastAPI runs a sync dependency in a
# worker thread, and on this 2-core box each such hop costs more than the lookup.
async def get_state(request: Request) -> AppState:
    state: AppState = request.app.state.kefu
    return state


StateDep = Annotated[AppState, Depends(get_state)]


async def get_read_db(state: StateDep) -> AsyncIterator[Session]:
    # Creating a session does no I/O; its queries run in the route's worker thread.
    session = state.read_sessions()
    try:
        yield session
    finally:
        await run_in_threadpool(session.close)


ReadDbDep = Annotated[Session, Depends(get_read_db, scope="function")]


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling and how: the actor for permission checks, plus the credential."""

    actor: Actor
    agent: Agent | None = None
    token: ApiToken | None = None
    agent_session: AgentSession | None = None

    @property
    def key(self) -> str:
        """A stable key for idempotency records and rate limits."""
        return f"{self.actor.kind.value}:{self.actor.id}"

    def has_scope(self, scope: str) -> bool:
        if self.token is None:
            return True  # sessions carry the agent's full rights
        return scope in self.token.scopes


def _bearer(request: Request) -> str | None:
    header = request.headers.get("authorization")
    if not header:
        return None
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        raise NotAuthenticated("malformed Authorization header")
    return value.strip()


def _contact_from_jwt(state: AppState, raw: str) -> Principal:
    settings = state.settings
    if settings.contact_jwt_key is None:
        raise NotAuthenticated("identity tokens are not configured")
    try:
        claims = jwt.decode(
            raw,
            settings.contact_jwt_key.get_secret_value(),
            algorithms=[settings.contact_jwt_algorithm],
            audience=settings.contact_jwt_audience,
            options={"require": ["sub", "exp"]},
            leeway=30,
        )
    except jwt.PyJWTError:
        raise NotAuthenticated("invalid identity token") from None
    sub = claims.get("sub")
    if not isinstance(sub, str):
        raise NotAuthenticated("invalid identity token")
    email = claims.get("email")
    name = claims.get("name")
    level = claims.get("kyc_level")
    data = ContactData(
        exchange_uid=sub,
        email=email if isinstance(email, str) else None,
        name=name if isinstance(name, str) else None,
        verification_level=level if isinstance(level, int) and 0 <= level <= 3 else None,
    )
    with state.read_sessions() as db:
        known = db.scalar(select(Contact).where(Contact.exchange_uid == sub))
    if known is not None and _identity_unchanged(known, data):
        return Principal(actor=Actor(kind=ActorKind.CONTACT, id=known.id))
    # First sight of this customer, or the exchange changed their details: write.
    with state.transaction() as wdb:
        contact = do_upsert_contact_from_identity(wdb, SYSTEM, data)
        contact_id = contact.id
    return Principal(actor=Actor(kind=ActorKind.CONTACT, id=contact_id))


def _identity_unchanged(contact: Contact, data: ContactData) -> bool:
    return all(
        getattr(data, name) is None or getattr(data, name) == getattr(contact, name)
        for name in ("email", "name", "verification_level")
    ) and (data.email is None or data.email.lower() == (contact.email or ""))


class PrincipalCache:
    """Recently resolved callers by credential hash, for a few seconds.

    Resolving a token costs a database round trip and a worker-thread hop on every
    request. A revoked token, a logout or an agent change clears this process's cache
    at once; other ``kefu serve`` nodes notice within ``TTL_SECONDS``.
    """

    TTL_SECONDS = 10.0
    MAX_ENTRIES = 10_000

    def __init__(self) -> None:
        self._entries: dict[str, tuple[float, Principal]] = {}

    def get(self, key: str) -> Principal | None:
        hit = self._entries.get(key)
        if hit is None or hit[0] < time.monotonic():
            return None
        return hit[1]

    def put(self, key: str, principal: Principal) -> None:
        if len(self._entries) >= self.MAX_ENTRIES:
            self._entries.clear()
        self._entries[key] = (time.monotonic() + self.TTL_SECONDS, principal)

    def clear(self) -> None:
        self._entries.clear()


async def get_principal(request: Request, state: StateDep) -> Principal:
    """Who is calling: from the cache, or resolved in a worker thread."""
    header = request.headers.get("authorization")
    cookie = request.cookies.get(SESSION_COOKIE)
    key = token_hash(header or ("cookie:" + cookie if cookie else ""))
    cached = state.principals.get(key) if (header or cookie) else None
    if cached is None:
        cached = await run_in_threadpool(resolve_principal, request, state)
        state.principals.put(key, cached)
    # Cookies ride along on cross-site requests; a state change needs the CSRF token.
    if cached.agent_session is not None and request.method not in SAFE_METHODS:
        check_csrf(cached.agent_session, request.headers.get(CSRF_HEADER))
    return cached


def resolve_principal(request: Request, state: AppState) -> Principal:
    """Who is calling. Looked up in its own short read session, closed before any
    write the route makes; the rare bookkeeping writes (last-used stamps, a contact's
    first identity token) get their own transaction afterwards."""
    raw = _bearer(request)
    cookie = request.cookies.get(SESSION_COOKIE) if raw is None else None
    return principal_from_credentials(state, raw, cookie)


def principal_from_credentials(state: AppState, raw: str | None, cookie: str | None) -> Principal:
    """Who holds a bearer token (agent API token or the exchange's identity JWT) or an
    agent session cookie. Also used by the chat socket, whose token comes in a frame."""
    if raw is None and not cookie:
        raise NotAuthenticated("authentication required")
    if raw is not None and raw.startswith(TOKEN_PREFIX):
        with state.read_sessions() as db:
            found = get_agent_by_api_token(db, token_hash(raw))
        if found is None:
            raise NotAuthenticated("invalid or expired token")
        agent, token = found
        if needs_touch(token.last_used_at):
            with state.transaction() as wdb:
                do_touch_api_token(wdb, token.id)
        return Principal(actor=agent_actor(agent), agent=agent, token=token)
    if raw is not None:
        if raw.count(".") != 2:
            raise NotAuthenticated("invalid or expired token")
        return _contact_from_jwt(state, raw)
    assert cookie is not None  # noqa: S101  # checked above
    with state.read_sessions() as db:
        found_session = get_agent_session(
            db, token_hash(cookie), state.settings.session_idle_seconds
        )
    if found_session is None:
        raise NotAuthenticated("session expired")
    agent, agent_session = found_session
    if needs_touch(agent_session.last_seen_at):
        with state.transaction() as wdb:
            do_touch_agent_session(wdb, agent_session.id)
    return Principal(actor=agent_actor(agent), agent=agent, agent_session=agent_session)


PrincipalDep = Annotated[Principal, Depends(get_principal)]


async def require_agent(principal: PrincipalDep, request: Request) -> Principal:
    if principal.agent is None:
        raise PermissionDenied("agents only")
    scope = "read" if request.method in SAFE_METHODS else "write"
    if not principal.has_scope(scope):
        raise PermissionDenied("token lacks the scope", scope=scope)
    return principal


async def require_admin(principal: PrincipalDep) -> Principal:
    if principal.agent is None or not principal.actor.is_admin:
        raise PermissionDenied("admins only")
    if not principal.has_scope("admin"):
        raise PermissionDenied("token lacks the scope", scope="admin")
    return principal


class LoginRequired(NotAuthenticated):
    """A console page without a live session: the edge answers with the login page."""


async def require_console_agent(request: Request, state: StateDep) -> Principal:
    """The agent behind a console page: session cookie only (bearer tokens are for the
    API), and on a state change the CSRF token from the header HTMX sends or from a
    plain form's ``_csrf`` field."""
    cookie = request.cookies.get(SESSION_COOKIE)
    if not cookie:
        raise LoginRequired("authentication required")
    key = token_hash("cookie:" + cookie)
    principal = state.principals.get(key)
    if principal is None:
        try:
            principal = await run_in_threadpool(principal_from_credentials, state, None, cookie)
        except NotAuthenticated:
            raise LoginRequired("session expired") from None
        state.principals.put(key, principal)
    if principal.agent is None or principal.agent_session is None:
        raise LoginRequired("authentication required")
    if request.method not in SAFE_METHODS:
        presented = request.headers.get(CSRF_HEADER)
        if presented is None:
            field_value = (await request.form()).get("_csrf")
            presented = field_value if isinstance(field_value, str) else None
        check_csrf(principal.agent_session, presented)
    return principal


AgentDep = Annotated[Principal, Depends(require_agent)]
ConsoleDep = Annotated[Principal, Depends(require_console_agent)]
AdminDep = Annotated[Principal, Depends(require_admin)]
