"""Test harness: every database test runs on SQLite, and on PostgreSQL when reachable
(required under CI=true); pub/sub tests run on memory and on Redis likewise.

Each test runs inside a transaction that is rolled back at the end: the app under
test and the test's own session share one connection, and the app's commits become
savepoint releases.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.orm import Session, sessionmaker

from kefu.events import PUBLISHER_KEY, RealtimeEvent
from kefu.infra.db import READONLY_INFO, make_engine
from kefu.infra.migrate import upgrade
from kefu.settings import Settings

IN_CI = os.environ.get("CI", "").lower() == "true"
PG_URL = os.environ.get("KEFU_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("KEFU_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")


def _reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def _pg_available() -> bool:
    ok = _reachable("127.0.0.1", 5432)
    if not ok and IN_CI:
        pytest.exit("CI=true but PostgreSQL at 127.0.0.1:5432 is not reachable", returncode=3)
    return ok


def _redis_available() -> bool:
    ok = _reachable("127.0.0.1", 6379)
    if not ok and IN_CI:
        pytest.exit("CI=true but Redis at 127.0.0.1:6379 is not reachable", returncode=3)
    return ok


HAS_PG = _pg_available()
HAS_REDIS = _redis_available()
DB_BACKENDS = ["sqlite", *(["postgresql"] if HAS_PG else [])]
PUBSUB_BACKENDS = ["memory", *(["redis"] if HAS_REDIS else [])]


def pytest_report_header() -> list[str]:
    return [f"kefu backends: databases={DB_BACKENDS} pubsub={PUBSUB_BACKENDS} CI={IN_CI}"]


@pytest.fixture(scope="session")
def tmp_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("kefu")


def _reset_pg(url: str) -> None:
    engine = make_engine(url)
    with engine.begin() as conn:
        conn.execute(text("DROP SCHEMA IF EXISTS public CASCADE"))
        conn.execute(text("CREATE SCHEMA public"))
    engine.dispose()


@pytest.fixture(scope="session", params=DB_BACKENDS)
def database_url(request: pytest.FixtureRequest, tmp_root: Path) -> str:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_root / 'test.db'}"
    else:
        url = PG_URL
        _reset_pg(url)
    upgrade(url)
    return url


@pytest.fixture(scope="session")
def engine(database_url: str) -> Iterator[Engine]:
    eng = make_engine(database_url)
    yield eng
    eng.dispose()


class EventSink:
    """Collects what would be published after each commit."""

    def __init__(self) -> None:
        self.events: list[RealtimeEvent] = []

    def __call__(self, events: list[RealtimeEvent]) -> None:
        self.events.extend(events)

    def types(self) -> list[str]:
        return [e.type for e in self.events]

    def clear(self) -> None:
        self.events.clear()


@pytest.fixture
def sink() -> EventSink:
    return EventSink()


@pytest.fixture
def connection(engine: Engine) -> Iterator[Connection]:
    conn = engine.connect()
    outer = conn.begin()
    yield conn
    outer.rollback()
    conn.close()


@pytest.fixture
def sessions(connection: Connection, sink: EventSink) -> sessionmaker[Session]:
    """A sessionmaker whose sessions all live inside one rolled-back transaction:
    each session's commit releases a savepoint."""
    return sessionmaker(
        bind=connection,
        expire_on_commit=False,
        join_transaction_mode="create_savepoint",
        info={PUBLISHER_KEY: sink},
    )


@pytest.fixture
def read_sessions(connection: Connection) -> sessionmaker[Session]:
    """Read sessions on the same connection. They take no savepoint of their own: one
    left open around a write would roll the write back when it closes."""
    return sessionmaker(
        bind=connection,
        expire_on_commit=False,
        autoflush=False,
        join_transaction_mode="rollback_only",
        info={READONLY_INFO: True},
    )


@pytest.fixture
def db(sessions: sessionmaker[Session]) -> Iterator[Session]:
    with sessions() as session:
        yield session


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    return Settings(
        data_dir=tmp_path,
        database_url=database_url,
        secret_key="test-secret-key",  # type: ignore[arg-type]
        run_workers=False,
        run_smtp=False,
        contact_jwt_key="test-contact-jwt-key-of-32-bytes!",  # type: ignore[arg-type]
        log_json=False,
    )


@pytest.fixture
def app(
    settings: Settings, sessions: sessionmaker[Session], read_sessions: sessionmaker[Session]
) -> object:
    from kefu.web.app import create_app

    return create_app(settings, sessions=sessions, read_sessions=read_sessions)


@pytest.fixture
def client(app: object) -> Iterator[object]:
    from starlette.testclient import TestClient

    with TestClient(app, raise_server_exceptions=False) as c:  # type: ignore[arg-type]
        yield c
