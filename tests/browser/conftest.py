"""Browser tests: a real `kefu serve` process and Debian's headless Chromium, driven
by Playwright (``playwright install`` cannot download browsers here)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from kefu.infra.db import make_engine
from tests.conftest import DB_BACKENDS, PG_URL

CHROMIUM = os.environ.get("KEFU_CHROMIUM", "/usr/bin/chromium")
IN_CI = os.environ.get("CI", "").lower() == "true"
SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
# The main journeys run against both databases (``live_server`` indirect); the rest on
# SQLite, the embedded default.
BACKENDS = DB_BACKENDS


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# The exchange's own page, on another origin than kefu's (localhost, not 127.0.0.1),
# that embeds the widget: the live server allows it across origins (CORS).
HOST_PAGE_PORT = _free_port()
HOST_PAGE = f"http://localhost:{HOST_PAGE_PORT}"


@pytest.fixture(scope="session")
def chromium_path() -> str:
    if not shutil.which(CHROMIUM) and not Path(CHROMIUM).exists():
        if IN_CI:
            pytest.fail(f"CI=true but Chromium is missing at {CHROMIUM}")
        pytest.skip(f"Chromium not installed at {CHROMIUM} (make test installs it)")
    return CHROMIUM


def _fresh_pg_database() -> str:
    name = "kefu_browser_test"
    admin = make_engine(PG_URL.rsplit("/", 1)[0] + "/postgres?poolclass=null")
    with admin.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        conn.execute(text(f"CREATE DATABASE {name}"))
    admin.dispose()
    return PG_URL.rsplit("/", 1)[0] + "/" + name


@pytest.fixture(scope="session")
def live_server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """`kefu serve` with the demo data loaded, on a free port: on SQLite, or on
    PostgreSQL for the journeys parametrised with ``BACKENDS`` (indirect)."""
    backend = getattr(request, "param", "sqlite")
    data = tmp_path_factory.mktemp(f"live-{backend}")
    env = {k: v for k, v in os.environ.items() if not k.startswith("KEFU_")}
    env.update(
        {
            "KEFU_DATA_DIR": str(data),
            "KEFU_SECRET_KEY": "browser-tests",
            "KEFU_RUN_SMTP": "false",
            "KEFU_WIDGET_ORIGINS": f'["{HOST_PAGE}"]',
        }
    )
    if backend == "postgresql":
        env["KEFU_DATABASE_URL"] = _fresh_pg_database()
    for cmd in ("migrate", "demo"):
        subprocess.run(
            [sys.executable, "-m", "kefu.cli", cmd], env=env, check=True, capture_output=True
        )
    port = _free_port()
    log = (data / "serve.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "kefu.cli", "serve", "--port", str(port)],
        env=env,
        stdout=log,
        stderr=log,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(base + "/healthz", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            time.sleep(0.1)
    else:
        proc.kill()
        raise RuntimeError((data / "serve.log").read_text()[-2000:])
    yield base
    proc.terminate()
    proc.wait(20)
    log.close()


@pytest.fixture
def browser(chromium_path: str) -> Iterator[Any]:
    """Debian's headless Chromium, with the flags this machine's closed network needs."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(
            executable_path=chromium_path,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
            ],
        )
        yield b
        b.close()


@pytest.fixture
def page(browser: Any) -> Iterator[object]:
    context = browser.new_context(locale="zh-CN", viewport={"width": 1100, "height": 760})
    yield context.new_page()
    context.close()
