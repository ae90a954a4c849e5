"""Agent console benchmark: server time to render the pages agents live in.

- The ticket page of a ticket with 500 messages (a third of them internal notes, each
  with a phone number the page masks) and its history events: first view (nothing
  cached in the process; each message's masked text is read as stored with it) and
  repeat view (as when the live console refreshes).
- The timeline fragment the live console re-fetches after each new message.
- The inbox (50 rows of 10,000 tickets) with the six view counts.

Each page is requested in-process through the whole ASGI stack (session cookie, CSRF-
free GETs, Jinja rendering) with no network, so the figure is the server's time. Bar
(issue 7): ≤ 100 ms for the 500-message ticket. Runs on SQLite and, when reachable,
PostgreSQL (database ``kefu_bench``, dropped and re-created).

Run: ``.venv/bin/python bench/console.py``. Writes bench/results/console.json.
"""

from __future__ import annotations

import json
import os
import platform
import socket
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy import create_engine, text  # noqa: E402
from starlette.testclient import TestClient  # noqa: E402

from kefu.actions.agents import do_create_agent, do_create_team  # noqa: E402
from kefu.actions.contacts import ContactData, do_create_contact  # noqa: E402
from kefu.actions.guard import display_text  # noqa: E402
from kefu.actions.messages import NewMessage, do_add_message  # noqa: E402
from kefu.actions.tickets import NewTicket, do_create_ticket, do_tag  # noqa: E402
from kefu.domain.access import SYSTEM, Actor, ActorKind  # noqa: E402
from kefu.domain.tickets import Channel  # noqa: E402
from kefu.infra.db import make_engine, make_sessionmaker  # noqa: E402
from kefu.infra.migrate import upgrade  # noqa: E402
from kefu.settings import Settings  # noqa: E402

RESULTS = ROOT / "bench" / "results"
PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
PG_BENCH = "postgresql://postgres@127.0.0.1:5432/kefu_bench"
PASSWORD = "bench-password-1"  # noqa: S105  # a throwaway agent in a throwaway database
MESSAGES = 500
TICKETS = 10_000
ROUNDS = 60


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.machine()


def pg_reachable() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 5432), timeout=1):
            return True
    except OSError:
        return False


def fresh_pg() -> str:
    admin = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text("DROP DATABASE IF EXISTS kefu_bench WITH (FORCE)"))
        conn.execute(text("CREATE DATABASE kefu_bench"))
    admin.dispose()
    return PG_BENCH


def seed(url: str) -> tuple[str, str]:
    """10,000 tickets, one of them with 500 messages; returns (agent email, number)."""
    upgrade(url)
    engine = make_engine(url)
    sessions = make_sessionmaker(engine)
    with sessions.begin() as db:
        team = do_create_team(db, SYSTEM, slug="general", name="综合客服")
        agent = do_create_agent(
            db, SYSTEM, email="bench@kx.example", name="压测", password=PASSWORD, team_ids=[team.id]
        )
        contact = do_create_contact(
            db, SYSTEM, ContactData(email="user@example.com", name="王先生", exchange_uid="1000001")
        )
        agent_actor = Actor(
            kind=ActorKind.AGENT, id=agent.id, role=agent.role, team_ids=frozenset({team.id})
        )
        contact_actor = Actor(kind=ActorKind.CONTACT, id=contact.id)
        big = do_create_ticket(
            db,
            SYSTEM,
            NewTicket(
                subject="提币三天未到账",
                channel=Channel.EMAIL,
                contact_id=contact.id,
                team_id=team.id,
                first_message=NewMessage(body="我的USDT提币还没到账", channel=Channel.EMAIL),
            ),
        )
        number = big.number
        for i in range(MESSAGES - 1):
            if i % 3 == 0:
                author, note = agent_actor, True
            elif i % 3 == 1:
                author, note = contact_actor, False
            else:
                author, note = agent_actor, False
            body = f"第{i}条：订单 {1000 + i} 的处理进展，客户电话 1380013{i % 10000:04d}。" * (
                1 + i % 4
            )
            do_add_message(
                db, author, big, NewMessage(body=body, channel=Channel.EMAIL, is_internal=note)
            )
            if i % 50 == 0:
                do_tag(db, agent_actor, big, add=[f"批次{i // 50}"])
    for start in range(1, TICKETS, 1000):
        with sessions.begin() as db:
            for n in range(start, min(start + 1000, TICKETS)):
                do_create_ticket(
                    db,
                    SYSTEM,
                    NewTicket(
                        subject=f"工单 {n}",
                        channel=Channel.WEB,
                        contact_id=contact.id,
                        team_id=team.id if n % 3 else None,
                    ),
                )
    engine.dispose()
    return "bench@kx.example", number


def measure(client: TestClient, path: str, *, cold: bool = False) -> dict[str, float]:
    """``cold``: the masking cache is emptied before each request, as for a ticket
    nobody has opened since the process started."""
    client.get(path)  # warm the session lookup and the template cache
    times = []
    for _ in range(ROUNDS):
        if cold:
            display_text.cache_clear()
        start = time.perf_counter()
        r = client.get(path)
        times.append((time.perf_counter() - start) * 1000)
        assert r.status_code == 200, r.text[:300]  # a bench must not time errors
    times.sort()
    return {
        "p50_ms": round(statistics.median(times), 1),
        "p95_ms": round(times[int(len(times) * 0.95) - 1], 1),
        "max_ms": round(times[-1], 1),
        "bytes": len(r.content),
    }


def run_backend(backend: str) -> dict[str, Any]:
    from kefu.web.app import create_app

    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{tmp}/kefu.db" if backend == "sqlite" else fresh_pg()
        t0 = time.monotonic()
        email, number = seed(url)
        seeded = time.monotonic() - t0
        settings = Settings(
            data_dir=Path(tmp),
            database_url=url,
            secret_key="bench-secret",  # type: ignore[arg-type]  # noqa: S106  # throwaway
            run_workers=False,
            run_smtp=False,
            log_json=False,
        )
        # As `kefu serve` runs it (start-up objects frozen out of the collector's walk).
        with TestClient(create_app(settings, freeze_gc=True)) as client:
            r = client.post(
                "/agent/login",
                data={"email": email, "password": PASSWORD},
                follow_redirects=False,
            )
            assert r.status_code == 303, r.text[:300]
            out = {
                "seed_seconds": round(seeded, 1),
                "ticket_page_500_messages_first_view": measure(
                    client, f"/agent/tickets/{number}", cold=True
                ),
                "ticket_page_500_messages": measure(client, f"/agent/tickets/{number}"),
                "timeline_fragment_500_messages": measure(
                    client, f"/agent/tickets/{number}/timeline"
                ),
                "inbox_50_rows_of_10000": measure(client, "/agent/inbox/all"),
            }
    print(backend, json.dumps(out, ensure_ascii=False))
    return out


def main() -> int:
    backends = ["sqlite"] + (["postgresql"] if pg_reachable() else [])
    result: dict[str, Any] = {
        "benchmark": "console",
        "timestamp": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {
            "cores": os.cpu_count(),
            "cpu": cpu_model(),
            "kernel": platform.release(),
            "python": platform.python_version(),
            "loadavg_before": [round(x, 2) for x in os.getloadavg()],
        },
        "rounds": ROUNDS,
        "bar_ms": 100,
        "backends": {b: run_backend(b) for b in backends},
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "console.json").write_text(json.dumps(result, ensure_ascii=False, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
