"""Inbound email benchmark: mail over SMTP to `kefu serve`, parsed, threaded and stored.

1,000 messages from ../shared/bench/peers/mailgen.py (plain UTF-8, GBK, Big5, HTML,
attachments, replies; plus raw 8-bit GBK probes), sent by 4 concurrent SMTP clients
on persistent connections. A first pass of 200 creates tickets; the replies of the
second pass carry those tickets' [#K…] numbers, so they thread. Every message must be
answered 250 and be in the database afterwards (`lost` counts the difference).
SQLite (the embedded default) and PostgreSQL. Writes bench/results/email_ingest.json.

Two runs side by side (a helper's, the lead's) must not share a database or a file:
``EMAIL_BENCH_PG_DB`` names the PostgreSQL database to drop and recreate (default
``kefu_bench``), ``EMAIL_BENCH_OUT`` the result file (default the one above), and the
data directories are ``/tmp/kefu-bench-email-<backend>`` plus ``EMAIL_BENCH_TAG``.
"""

from __future__ import annotations

import json
import os
import re
import signal
import smtplib
import socket
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
PEERS = ROOT.parent / "shared" / "bench" / "peers"
KEFU = ROOT / ".venv" / "bin" / "kefu"
RESULTS = ROOT / "bench" / "results"
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
CLIENTS = 4
PG_DB = os.environ.get("EMAIL_BENCH_PG_DB", "kefu_bench")
OUT = Path(os.environ.get("EMAIL_BENCH_OUT", str(RESULTS / "email_ingest.json")))
TAG = os.environ.get("EMAIL_BENCH_TAG", "")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def generate(count: int, raw_gbk: int) -> list[bytes]:
    out = Path(tempfile.mkdtemp(prefix="kefu-mail-"))
    subprocess.run(
        [
            sys.executable,
            str(PEERS / "mailgen.py"),
            str(out),
            "--count",
            str(count),
            "--raw-8bit-gbk",
            str(raw_gbk),
        ],
        check=True,
        capture_output=True,
    )
    # On the wire SMTP lines end in CRLF (RFC 5321 2.3.8); the generator writes files with
    # bare LF, and smtplib sends bytes as they are. Without this, the listener sees one
    # endless line and answers "500 line too long", as a strict MTA should (SMTP
    # smuggling hides in bare line feeds).
    return [re.sub(rb"\r?\n", b"\r\n", p.read_bytes()) for p in sorted(out.glob("*.eml"))]


def send_all(port: int, mails: list[bytes]) -> tuple[float, int, list[float], dict[int, int]]:
    """Send with CLIENTS persistent connections; returns (seconds, accepted, latencies,
    rejections by SMTP code). Each mail has its own envelope sender, as real customers
    do: one sender for all would (rightly) meet the per-sender flood limit."""
    accepted = 0
    latencies: list[float] = []
    rejected: dict[int, int] = {}
    lock = threading.Lock()
    chunks = [list(enumerate(mails))[i::CLIENTS] for i in range(CLIENTS)]

    def worker(chunk: list[tuple[int, bytes]]) -> None:
        nonlocal accepted
        with smtplib.SMTP("127.0.0.1", port, timeout=60) as client:
            for n, raw in chunk:
                t = time.perf_counter()
                try:
                    client.sendmail(
                        f"customer{n}@example.com", ["support@kx-exchange.example"], raw
                    )
                except smtplib.SMTPResponseException as exc:
                    with lock:
                        rejected[exc.smtp_code] = rejected.get(exc.smtp_code, 0) + 1
                    client.rset()
                    continue
                with lock:
                    accepted += 1
                    latencies.append(time.perf_counter() - t)

    start = time.perf_counter()
    threads = [threading.Thread(target=worker, args=(c,)) for c in chunks]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return time.perf_counter() - start, accepted, latencies, rejected


def count_messages(db_url: str) -> tuple[int, list[str]]:
    from sqlalchemy import func, select

    from kefu.infra.db import make_engine, make_read_sessionmaker
    from kefu.models import Message, Ticket

    engine = make_engine(db_url)
    with make_read_sessionmaker(engine)() as s:
        # Mail from customers only: not the DLP warnings or acknowledgements kefu adds.
        n = s.scalar(select(func.count()).select_from(Message).where(Message.direction == "in"))
        n = n or 0
        numbers = list(s.scalars(select(Ticket.number)).all())
    engine.dispose()
    return n, numbers


