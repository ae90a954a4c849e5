"""Ticket search benchmark: full-text over 1,000,000 messages on PostgreSQL.

Corpus: messages built from the real customer-service questions of
../shared/bench/faq-zh (11,454 entries; 1 to 3 per message, with order numbers and
amounts mixed in), 10 messages per ticket, 100,000 tickets. Each message is segmented
by kefu's own analyser (as the write path does) and loaded with COPY, then the GIN
index is built. Queries: the 1,500 real user queries of faq-zh's dev set, each through
``GET /api/v1/tickets?q=…&limit=25`` in-process (the whole ASGI stack) as an admin,
who sees every ticket. Bar (DESIGN.md): p95 ≤ 200 ms.

Run: ``.venv/bin/python bench/ticket_search.py [--messages N]``. Needs PostgreSQL on
127.0.0.1 (database ``kefu_bench`` is dropped and re-created). Writes
bench/results/ticket_search.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import psycopg  # noqa: E402
from api import pg_reachable  # noqa: E402  # bench/api.py
from console import cpu_model  # noqa: E402  # bench/console.py
from starlette.testclient import TestClient  # noqa: E402

from kefu.domain.text import segmented  # noqa: E402

FAQ = ROOT.parent / "shared" / "bench" / "faq-zh"
RESULTS = ROOT / "bench" / "results"
PG = "postgresql://postgres@127.0.0.1:5432/kefu_bench"
PER_TICKET = 10
SEED = 20261125


def corpus() -> tuple[list[str], list[str]]:
    questions = [json.loads(line)["question"] for line in (FAQ / "faq.jsonl").open()]
    queries = [json.loads(line)["query"] for line in (FAQ / "queries-dev.jsonl").open()]
    return questions, queries


def load(messages: int, questions: list[str]) -> dict[str, float]:
    from api import reset_pg  # bench/api.py

    from kefu.infra.migrate import upgrade

    reset_pg()
    upgrade(PG)
    rng = random.Random(SEED)
    tickets = messages // PER_TICKET
    now = datetime.now(UTC)
    timings: dict[str, float] = {}
    with psycopg.connect(PG) as conn:
        conn.execute("DROP INDEX ix_message_search_terms")  # built once, after the load
        t0 = time.monotonic()
        with conn.cursor().copy(
            "COPY tickets (number, subject, kind, channel, status, priority, last_seq, "
            "message_count, created_at, updated_at) FROM STDIN"
        ) as copy:
            for n in range(1, tickets + 1):
                at = now - timedelta(minutes=n)
                subject = rng.choice(questions)[:300]
                copy.write_row(
                    (
                        f"B{n:08d}",
                        subject,
                        "question",
                        "email",
                        "open",
                        "normal",
                        PER_TICKET,
                        PER_TICKET,
                        at,
                        at,
                    )
                )
        ids = [r[0] for r in conn.execute("SELECT id FROM tickets ORDER BY id")]
        timings["tickets_s"] = round(time.monotonic() - t0, 1)
        t0 = time.monotonic()
        segment_s = 0.0
        rows: list[tuple[int, str]] = []
        with conn.cursor().copy(
            "COPY messages (ticket_id, seq, author_type, direction, is_internal, channel, body, "
            "meta, created_at) FROM STDIN"
        ) as copy:
            for i in range(messages):
                ticket_id = ids[i // PER_TICKET]
                parts = [rng.choice(questions) for _ in range(rng.randint(1, 3))]
                if rng.random() < 0.3:
                    parts.append(
                        f"订单号 {rng.randint(10**7, 10**8)}，金额 {rng.randint(10, 99999)} USDT"
                    )
                body = "。".join(parts)
                copy.write_row(
                    (
                        ticket_id,
                        i % PER_TICKET + 1,
                        "contact",
                        "in",
                        False,
                        "email",
                        body,
                        "{}",
                        now,
                    )
                )
                rows.append((ticket_id, body))
        timings["messages_s"] = round(time.monotonic() - t0, 1)
        message_ids = [r[0] for r in conn.execute("SELECT id FROM messages ORDER BY id")]
        t0 = time.monotonic()
        with conn.cursor().copy(
            "COPY message_search (message_id, ticket_id, terms) FROM STDIN"
        ) as copy:
            for message_id, (ticket_id, body) in zip(message_ids, rows, strict=True):
                s = time.perf_counter()
                terms = segmented(body)
                segment_s += time.perf_counter() - s
                copy.write_row((message_id, ticket_id, terms))
        timings["index_rows_s"] = round(time.monotonic() - t0, 1)
        timings["segmentation_us_per_message"] = round(segment_s / messages * 1e6, 1)
        t0 = time.monotonic()
        conn.execute(
            "CREATE INDEX ix_message_search_terms ON message_search "
            "USING gin (to_tsvector('simple', terms))"
        )
        conn.execute("ANALYZE")
        timings["gin_build_s"] = round(time.monotonic() - t0, 1)
        conn.commit()
    return timings


def measure(queries: list[str]) -> dict[str, Any]:
    from kefu.actions.agents import do_create_agent
    from kefu.actions.auth import agent_actor, do_create_api_token
    from kefu.domain.access import SYSTEM, Role
    from kefu.infra.db import make_engine, make_sessionmaker
    from kefu.settings import Settings
    from kefu.web.app import create_app

    engine = make_engine(PG)
    with make_sessionmaker(engine).begin() as s:
        admin = do_create_agent(
            s, SYSTEM, email="bench-search@kx.example", name="压测", role=Role.ADMIN
        )
        token = do_create_api_token(s, agent_actor(admin), admin, name="bench").raw
    engine.dispose()
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(
            data_dir=Path(tmp),
            database_url=PG,
            secret_key="bench-secret",  # type: ignore[arg-type]  # noqa: S106  # throwaway
            run_workers=False,
            run_smtp=False,
            log_json=False,
        )
        headers = {"Authorization": f"Bearer {token}"}
        times: list[float] = []
        hits: list[int] = []
        with TestClient(create_app(settings, freeze_gc=True)) as client:
            for q in queries[:50]:  # warm the caches and the plan cache
                client.get("/api/v1/tickets", params={"q": q, "limit": 25}, headers=headers)
            for q in queries:
                start = time.perf_counter()
                r = client.get("/api/v1/tickets", params={"q": q, "limit": 25}, headers=headers)
                times.append((time.perf_counter() - start) * 1000)
                assert r.status_code == 200, r.text[:300]
                hits.append(len(r.json()["items"]))
    times.sort()
    return {
        "queries": len(times),
        "p50_ms": round(statistics.median(times), 1),
        "p95_ms": round(times[int(len(times) * 0.95) - 1], 1),
        "p99_ms": round(times[int(len(times) * 0.99) - 1], 1),
        "max_ms": round(times[-1], 1),
        "queries_with_hits": sum(1 for h in hits if h),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--messages", type=int, default=1_000_000)
    args = ap.parse_args()
    if not pg_reachable():
        print("PostgreSQL is not reachable on 127.0.0.1:5432", file=sys.stderr)
        return 1
    questions, queries = corpus()
    result: dict[str, Any] = {
        "benchmark": "ticket_search",
        "timestamp": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {
            "cores": os.cpu_count(),
            "cpu": cpu_model(),
            "kernel": platform.release(),
            "python": platform.python_version(),
            "loadavg_before": [round(x, 2) for x in os.getloadavg()],
        },
        "database": "postgresql",
        "messages": args.messages,
        "tickets": args.messages // PER_TICKET,
        "corpus": "faq-zh questions (ATEC), 1-3 per message; queries: faq-zh dev set",
        "bar_p95_ms": 200,
    }
    result["load"] = load(args.messages, questions)
    print("loaded", json.dumps(result["load"]))
    result["search"] = measure(queries)
    print("search", json.dumps(result["search"]))
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "ticket_search.json").write_text(json.dumps(result, ensure_ascii=False, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
