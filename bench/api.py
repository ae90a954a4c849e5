"""Ticket API benchmark: `kefu serve` (one process) beside django-helpdesk, same run.

Scenarios (wrk -t2 -c16, 20 s after a 3 s warm-up, 127.0.0.1):
  create   POST /api/v1/tickets (ticket + contact + first message)
  get      GET /api/v1/tickets/{number}, 10,000 tickets in the database
  list     GET /api/v1/tickets?limit=25, 10,000 tickets in the database
kefu runs on SQLite (WAL, the embedded default) and on PostgreSQL when reachable.
The peer is measured by ../shared/bench/peers (django-helpdesk 2.6.1, gunicorn -w 2,
SQLite WAL), installed in a throw-away venv under /tmp.

Writes bench/results/api.json and prints a markdown table. Options: --skip-peer,
--peer-json FILE (reuse a peer result from earlier in the same session),
--duration N, --tickets N.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import signal
import socket
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
PEERS = ROOT.parent / "shared" / "bench" / "peers"
RESULTS = ROOT / "bench" / "results"
sys.path.insert(0, str(PEERS))
sys.path.insert(0, str(ROOT))

from wrkrun import CpuMeter, proc_rss_kb, run_wrk, tree  # noqa: E402

PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
PG_BENCH = "postgresql://postgres@127.0.0.1:5432/kefu_bench"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def pg_reachable() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 5432), timeout=1):
            return True
    except OSError:
        return False


def reset_pg() -> None:
    from sqlalchemy import text

    from kefu.infra.db import make_engine

    engine = make_engine(PG_ADMIN + "?poolclass=null")
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("DROP DATABASE IF EXISTS kefu_bench WITH (FORCE)"))
        conn.execute(text("CREATE DATABASE kefu_bench"))
    engine.dispose()


def prepare(db_url: str, data_dir: Path) -> str:
    """Migrate and create the benchmark agent; returns its API token."""
    from kefu.actions.agents import do_create_agent, do_create_team
    from kefu.actions.auth import do_create_api_token
    from kefu.domain.access import SYSTEM, Role
    from kefu.infra.db import make_engine, make_sessionmaker
    from kefu.infra.migrate import upgrade

    upgrade(db_url)
    engine = make_engine(db_url)
    with make_sessionmaker(engine).begin() as s:
        team = do_create_team(s, SYSTEM, slug="bench", name="bench")
        agent = do_create_agent(
            s,
            SYSTEM,
            email="bench@kx-exchange.example",
            name="bench",
            role=Role.ADMIN,
            team_ids=[team.id],
        )
        raw = do_create_api_token(
            s, SYSTEM, agent, name="bench", scopes=["read", "write", "admin"]
        ).raw
    engine.dispose()
    return raw


def seed_to(db_url: str, total: int) -> list[str]:
    """Top the database up to ``total`` tickets (through the actions); return numbers."""
    from sqlalchemy import func, select

    from kefu.actions.messages import NewMessage
    from kefu.actions.tickets import NewTicket, do_create_ticket
    from kefu.domain.access import SYSTEM
    from kefu.domain.tickets import Channel
    from kefu.infra.db import make_engine, make_sessionmaker
    from kefu.models import Ticket

    engine = make_engine(db_url)
    sessions = make_sessionmaker(engine)
    with sessions() as s:
        have = s.scalar(select(func.count()).select_from(Ticket)) or 0
    batch = 500
    while have < total:
        with sessions.begin() as s:
            for i in range(min(batch, total - have)):
                do_create_ticket(
                    s,
                    SYSTEM,
                    NewTicket(
                        subject=f"提币审核中 withdrawal pending {have + i}",
                        channel=Channel.EMAIL,
                        first_message=NewMessage(
                            body="我的提币一直在审核中，请帮忙查看。", channel=Channel.EMAIL
                        ),
                    ),
                )
        have += batch
    with sessions() as s:
        numbers = list(s.scalars(select(Ticket.number)).all())
    engine.dispose()
    return numbers


class KefuServer:
    def __init__(self, db_url: str, data_dir: Path, port: int) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("KEFU_")}
        env.update(
            {
                "KEFU_DATABASE_URL": db_url,
                "KEFU_DATA_DIR": str(data_dir),
                "KEFU_SECRET_KEY": "bench",
                "KEFU_LOG_LEVEL": "WARNING",
                "KEFU_RUN_SMTP": "false",
            }
        )
        self.url = f"http://127.0.0.1:{port}"
        self.log = (data_dir / "serve.log").open("wb")
        self.proc = subprocess.Popen(
            [str(ROOT / ".venv" / "bin" / "kefu"), "serve", "--port", str(port)],
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        import urllib.request

        for _ in range(300):
            try:
                with urllib.request.urlopen(self.url + "/healthz", timeout=1) as r:  # noqa: S310  # loopback
                    if r.status == 200:
                        return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError("kefu serve did not start")

    def rss_mb(self) -> float:
        return round(sum(proc_rss_kb(p) for p in tree(self.proc.pid)) / 1024, 1)

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()


def scenario(
    server: KefuServer, script: str, env: dict[str, str], duration: int, warmup: int
) -> dict[str, Any]:
    if warmup:
        run_wrk(server.url, script, duration_s=warmup, env=env)
    with CpuMeter({"server": server.proc.pid}) as meter:
        res = run_wrk(server.url, script, duration_s=duration, env=env)
    res.update(
        {f"server_{k}" if not k.startswith("machine") else k: v for k, v in meter.result().items()}
    )
    res["server_rss_mb"] = server.rss_mb()
    return res


def measure_kefu(backend: str, duration: int, warmup: int, tickets: int) -> dict[str, Any]:
    data_dir = Path(f"/tmp/kefu-bench-{backend}")
    subprocess.run(["rm", "-rf", str(data_dir)], check=True)
    data_dir.mkdir(parents=True)
    if backend == "sqlite":
        db_url = f"sqlite:///{data_dir / 'kefu.db'}"
    else:
        reset_pg()
        db_url = PG_BENCH
    token = prepare(db_url, data_dir)
    auth = {"WRK_AUTH": f"Bearer {token}"}
    out: dict[str, Any] = {"database": backend}
    server = KefuServer(db_url, data_dir, free_port())
    try:
        out["create"] = scenario(
            server, str(ROOT / "bench/wrk/kefu_post_ticket.lua"), auth, duration, warmup
        )
        out["rss_mb_after_create"] = server.rss_mb()
    finally:
        server.stop()
    numbers = seed_to(db_url, tickets)
    out["tickets_in_db"] = len(numbers)
    sample = random.Random(7).sample(numbers, 200)
    server = KefuServer(db_url, data_dir, free_port())
    try:
        paths = " ".join(f"/api/v1/tickets/{n}" for n in sample)
        out["get"] = scenario(server, "get.lua", {**auth, "WRK_PATHS": paths}, duration, warmup)
        out["list"] = scenario(
            server, "get.lua", {**auth, "WRK_PATHS": "/api/v1/tickets?limit=25"}, duration, warmup
        )
        out["list_filtered"] = scenario(
            server,
            "get.lua",
            {
                **auth,
                "WRK_PATHS": "/api/v1/tickets?limit=25&status=new&channel=email&sort=-updated_at",
            },
            duration,
            warmup,
        )
        out["rss_mb"] = server.rss_mb()
    finally:
        server.stop()
    return out


def run_peer(duration: int) -> dict[str, Any] | None:
    setup = subprocess.run(["bash", str(PEERS / "djh_setup.sh")], capture_output=True, text=True)
    if setup.returncode != 0:
        print("peer setup failed:\n" + setup.stderr[-2000:])
        return None
    out = Path("/tmp/peer-djh/kefu-bench-peer.json")
    run = subprocess.run(
        [
            sys.executable,
            str(PEERS / "djh_bench.py"),
            "--sqlite",
            "wal",
            "--duration",
            str(duration),
            "--mail",
            "0",
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
    )
    if run.returncode != 0 or not out.exists():
        print("peer benchmark failed:\n" + run.stdout[-2000:] + run.stderr[-2000:])
        return None
    data: dict[str, Any] = json.loads(out.read_text())
    return data


def peer_figures(peer: dict[str, Any] | None) -> dict[str, Any] | None:
    if peer is None:
        return None
    mode = next(m for m in peer["modes"] if m["sqlite_mode"] == "wal")
    sc = mode["scenarios"]
    return {
        "create": sc["create"],
        "get": sc["get_one"],
        "list": sc["list_api"],
        "source": "django-helpdesk 2.6.1 REST API, gunicorn -w 2 sync, SQLite WAL, DRF token auth",
    }


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--duration", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--tickets", type=int, default=10_000)
    ap.add_argument("--skip-peer", action="store_true")
    ap.add_argument("--peer-json")
    ap.add_argument("--backends", default="sqlite,postgresql")
    args = ap.parse_args()

    result: dict[str, Any] = {
        "benchmark": "api",
        "timestamp": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {
            "cores": os.cpu_count(),
            "cpu": _cpu_model(),
            "kernel": platform.release(),
            "python": platform.python_version(),
            "loadavg_before": [round(x, 2) for x in os.getloadavg()],
        },
        "load": f"wrk -t2 -c16, {args.duration} s after {args.warmup} s warm-up, 127.0.0.1, same machine",
        "kefu": {},
    }
    for backend in args.backends.split(","):
        if backend == "postgresql" and not pg_reachable():
            result["kefu"][backend] = {"skipped": "PostgreSQL not reachable"}
            continue
        print(f"kefu on {backend} …", flush=True)
        result["kefu"][backend] = measure_kefu(backend, args.duration, args.warmup, args.tickets)
    peer = None
    if args.peer_json:
        peer = json.loads(Path(args.peer_json).read_text())
    elif not args.skip_peer:
        print("django-helpdesk (peer) …", flush=True)
        peer = run_peer(args.duration)
    result["peer"] = peer_figures(peer)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "api.json").write_text(json.dumps(result, indent=2, ensure_ascii=False))
    print(table(result))
    return 0


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def table(result: dict[str, Any]) -> str:
    peer = result.get("peer") or {}
    rows = [
        "| scenario | kefu SQLite | kefu PostgreSQL | django-helpdesk (SQLite WAL) | ratio (SQLite) |",
        "| --- | --- | --- | --- | --- |",
    ]
    for name in ("create", "get", "list", "list_filtered"):
        cells = []
        for backend in ("sqlite", "postgresql"):
            r = result["kefu"].get(backend, {}).get(name)
            cells.append(
                f"{r['rps']:.0f} req/s, p50 {r['p50_ms']:.1f} ms, p99 {r['p99_ms']:.1f} ms"
                if r
                else "–"
            )
        p = peer.get(name)
        cells.append(f"{p['rps']:.2f} req/s, p99 {p['p99_ms']:.0f} ms" if p else "–")
        k = result["kefu"].get("sqlite", {}).get(name)
        cells.append(f"{k['rps'] / p['rps']:.0f}×" if k and p and p["rps"] else "–")
        rows.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(rows)


if __name__ == "__main__":
    sys.exit(main())
