"""Pure ASGI middleware: body size limit, request metrics and the access log.

Written as raw ASGI (not BaseHTTPMiddleware) because it sits on every request,
including websockets and streaming bodies, and must not buffer them.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence

import orjson
from prometheus_client import Counter, Histogram
from starlette.datastructures import Headers
from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from kefu.infra.i18n import negotiate
from kefu.web.errors import problem_body

log = logging.getLogger("kefu.access")

REQUESTS = Counter("kefu_http_requests_total", "HTTP requests", ["method", "route", "status"])
LATENCY = Histogram(
    "kefu_http_request_seconds",
    "HTTP request latency",
    ["method", "route"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)


class _TooLarge(Exception):
    pass


def _problem(status: int, code: str, detail: str) -> bytes:
    return orjson.dumps(
        {
            "type": f"https://kefu.dev/problems/{code}",
            "title": detail,
            "status": status,
            "detail": detail,
        }
    )


class BodyLimitMiddleware:
    """Refuse request bodies over the limit with a 413, before they are read into memory.

    Uploads get their own, larger limit.
    """

    def __init__(self, app: ASGIApp, *, max_bytes: int, max_upload_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.max_upload_bytes = max_upload_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        # NUL has no business in a URL, and PostgreSQL text cannot hold it at all.
        if b"%00" in scope.get("query_string", b"") or "\x00" in scope["path"]:
            await _send_problem(scope, send, 400, "bad-request", "Invalid character in URL")
            return
        limit = self.max_upload_bytes if scope["path"].endswith("/attachments") else self.max_bytes
        for name, value in scope.get("headers", ()):
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    await _send_problem(scope, send, 400, "bad-request", "Invalid Content-Length")
                    return
                if declared > limit:
                    await _send_problem(
                        scope, send, 413, "payload-too-large", "Request body too large"
                    )
                    return
        received = 0
        started = False

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise _TooLarge
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except _TooLarge:
            if not started:
                await _send_problem(scope, send, 413, "payload-too-large", "Request body too large")


async def _send_problem(scope: Scope, send: Send, status: int, code: str, detail: str) -> None:
    accept = next(
        (v.decode("latin-1") for k, v in scope.get("headers", ()) if k == b"accept-language"), None
    )
    locale = negotiate(accept)
    body = orjson.dumps(problem_body(status, code, detail, locale))
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/problem+json"),
                (b"content-length", str(len(body)).encode()),
                (b"content-language", locale.encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


class MetricsMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            elapsed = time.perf_counter() - start
            route = _route_template(scope)
            method = scope["method"]
            REQUESTS.labels(method, route, str(status)).inc()
            LATENCY.labels(method, route).observe(elapsed)
            if status >= 500 or log.isEnabledFor(logging.DEBUG):
                log.log(
                    logging.ERROR if status >= 500 else logging.DEBUG,
                    "request",
                    extra={
                        "method": method,
                        "path": scope["path"],
                        "status": status,
                        "ms": round(elapsed * 1000, 2),
                    },
                )


def _route_template(scope: Scope) -> str:
    """The matched route as a template (``/api/v1/tickets/{number}``), so metric labels
    stay bounded; anything that matched no route is one label."""
    if scope.get("route") is None:
        return "unmatched"
    path: str = scope["path"]
    for name, value in (scope.get("path_params") or {}).items():
        text = str(value)
        if text:
            path = path.replace("/" + text, "/{" + name + "}")
    return path


# What the chat widget calls with a credential from the page it is embedded on
# (docs/chat-protocol.md): screenshots up and down. (The help center's search, for its
# suggestions, is public to every origin.)
WIDGET_PATHS = ("/api/v1/attachments",)


class WidgetCorsMiddleware:
    """CORS for the widget's few endpoints, for the configured origins only
    (``KEFU_WIDGET_ORIGINS``); every other path answers as same-origin only.

    The widget's credentials are headers (the identity token, or the visitor token),
    never cookies, so no response allows credentials: a page on an allowed origin
    cannot ride an agent's console session."""

    def __init__(self, app: ASGIApp, *, origins: Sequence[str]) -> None:
        self.app = app
        self.cors = CORSMiddleware(
            app,
            allow_origins=list(origins),
            allow_methods=["GET", "POST"],
            allow_headers=["Authorization", "X-Kefu-Visitor", "Accept-Language"],
            allow_credentials=False,
            max_age=600,
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not _is_widget_path(scope["path"]):
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        if scope["method"] != "OPTIONS" or "access-control-request-method" not in headers:
            await self.cors(scope, receive, send)
            return
        # A preflight: refused as problem+json, like every other refusal (Starlette's
        # own answer is plain text).
        origin = headers.get("origin")
        if origin is None or not self.cors.is_allowed_origin(origin):
            await _send_problem(
                scope, send, 403, "permission-denied", "This origin may not call kefu"
            )
            return
        answer: list[Message] = []

        async def keep(message: Message) -> None:
            answer.append(message)

        await self.cors(scope, receive, keep)
        if answer and answer[0].get("status") == 400:
            await _send_problem(
                scope, send, 400, "bad-request", "Method or headers not allowed across origins"
            )
            return
        for message in answer:
            await send(message)


def _is_widget_path(path: str) -> bool:
    return any(path == p or path.startswith(p + "/") for p in WIDGET_PATHS)
