"""The application factory: ``create_app(settings)``.

On the embedded default one process runs the web app, the outbox worker and the
event dispatcher; with ``run_workers=False`` a separate ``kefu worker`` does the jobs.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
from fastapi import APIRouter, FastAPI
from fastapi.staticfiles import StaticFiles
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker
from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocket

from kefu import __version__
from kefu.actions.messages import MAIL_DOMAIN_KEY
from kefu.channels.email.inbound import Ingestor
from kefu.channels.email.outbound import make_email_handlers
from kefu.channels.email.smtp import KefuSMTPHandler, start_smtp_server
from kefu.events import PUBLISHER_KEY, EventDispatcher
from kefu.infra.collector import server_collector
from kefu.infra.db import make_engine, make_read_sessionmaker, make_sessionmaker
from kefu.infra.files import LocalFileStore
from kefu.infra.pubsub import make_pubsub
from kefu.infra.ratelimit import make_rate_limiter
from kefu.settings import Settings
from kefu.web.chat import ChatHub
from kefu.web.deps import AppState
from kefu.web.errors import install_error_handlers
from kefu.web.middleware import BodyLimitMiddleware, MetricsMiddleware, WidgetCorsMiddleware
from kefu.web.routes import (
    admin,
    attachments,
    auth,
    console,
    console_admin,
    console_tickets,
    contacts,
    dlp,
    health,
    helpcenter,
    pages_help,
    pages_public,
    tickets,
    verify,
)
from kefu.workers.imap import ImapFetcher, imap_config
from kefu.workers.outbox import OutboxWorker
from kefu.workers.webhooks import make_webhook_handler

log = logging.getLogger(__name__)
STATIC_DIR = Path(__file__).resolve().parent / "static"


CHAT_SOCKET_PATH = "/api/v1/chat/ws"


class KefuApp(FastAPI):
    """The app, with one shortcut: the chat socket goes straight to the chat hub.

    A websocket lives as long as the widget is open, and every ASGI layer it passed
    through (Starlette's error and exception middleware, FastAPI's body limit and
    telemetry, kefu's metrics and body limit, the router, the route's exit stacks)
    keeps a suspended frame for it: about 10 KB of the ~33 KB an idle socket cost. None
    of them does anything for a websocket that the hub does not do itself (it accepts,
    answers bad input with error frames and close codes, and logs what fails)."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket" and scope["path"] == CHAT_SOCKET_PATH:
            scope["app"] = self
            hub: ChatHub = self.state.chat
            await hub.serve(WebSocket(scope, receive, send))
            return
        await super().__call__(scope, receive, send)


