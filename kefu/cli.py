"""The ``kefu`` command: serve, worker, migrate, demo, createadmin, token create.

Settings come from ``KEFU_*`` environment variables, read once here.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import os
import signal
import sys
from collections.abc import Sequence

from kefu.settings import Settings


def _settings() -> Settings:
    return Settings()


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn  # only the server needs it

    from kefu.infra.logs import configure_logging
    from kefu.web.app import create_app
    from kefu.web.http import HttpProtocol

    settings = _settings()
    configure_logging(settings.log_level, json=settings.log_json)
    app = create_app(settings, freeze_gc=True)
    uvicorn.run(
        app,
        host=args.host,
        port=args.port,
        loop="uvloop",
        http=HttpProtocol,
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=10,
        server_header=False,
        # Chat frames are small (kefu.web.chat.MAX_FRAME_CHARS); refuse big ones early.
        ws_max_size=64 * 1024,
        # Chat frames are a few hundred bytes: compressing them saves little and a
        # deflate context costs ~40 KB per socket (10,000 idle widgets: 400 MB).
        ws_per_message_deflate=False,
        ws_ping_interval=20,
        ws_ping_timeout=20,
    )
    return 0


def cmd_worker(_args: argparse.Namespace) -> int:
    import httpx

    from kefu.channels.email.outbound import make_email_handlers
    from kefu.infra.db import make_engine, make_sessionmaker
    from kefu.infra.logs import configure_logging
    from kefu.workers.outbox import OutboxWorker
    from kefu.workers.webhooks import make_webhook_handler

    settings = _settings()
    configure_logging(settings.log_level, json=settings.log_json)

    async def main() -> None:
        engine = make_engine(settings.database_url)
        sessions = make_sessionmaker(engine)
        async with httpx.AsyncClient() as http:
            worker = OutboxWorker(
                sessions,
                {
                    "webhook.deliver": make_webhook_handler(sessions, http),
                    **make_email_handlers(sessions, settings),
                },
                poll_seconds=settings.worker_poll_seconds,
                lease_seconds=settings.job_lease_seconds,
            )
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, worker.stop)
            await worker.run_forever()
        engine.dispose()

    asyncio.run(main())
    return 0


def cmd_smtp(_args: argparse.Namespace) -> int:
    """The SMTP listener alone, for a node that receives mail but serves no pages."""
    from kefu.channels.email.inbound import Ingestor
    from kefu.channels.email.smtp import KefuSMTPHandler, start_smtp_server
    from kefu.infra.db import make_engine, make_read_sessionmaker, make_sessionmaker
    from kefu.infra.files import LocalFileStore
    from kefu.infra.logs import configure_logging
    from kefu.infra.ratelimit import make_rate_limiter

    settings = _settings()
    configure_logging(settings.log_level, json=settings.log_json)

    async def main() -> None:
        engine = make_engine(settings.database_url)
        ingestor = Ingestor(
            make_sessionmaker(engine),
            LocalFileStore(settings.files_dir),
            settings.max_upload_bytes,
            (settings.mail_domain,),
            settings.mta_authserv_id,
        )
        handler = KefuSMTPHandler(
            ingestor,
            {settings.mail_domain},
            make_read_sessionmaker(engine),
            limiter=make_rate_limiter(settings.redis_url),
        )
        server = await start_smtp_server(
            handler,
            settings.smtp_host,
            settings.smtp_port,
            data_size_limit=settings.max_inbound_email_bytes,
        )
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        print(f"smtp listening on {settings.smtp_host}:{settings.smtp_port}", flush=True)
        await stop.wait()
        server.close()
        await server.wait_closed()
        engine.dispose()

    asyncio.run(main())
    return 0


def cmd_migrate(_args: argparse.Namespace) -> int:
    from kefu.infra.migrate import upgrade

    settings = _settings()
    upgrade(settings.database_url)
    print(f"migrated {_redact(settings.database_url)}")
    return 0


def _redact(url: str) -> str:
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        return f"{scheme}://***@{rest.rsplit('@', 1)[1]}"
    return url


def cmd_demo(_args: argparse.Namespace) -> int:
    from kefu.demo.load import load_demo

    settings = _settings()
    loaded, logins = load_demo(settings)
    print("demo data loaded" if loaded else "demo data already present; kept as it is")
    for line in logins:
        print(line)
    return 0


def cmd_createadmin(args: argparse.Namespace) -> int:
    from kefu.actions.agents import check_password_strength, do_create_agent, do_enroll_totp
    from kefu.domain.access import SYSTEM, Role
    from kefu.domain.errors import KefuError
    from kefu.infra.db import make_engine, make_sessionmaker

    settings = _settings()
    email = args.email or input("email: ")
    password = args.password or getpass.getpass("password: ")
    try:
        check_password_strength(password)
        engine = make_engine(settings.database_url)
        with make_sessionmaker(engine).begin() as session:
            agent = do_create_agent(
                session,
                SYSTEM,
                email=email,
                name=args.name or email,
                role=Role.ADMIN,
                password=password,
            )
            uri = do_enroll_totp(session, SYSTEM, agent, issuer="kefu")
        engine.dispose()
    except KefuError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return 2
    print(f"admin {agent.email} created")
    print("scan this into an authenticator app (TOTP is required for admins):")
    print(uri)
    return 0


def cmd_token_create(args: argparse.Namespace) -> int:
    from kefu.actions.auth import do_create_api_token
    from kefu.domain.access import SYSTEM
    from kefu.domain.errors import KefuError
    from kefu.infra.db import make_engine, make_sessionmaker
    from kefu.queries.people import get_agent_by_email

    settings = _settings()
    engine = make_engine(settings.database_url)
    try:
        with make_sessionmaker(engine).begin() as session:
            agent = get_agent_by_email(session, args.agent)
            if agent is None:
                print(f"error: no agent {args.agent}", file=sys.stderr)
                return 2
            created = do_create_api_token(
                session, SYSTEM, agent, name=args.name, scopes=args.scope or None
            )
    except KefuError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return 2
    finally:
        engine.dispose()
    print(created.raw)
    return 0


def cmd_kb_import(args: argparse.Namespace) -> int:
    import time

    from kefu.actions.articles import ImportResult, do_import_articles
    from kefu.channels.kb import read_kb
    from kefu.domain.access import SYSTEM
    from kefu.domain.errors import KefuError
    from kefu.infra.db import make_engine, make_sessionmaker

    settings = _settings()
    engine = make_engine(settings.database_url)
    sessions = make_sessionmaker(engine)
    result = ImportResult()
    start = time.monotonic()
    done = 0
    try:
        total = _count_lines(args.file)
        with open(args.file, encoding="utf-8-sig") as fh:
            batch = []
            for row in read_kb(fh):
                batch.append(row)
                if len(batch) >= args.batch:
                    with sessions.begin() as session:
                        do_import_articles(session, SYSTEM, batch, result)
                    done += len(batch)
                    batch = []
                    _progress(done, total, start)
            if batch:
                with sessions.begin() as session:
                    do_import_articles(session, SYSTEM, batch, result)
                done += len(batch)
    except (KefuError, OSError, UnicodeDecodeError) as exc:
        print(f"\nerror: {getattr(exc, 'message', exc)}", file=sys.stderr)
        return 2
    finally:
        engine.dispose()
    _progress(done, total, start, final=True)
    print(f"{result.created} created, {result.updated} updated, {result.unchanged} unchanged")
    return 0


def _count_lines(path: str) -> int:
    """Non-blank lines of the file: the progress bar's 100 %."""
    with open(path, "rb") as fh:
        return sum(1 for line in fh if line.strip())