def reset_pg() -> str:
    """Drop and recreate ``PG_DB``; returns its URL."""
    from api import PG_ADMIN  # bench/api.py
    from sqlalchemy import text

    from kefu.infra.db import make_engine

    if not re.fullmatch(r"[a-z_][a-z0-9_]{0,62}", PG_DB):
        raise SystemExit(f"EMAIL_BENCH_PG_DB: not a plain database name: {PG_DB!r}")
    engine = make_engine(PG_ADMIN + "?poolclass=null")
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text(f"DROP DATABASE IF EXISTS {PG_DB} WITH (FORCE)"))
        conn.execute(text(f"CREATE DATABASE {PG_DB}"))
    engine.dispose()
    return PG_ADMIN.rsplit("/", 1)[0] + "/" + PG_DB


def run(backend: str, mails: list[bytes]) -> dict[str, Any]:
    data_dir = Path(f"/tmp/kefu-bench-email-{backend}{TAG}")
    subprocess.run(["rm", "-rf", str(data_dir)], check=True)
    data_dir.mkdir(parents=True)
    db_url = f"sqlite:///{data_dir / 'kefu.db'}" if backend == "sqlite" else reset_pg()
    smtp_port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("KEFU_")}
    env.update(
        {
            "KEFU_DATABASE_URL": db_url,
            "KEFU_DATA_DIR": str(data_dir),
            "KEFU_SECRET_KEY": "bench",
            "KEFU_LOG_LEVEL": "WARNING",
            "KEFU_SMTP_PORT": str(smtp_port),
            "KEFU_RUN_WORKERS": "false",  # measure ingestion; acknowledgements wait in the outbox
        }
    )
    subprocess.run([str(KEFU), "migrate"], env=env, check=True, capture_output=True)
    log = (data_dir / "serve.log").open("wb")
    server = subprocess.Popen(
        [str(KEFU), "serve", "--port", str(free_port())], env=env, stdout=log, stderr=log
    )
    try:
        for _ in range(300):
            try:
                with socket.create_connection(("127.0.0.1", smtp_port), timeout=1):
                    break
            except OSError:
                time.sleep(0.1)
        first, rest = mails[:200], mails[200:]
        _, first_accepted, _, first_rejected = send_all(smtp_port, first)
        _, numbers = count_messages(db_url)
        # Replies in the generated mix carry "[support-N]": make them reply to real tickets.
        tag = re.compile(rb"\[support-(\d+)\]")
        rest = [
            tag.sub(lambda m: f"[#{numbers[int(m.group(1)) % len(numbers)]}]".encode(), raw)
            for raw in rest
        ]
        seconds, accepted, latencies, rejected = send_all(smtp_port, rest)
        for code, n in first_rejected.items():
            rejected[code] = rejected.get(code, 0) + n
        stored, _ = count_messages(db_url)
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(30)
        log.close()
    latencies.sort()
    return {
        "database": backend,
        "messages": len(rest),
        "seconds": round(seconds, 2),
        "messages_per_s": round(accepted / seconds, 1),
        "p50_ms": round(latencies[len(latencies) // 2] * 1000, 1),
        "p99_ms": round(latencies[int(len(latencies) * 0.99) - 1] * 1000, 1),
        "accepted": accepted + first_accepted,
        "rejected_by_code": {str(k): v for k, v in sorted(rejected.items())},
        "stored": stored,
        # Accepted (250) but not stored; a rejected mail stays with the sender's MTA.
        "lost": max(0, accepted + first_accepted - stored),
    }


def main() -> int:
    mails = generate(1000, 20)
    result: dict[str, Any] = {
        "benchmark": "email",
        "timestamp": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {
            "cores": os.cpu_count(),
            "loadavg_before": [round(x, 2) for x in os.getloadavg()],
        },
        "load": f"{CLIENTS} SMTP clients on persistent connections, 127.0.0.1; 200 warm-up messages first",
        "runs": [run("sqlite", mails)],
    }
    try:
        with socket.create_connection(("127.0.0.1", 5432), timeout=1):
            result["runs"].append(run("postgresql", mails))
    except OSError:
        pass
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(result, indent=2))
    print(
        "| database | messages/s (parsed, threaded, stored) | p50 ms | p99 ms | stored / sent | lost |"
    )
    print("| --- | --- | --- | --- | --- | --- |")
    for r in result["runs"]:
        print(
            f"| {r['database']} | {r['messages_per_s']} | {r['p50_ms']} | {r['p99_ms']} | {r['stored']} / {r['accepted']} | {r['lost']} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
