"""Real `kefu` processes for tests: the CLI, `kefu serve` on a free port, signals."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def kefu(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "kefu.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


class Server:
    def __init__(self, env: dict[str, str], port: int) -> None:
        self.base = f"http://127.0.0.1:{port}"
        self.log = Path(env["KEFU_DATA_DIR"]) / f"serve-{port}-{time.monotonic_ns()}.log"
        with self.log.open("wb") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "kefu.cli", "serve", "--port", str(port)],
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=log,
            )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if httpx.get(self.base + "/healthz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.1)
        self.proc.kill()
        raise RuntimeError("kefu serve did not start: " + self.log.read_text()[-2000:])

    def kill9(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> str:
        """SIGTERM, as an orchestrator sends it; returns what the server logged."""
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(20)
        return self.log.read_text()


def process_env(data_dir: Path) -> dict[str, str]:
    """The environment of a `kefu` process with its own SQLite file in ``data_dir``,
    migrated. The API suite covers PostgreSQL; process tests check what only a real
    process shows (signals, sockets, the CLI)."""
    e = {k: v for k, v in os.environ.items() if not k.startswith("KEFU_")}
    e.update(
        {
            "KEFU_DATA_DIR": str(data_dir),
            "KEFU_SECRET_KEY": "e2e-secret",
            "KEFU_WORKER_POLL_SECONDS": "0.1",
            "KEFU_JOB_LEASE_SECONDS": "2",
            "KEFU_LOG_JSON": "true",
            "KEFU_RUN_SMTP": "false",
        }
    )
    assert kefu(e, "migrate").returncode == 0
    return e
