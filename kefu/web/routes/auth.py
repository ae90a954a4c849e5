"""/api/v1/auth: password + TOTP login into a cookie session, and logout."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from kefu.actions.auth import LoginOutcome, LoginResult, do_login, do_logout
from kefu.domain.errors import NotAuthenticated, RateLimited
from kefu.web.deps import SESSION_COOKIE, AppState, StateDep
from kefu.web.schemas import AgentPublic, LoginRequest, LoginResponse

router = APIRouter(prefix="/auth", tags=["auth"])


def client_ip(request: Request) -> str:
    return request.client.host if request.client is not None else "unknown"


async def authenticate(
    request: Request, state: AppState, email: str, password: str, totp: str | None
) -> tuple[LoginResult, AgentPublic]:
    """Check a login under the rate limits; raise on any failure, or return the opened
    session (the API and the console's login form share this)."""
    settings = state.settings
    ip = client_ip(request)
    # Two limits: per address (spraying many accounts) and per account (one account
    # from many addresses); the lock-out on the agent row backs both up.
    for key in (f"login:ip:{ip}", f"login:email:{email.strip().lower()}"):
        wait = await state.limiter.hit(key, settings.login_rate_per_minute, 60)
        if wait:
            raise RateLimited("too many login attempts", retry_after_seconds=wait)

    def run() -> tuple[LoginResult, AgentPublic | None]:
        with state.sessions.begin() as session:
            result = do_login(
                session,
                email=email,
                password=password,
                totp_code=totp,
                max_failures=settings.login_max_failures,
                lockout_seconds=settings.login_lockout_seconds,
                session_seconds=settings.session_idle_seconds,
                user_agent=request.headers.get("user-agent", ""),
                ip=ip,
            )
            public = AgentPublic.of(result.agent) if result.agent is not None else None
            return result, public

    result, public = await run_in_threadpool(run)
    if result.outcome is LoginOutcome.LOCKED:
        raise NotAuthenticated("account locked after too many failed attempts")
    if result.outcome is LoginOutcome.TOTP_REQUIRED:
        raise NotAuthenticated("a one-time code is required", totp_required=True)
    if result.outcome is LoginOutcome.BAD_TOTP:
        raise NotAuthenticated("wrong one-time code", totp_required=True)
    if result.outcome is not LoginOutcome.OK or public is None or result.session_token is None:
        raise NotAuthenticated("wrong email or password")
    return result, public


def set_session_cookie(response: Response, state: AppState, token: str) -> None:
    response.set_cookie(
        SESSION_COOKIE,
        token,
        max_age=state.settings.session_idle_seconds,
        httponly=True,
        secure=state.settings.cookie_secure,
        samesite="lax",
        path="/",
    )


@router.post("/login", response_model=LoginResponse)
async def login(request: Request, body: LoginRequest, state: StateDep) -> Response:
    result, public = await authenticate(request, state, body.email, body.password, body.totp)
    assert result.csrf_token is not None  # noqa: S101  # set with the session token
    response = Response(
        LoginResponse(agent=public, csrf_token=result.csrf_token).model_dump_json(),
        media_type="application/json",
    )
    assert result.session_token is not None  # noqa: S101  # authenticate checked it
    set_session_cookie(response, state, result.session_token)
    return response


@router.post("/logout", status_code=204)
async def logout(request: Request, state: StateDep) -> Response:
    raw = request.cookies.get(SESSION_COOKIE)
    if raw:

        def run() -> None:
            with state.sessions.begin() as session:
                do_logout(session, raw)

        await run_in_threadpool(run)
        state.principals.clear()
    response = Response(status_code=204)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response
