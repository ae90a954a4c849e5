"""Credentials: password + TOTP login with lock-out, browser sessions, API tokens.

Secrets handed out (session cookies, API tokens) are random and only their SHA-256 is
stored, so a database leak does not leak a usable credential.
See docs/subsystems/auth.md.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

import pyotp
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from kefu import events
from kefu.actions.history import record_event
from kefu.domain.access import Actor, ActorKind, Role
from kefu.domain.clock import utcnow
from kefu.domain.errors import NotFound, PermissionDenied, ValidationFailed
from kefu.models import Agent, AgentSession, ApiToken

TOKEN_PREFIX = "kefu_"  # noqa: S105  # a public marker, not a secret
API_SCOPES = frozenset({"read", "write", "admin"})
_hasher = PasswordHasher()
# Verified against when the email is unknown, so a miss costs the same time as a hit.
_DUMMY_HASH = _hasher.hash("kefu-timing-equaliser")


def token_hash(raw: str) -> str:
    return hashlib.sha256(raw.encode("utf-8", "surrogatepass")).hexdigest()


class LoginOutcome(StrEnum):
    OK = "ok"
    BAD_CREDENTIALS = "bad_credentials"
    TOTP_REQUIRED = "totp_required"
    BAD_TOTP = "bad_totp"
    LOCKED = "locked"


@dataclass(frozen=True, slots=True)
class LoginResult:
    outcome: LoginOutcome
    agent: Agent | None = None
    session_token: str | None = None
    csrf_token: str | None = None
    locked_until: datetime | None = None


def agent_actor(agent: Agent) -> Actor:
    return Actor(
        kind=ActorKind.AGENT,
        id=agent.id,
        role=agent.role,
        team_ids=agent.team_ids,
        can_view_sensitive=agent.can_view_sensitive,
    )


def _verify_password(agent: Agent | None, password: str) -> bool:
    stored = agent.password_hash if agent is not None and agent.password_hash else _DUMMY_HASH
    ok: bool
    try:
        ok = _hasher.verify(stored, password)
    except (VerificationError, InvalidHashError):
        ok = False
    return ok and agent is not None and agent.password_hash is not None


def verify_totp(secret: str, code: str) -> bool:
    code = code.strip().replace(" ", "")
    if not code.isdigit() or len(code) != 6:
        return False
    # One step either side tolerates a phone clock that is a little off.
    return pyotp.TOTP(secret).verify(code, valid_window=1)


def do_login(
    session: Session,
    *,
    email: str,
    password: str,
    totp_code: str | None,
    max_failures: int,
    lockout_seconds: int,
    session_seconds: int,
    user_agent: str = "",
    ip: str = "",
) -> LoginResult:
    """Check the credentials and open a session. Failures are recorded, not raised,
    because the failure count must be committed even though the login fails."""
    now = utcnow()
    agent = session.scalar(select(Agent).where(Agent.email == email.strip().lower()))
    password_ok = _verify_password(agent, password)
    if agent is None or not agent.is_active:
        return LoginResult(LoginOutcome.BAD_CREDENTIALS)
    actor = agent_actor(agent)
    if agent.locked_until is not None and agent.locked_until > now:
        return LoginResult(LoginOutcome.LOCKED, locked_until=agent.locked_until)
    if not password_ok:
        return _fail(session, agent, actor, "password", max_failures, lockout_seconds)
    needs_totp = agent.totp_secret is not None or agent.role is Role.ADMIN
    if needs_totp:
        if agent.totp_secret is None:
            # An admin without TOTP cannot log in to pages; enrol with `kefu createadmin`.
            return LoginResult(LoginOutcome.TOTP_REQUIRED, agent=agent)
        if not totp_code:
            return LoginResult(LoginOutcome.TOTP_REQUIRED, agent=agent)
        if not verify_totp(agent.totp_secret, totp_code):
            return _fail(session, agent, actor, "totp", max_failures, lockout_seconds)
    agent.failed_logins = 0
    agent.locked_until = None
    agent.last_login_at = now
    raw = secrets.token_urlsafe(32)
    csrf = secrets.token_urlsafe(24)
    session.add(
        AgentSession(
            token_hash=token_hash(raw),
            csrf_token=csrf,
            agent_id=agent.id,
            expires_at=now + timedelta(seconds=session_seconds),
            user_agent=user_agent[:300],
            ip=ip[:64],
        )
    )
    session.flush()
    record_event(session, actor, events.AGENT_LOGGED_IN, data={"agent_id": agent.id, "ip": ip})
    return LoginResult(LoginOutcome.OK, agent=agent, session_token=raw, csrf_token=csrf)


def _fail(
    session: Session,
    agent: Agent,
    actor: Actor,
    reason: str,
    max_failures: int,
    lockout_seconds: int,
) -> LoginResult:
    agent.failed_logins += 1
    record_event(
        session,
        actor,
        events.AGENT_LOGIN_FAILED,
        data={"agent_id": agent.id, "reason": reason, "failures": agent.failed_logins},
    )
    if agent.failed_logins >= max_failures:
        agent.locked_until = utcnow() + timedelta(seconds=lockout_seconds)
        agent.failed_logins = 0
        record_event(session, actor, events.AGENT_LOCKED, data={"agent_id": agent.id})
        session.flush()
        return LoginResult(LoginOutcome.LOCKED, locked_until=agent.locked_until)
    session.flush()
    outcome = LoginOutcome.BAD_TOTP if reason == "totp" else LoginOutcome.BAD_CREDENTIALS
    return LoginResult(outcome)


def do_logout(session: Session, raw_session_token: str) -> None:
    session.execute(
        delete(AgentSession).where(AgentSession.token_hash == token_hash(raw_session_token))
    )


def check_csrf(agent_session: AgentSession, presented: str | None) -> None:
    if presented is None or not hmac.compare_digest(agent_session.csrf_token, presented):
        raise PermissionDenied("CSRF token missing or wrong")


@dataclass(frozen=True, slots=True)
class CreatedToken:
    token: ApiToken
    raw: str


def do_create_api_token(
    session: Session,
    actor: Actor,
    agent: Agent,
    *,
    name: str,
    scopes: list[str] | None = None,
    expires_at: datetime | None = None,
) -> CreatedToken:
    if actor.id != agent.id and actor.kind is ActorKind.AGENT and not actor.is_admin:
        raise PermissionDenied("cannot create tokens for another agent")
    scopes = sorted(set(scopes or ["read", "write"]))
    if not set(scopes) <= API_SCOPES:
        raise ValidationFailed("unknown scope", field="scopes")
    if "admin" in scopes and agent.role is not Role.ADMIN:
        raise ValidationFailed("admin scope needs an admin", field="scopes")
    secret = secrets.token_urlsafe(32)
    raw = TOKEN_PREFIX + secret
    token = ApiToken(
        agent_id=agent.id,
        name=" ".join(name.split())[:200] or "token",
        prefix=raw[: len(TOKEN_PREFIX) + 6],
        token_hash=token_hash(raw),
        scopes=scopes,
        expires_at=expires_at,
    )
    session.add(token)
    session.flush()
    record_event(
        session, actor, events.TOKEN_CREATED, data={"token_id": token.id, "agent_id": agent.id}
    )
    return CreatedToken(token=token, raw=raw)


def do_revoke_api_token(session: Session, actor: Actor, token_id: int) -> None:
    token = session.get(ApiToken, token_id)
    # Someone else's token is reported as missing, not as forbidden: no enumeration.
    if token is None or (token.agent_id != actor.id and not actor.is_admin):
        raise NotFound("token not found")
    if token.revoked_at is None:
        token.revoked_at = utcnow()
        session.flush()
        # Whose token it was: an admin may revoke anyone's, and the audit says whose.
        record_event(
            session,
            actor,
            events.TOKEN_REVOKED,
            data={"token_id": token.id, "agent_id": token.agent_id},
        )


# Last-used stamps are written at most this often: a write on every request would
# turn every read into a writer contending for SQLite's single write lock.
TOUCH_INTERVAL = timedelta(minutes=5)


def needs_touch(last: datetime | None) -> bool:
    return last is None or utcnow() - last > TOUCH_INTERVAL


def do_touch_api_token(session: Session, token_id: int) -> None:
    session.execute(update(ApiToken).where(ApiToken.id == token_id).values(last_used_at=utcnow()))


def do_touch_agent_session(session: Session, agent_session_id: int) -> None:
    session.execute(
        update(AgentSession)
        .where(AgentSession.id == agent_session_id)
        .values(last_seen_at=utcnow())
    )