def _progress(done: int, total: int, start: float, *, final: bool = False) -> None:
    import time

    rate = done / max(time.monotonic() - start, 1e-6)
    share = done / total if total else 1.0
    bar = "#" * int(share * 30)
    end = "\n" if final else "\r"
    print(
        f"[{bar:<30}] {done}/{total} articles ({share:.0%}, {rate:.0f}/s)",
        end=end,
        file=sys.stderr,
        flush=True,
    )


def cmd_kb_export(args: argparse.Namespace) -> int:
    from sqlalchemy import select

    from kefu.channels.kb import render_kb_line
    from kefu.infra.db import make_engine, make_read_sessionmaker
    from kefu.models import Article

    settings = _settings()
    engine = make_engine(settings.database_url)
    out = open(args.out, "w", encoding="utf-8") if args.out else sys.stdout  # noqa: SIM115
    try:
        with make_read_sessionmaker(engine)() as session:
            for article in session.scalars(select(Article).order_by(Article.id)).yield_per(500):
                out.write(render_kb_line(article) + "\n")
    except BrokenPipeError:
        # `kefu kb export | head` closed the pipe: not an error of ours.
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115  # silence the flush at exit
    finally:
        if out is not sys.stdout:
            out.close()
        engine.dispose()
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="kefu", description="kefu 客服 — support desk")
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the web app (and, by default, the workers)")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.set_defaults(func=cmd_serve)

    sub.add_parser("worker", help="run the outbox worker alone").set_defaults(func=cmd_worker)
    sub.add_parser("smtp", help="run the SMTP listener alone").set_defaults(func=cmd_smtp)
    sub.add_parser("migrate", help="create or upgrade the database").set_defaults(func=cmd_migrate)
    sub.add_parser("demo", help="load the demo data once").set_defaults(func=cmd_demo)

    admin = sub.add_parser("createadmin", help="create an admin agent with TOTP")
    admin.add_argument("--email")
    admin.add_argument("--password")
    admin.add_argument("--name")
    admin.set_defaults(func=cmd_createadmin)

    token = sub.add_parser("token", help="API tokens")
    token_sub = token.add_subparsers(dest="token_command", required=True)
    create = token_sub.add_parser("create", help="create a token; prints it on stdout")
    create.add_argument("--agent", required=True, help="the agent's email")
    create.add_argument("--name", default="cli")
    create.add_argument("--scope", action="append", choices=["read", "write", "admin"])
    create.set_defaults(func=cmd_token_create)

    kb = sub.add_parser("kb", help="help-center knowledge base")
    kb_sub = kb.add_subparsers(dest="kb_command", required=True)
    kb_import = kb_sub.add_parser("import", help="import a JSON Lines file (idempotent by id)")
    kb_import.add_argument("file")
    kb_import.add_argument("--batch", type=int, default=500)
    kb_import.set_defaults(func=cmd_kb_import)
    kb_export = kb_sub.add_parser("export", help="write every article as JSON Lines")
    kb_export.add_argument("--out", help="file to write (default: standard output)")
    kb_export.set_defaults(func=cmd_kb_export)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    result: int = args.func(args)
    return result


if __name__ == "__main__":
    sys.exit(main())
