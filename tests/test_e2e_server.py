"""End to end through real processes: the `kefu` CLI, `kefu serve` on a socket, and a
`kill -9` in the middle of a job that must not lose it."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import httpx
import pyotp
import pytest

from tests.processes import Server, free_port, kefu, process_env

pytestmark = pytest.mark.slow


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return process_env(tmp_path)


def test_cli_and_api_over_a_real_socket(env: dict[str, str]) -> None:
    r = kefu(
        env, "createadmin", "--email", "root@kx-exchange.example", "--password", "a long enough pw"
    )
    assert r.returncode == 0, r.stderr
    uri = next(line for line in r.stdout.splitlines() if line.startswith("otpauth://"))
    secret = pyotp.parse_uri(uri).secret
    token = kefu(
        env,
        "token",
        "create",
        "--agent",
        "root@kx-exchange.example",
        "--scope",
        "read",
        "--scope",
        "write",
        "--scope",
        "admin",
    ).stdout.strip()
    assert token.startswith("kefu_")
    assert kefu(env, "token", "create", "--agent", "nobody@x.example").returncode == 2
    assert kefu(env, "migrate").returncode == 0  # idempotent
    server = Server(env, free_port())
    try:
        h = {"Authorization": f"Bearer {token}"}
        created = httpx.post(
            server.base + "/api/v1/tickets",
            json={"subject": "手机丢了", "body": "谷歌验证也丢了"},
            headers=h,
        )
        assert created.status_code == 201, created.text
        number = created.json()["number"]
        got = httpx.get(f"{server.base}/api/v1/tickets/{number}", headers=h).json()
        assert got["subject"] == "手机丢了"
        login = httpx.post(
            server.base + "/api/v1/auth/login",
            json={
                "email": "root@kx-exchange.example",
                "password": "a long enough pw",
                "totp": pyotp.TOTP(secret).now(),
            },
        )
        assert login.status_code == 200, login.text
        spec = httpx.get(server.base + "/api/v1/openapi.json").json()
        assert "/api/v1/tickets" in spec["paths"]
        assert '"msg":"kefu stopped"' in server.stop()  # graceful: the lifespan ran to its end
    finally:
        if server.proc.poll() is None:
            server.proc.kill()


class SlowReceiver(BaseHTTPRequestHandler):
    calls: ClassVar[list[str]] = []
    first_arrived = threading.Event()
    release = threading.Event()

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        type(self).calls.append(self.headers["X-Kefu-Delivery"])
        if len(type(self).calls) == 1:
            type(self).first_arrived.set()
            type(self).release.wait(20)  # hold the job in flight while the server dies
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def receiver() -> Iterator[str]:
    SlowReceiver.calls = []
    SlowReceiver.first_arrived.clear()
    SlowReceiver.release.clear()
    server = ThreadingHTTPServer(("127.0.0.1", 0), SlowReceiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hook"
    SlowReceiver.release.set()
    server.shutdown()
    server.server_close()


def test_kill_9_mid_job_loses_no_job(env: dict[str, str], receiver: str) -> None:
    kefu(
        env, "createadmin", "--email", "root@kx-exchange.example", "--password", "a long enough pw"
    )
    token = kefu(
        env,
        "token",
        "create",
        "--agent",
        "root@kx-exchange.example",
        "--scope",
        "read",
        "--scope",
        "write",
        "--scope",
        "admin",
    ).stdout.strip()
    h = {"Authorization": f"Bearer {token}"}
    port = free_port()
    server = Server(env, port)
    try:
        hook = httpx.post(
            server.base + "/api/v1/webhooks",
            json={"url": receiver, "events": ["ticket.created"]},
            headers=h,
        )
        assert hook.status_code == 201, hook.text
        created = httpx.post(server.base + "/api/v1/tickets", json={"subject": "被盗"}, headers=h)
        assert created.status_code == 201
        assert SlowReceiver.first_arrived.wait(15), "the job never started"
        server.kill9()  # mid-job: the receiver has the request, the server never hears back
    finally:
        if server.proc.poll() is None:
            server.proc.kill()
    SlowReceiver.release.set()
    server = Server(env, port)
    try:
        deadline = time.monotonic() + 20
        while len(SlowReceiver.calls) < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert len(SlowReceiver.calls) >= 2, "the job was lost"
        assert len(set(SlowReceiver.calls)) == 1  # the same delivery, redelivered
    finally:
        server.stop()
