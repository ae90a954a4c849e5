"""Errors as ``application/problem+json`` (RFC 9457) with a zh-CN or en ``detail``.

Every failure a client can cause ends here as a 4xx; anything else is a 500 that is
logged with its traceback and shown to the client without internals.
"""

from __future__ import annotations

import logging
from html import escape
from typing import Any
from urllib.parse import quote

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from sqlalchemy.exc import IntegrityError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import HTMLResponse, RedirectResponse, Response

from kefu.domain.errors import KefuError, RateLimited
from kefu.infra.i18n import gettext_for, negotiate
from kefu.web.pages import render, request_locale

log = logging.getLogger(__name__)

PROBLEM_TYPE = "https://kefu.dev/problems/"
PROBLEM_JSON = "application/problem+json"

_TITLES = {
    400: "Bad request",
    401: "Not authenticated",
    403: "Permission denied",
    404: "Not found",
    405: "Method not allowed",
    409: "Conflict",
    413: "Payload too large",
    415: "Unsupported media type",
    422: "Validation failed",
    429: "Too many requests",
    500: "Internal error",
}


def problem_body(status: int, code: str, detail: str, locale: str, **extra: Any) -> dict[str, Any]:
    title = _TITLES.get(status, "Error")
    return {
        "type": PROBLEM_TYPE + code,
        "title": gettext_for(locale, title),
        "status": status,
        "detail": gettext_for(locale, detail),
        **extra,
    }


def problem_response(
    request: Request | None,
    status: int,
    code: str,
    detail: str,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> Response:
    locale = negotiate(request.headers.get("accept-language")) if request is not None else "zh-CN"
    body = problem_body(status, code, detail, locale, **extra)
    return Response(
        orjson.dumps(body),
        status_code=status,
        media_type=PROBLEM_JSON,
        headers={"Content-Language": locale, **(headers or {})},
    )


def _is_console(request: Request) -> bool:
    return request.url.path == "/agent" or request.url.path.startswith("/agent/")


def console_error(request: Request, status: int, detail: str, *, login: bool = False) -> Response:
    """The console's answer to a failure: the login page when the session is gone, a
    flash fragment for an HTMX request (swapped into ``#flash``), an error page else."""
    is_htmx = request.headers.get("hx-request") == "true"
    if login:
        if is_htmx:
            return Response(status_code=401, headers={"HX-Redirect": "/agent/login"})
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return RedirectResponse(f"/agent/login?next={quote(target, safe='')}", status_code=303)
    locale = request_locale(request)
    text = gettext_for(locale, detail)
    if is_htmx:
        return HTMLResponse(
            f'<p class="flash flash-error" role="alert">{escape(text)}</p>',
            status_code=status,
            headers={"HX-Retarget": "#flash", "HX-Reswap": "innerHTML"},
        )
    return render(request, "pages/console/error.html", status_code=status, detail=text)


def _jsonable(params: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in params.items() if isinstance(v, str | int | float | bool | None)}


async def _kefu_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, KefuError)  # noqa: S101  # registered for KefuError only
    if _is_console(request):
        return console_error(request, exc.status, exc.message, login=exc.status == 401)
    headers = {}
    if isinstance(exc, RateLimited):
        headers["Retry-After"] = str(exc.retry_after_seconds)
    if exc.status == 401:
        headers["WWW-Authenticate"] = 'Bearer realm="kefu"'
    return problem_response(
        request, exc.status, exc.code, exc.message, headers=headers, **_jsonable(exc.params)
    )


async def _validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)  # noqa: S101  # registered for it only
    if _is_console(request):
        return console_error(request, 422, "The request is not valid.")
    errors = []
    for err in exc.errors()[:20]:
        loc = [str(p) for p in err.get("loc", ())]
        errors.append({"loc": loc, "msg": str(err.get("msg", ""))[:200], "type": err.get("type")})
    return problem_response(
        request, 422, "validation-failed", "The request is not valid.", errors=errors
    )


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)  # noqa: S101  # registered for it only
    status = exc.status_code
    code = {404: "not-found", 405: "method-not-allowed", 401: "not-authenticated"}.get(
        status, "http-error"
    )
    detail = exc.detail if isinstance(exc.detail, str) else _TITLES.get(status, "Error")
    if _is_console(request):
        return console_error(request, status, detail)
    return problem_response(request, status, code, detail, headers=dict(exc.headers or {}))


async def _integrity_error(request: Request, exc: Exception) -> Response:
    # A uniqueness race the checks before it could not see (two requests creating the
    # same contact at once): the loser gets a conflict, not a crash.
    log.info("integrity error", extra={"path": request.url.path, "error": str(exc)[:300]})
    if _is_console(request):
        return console_error(request, 409, "Conflict")
    return problem_response(request, 409, "conflict", "Conflict")


async def _unexpected(request: Request, exc: Exception) -> Response:
    log.exception("unhandled error", extra={"path": request.url.path})
    return problem_response(request, 500, "internal-error", "Something went wrong on our side.")


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(KefuError, _kefu_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(IntegrityError, _integrity_error)
    app.add_exception_handler(Exception, _unexpected)