def create_app(
    settings: Settings,
    *,
    sessions: sessionmaker[Session] | None = None,
    read_sessions: sessionmaker[Session] | None = None,
    freeze_gc: bool = False,
) -> FastAPI:
    """Build the app. A test passes ``sessions`` (and ``read_sessions``) bound to its
    own rolled-back transaction. ``freeze_gc``: schedule the garbage collector as a
    long-running server does (``kefu serve``; infra/collector.py)."""
    engine: Engine | None = None
    if sessions is None:
        engine = make_engine(settings.database_url)
        sessions = make_sessionmaker(engine)
        read_sessions = make_read_sessionmaker(engine)
    elif read_sessions is None:
        read_sessions = sessions
    pubsub = make_pubsub(settings.redis_url)
    dispatcher = EventDispatcher(pubsub)
    # Committed events go to the dispatcher, unless the caller (a test) installed its own.
    info = dict(sessions.kw.get("info") or {})
    info.setdefault(PUBLISHER_KEY, dispatcher.publish)
    info.setdefault(MAIL_DOMAIN_KEY, settings.mail_domain)
    sessions.kw["info"] = info
    state = AppState(
        settings=settings,
        sessions=sessions,
        read_sessions=read_sessions,
        dispatcher=dispatcher,
        files=LocalFileStore(settings.files_dir),
        limiter=make_rate_limiter(settings.redis_url),
        secret_key=settings.resolved_secret_key(),
    )

    hub = ChatHub(state, pubsub)

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        await pubsub.start()
        await dispatcher.start()
        await hub.start()
        http = httpx.AsyncClient(follow_redirects=False)
        worker: OutboxWorker | None = None
        worker_task: asyncio.Task[None] | None = None
        smtp_server: asyncio.Server | None = None
        ingestor = Ingestor(
            sessions,
            state.files,
            settings.max_upload_bytes,
            (settings.mail_domain,),
            settings.mta_authserv_id,
        )
        if settings.run_smtp:
            handler = KefuSMTPHandler(
                ingestor, {settings.mail_domain}, read_sessions, limiter=state.limiter
            )
            smtp_server = await start_smtp_server(
                handler,
                settings.smtp_host,
                settings.smtp_port,
                data_size_limit=settings.max_inbound_email_bytes,
            )
            log.info("smtp listening", extra={"port": settings.smtp_port})
        if settings.run_workers:
            worker = OutboxWorker(
                sessions,
                {
                    "webhook.deliver": make_webhook_handler(sessions, http),
                    **make_email_handlers(sessions, settings),
                },
                poll_seconds=settings.worker_poll_seconds,
                lease_seconds=settings.job_lease_seconds,
            )
            worker_task = asyncio.create_task(worker.run_forever())
        imap: ImapFetcher | None = None
        imap_task: asyncio.Task[None] | None = None
        mailbox = imap_config(settings)
        if settings.run_workers and mailbox is not None:
            imap = ImapFetcher(mailbox, ingestor)
            imap_task = asyncio.create_task(imap.run_forever())
            log.info("imap polling", extra={"host": mailbox.host, "folder": mailbox.folder})
        collector = contextlib.AsyncExitStack()
        if freeze_gc:
            # What start-up loaded (dictionaries, the routes, templates) lives as long as
            # the process: out of the collector's sight, a full collection no longer walks
            # it, which took the console's p95 from ~150 ms to ~80 ms (bench/console.py);
            # and full collections run on a clock, not under load (infra/collector.py).
            await collector.enter_async_context(
                server_collector(settings.gc_full_collection_seconds)
            )
        log.info("kefu started", extra={"version": __version__})
        try:
            yield
        finally:
            await collector.aclose()
            # Graceful shutdown: stop taking jobs, let running ones finish, then flush
            # queued events. A job cut off here is re-claimed when its lease expires.
            if smtp_server is not None:
                smtp_server.close()
                await smtp_server.wait_closed()
            if imap is not None and imap_task is not None:
                imap.stop()
                with contextlib.suppress(asyncio.TimeoutError, asyncio.CancelledError):
                    await asyncio.wait_for(imap_task, timeout=10)
            if worker is not None and worker_task is not None:
                worker.stop()
                with contextlib.suppress(asyncio.TimeoutError, asyncio.CancelledError):
                    await asyncio.wait_for(worker_task, timeout=10)
            await hub.stop()
            await dispatcher.stop()
            await pubsub.stop()
            await state.limiter.close()
            await http.aclose()
            if engine is not None:
                engine.dispose()
            log.info("kefu stopped")

    app = KefuApp(
        title="kefu",
        version=__version__,
        description="客服 — customer-support desk API",
        openapi_url="/api/v1/openapi.json",
        docs_url="/api/v1/docs",
        redoc_url=None,
        lifespan=lifespan,
    )
    app.state.kefu = state
    app.state.chat = hub
    install_error_handlers(app)
    api = APIRouter(prefix="/api/v1")
    for module in (tickets, attachments, contacts, admin, auth, verify, helpcenter, dlp):
        api.include_router(module.router)
    api.include_router(helpcenter.tickets_router)
    app.include_router(api)
    app.include_router(health.router)
    app.include_router(pages_public.router)
    app.include_router(pages_help.router)
    for console_module in (console, console_tickets, console_admin):
        app.include_router(console_module.router)
    app.include_router(console_admin.account_router)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    app.add_middleware(
        BodyLimitMiddleware,
        max_bytes=settings.max_request_bytes,
        max_upload_bytes=settings.max_upload_bytes + 64 * 1024,
    )
    if settings.widget_origins:
        app.add_middleware(WidgetCorsMiddleware, origins=settings.widget_origins)
    app.add_middleware(MetricsMiddleware)
    return app
