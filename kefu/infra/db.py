"""Database engines and sessions for SQLite (embedded default) and PostgreSQL.

SQLite runs in WAL mode with a busy timeout and ``synchronous=NORMAL`` (durable across
a process crash, which is what "acknowledged means stored" needs; an OS crash may lose
the last transactions, as documented in docs/subsystems/storage.md). pysqlite's own
transaction handling is turned off so that ``BEGIN IMMEDIATE`` takes the write lock at
the start of a write transaction instead of failing with "database is locked" halfway.
"""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, event
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import NullPool


def is_sqlite(url: str) -> bool:
    return url.startswith("sqlite")


def make_engine(url: str, *, pool_size: int = 10, echo: bool = False) -> Engine:
    if is_sqlite(url):
        path = url.split("///", 1)[1] if "///" in url else ""
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            url,
            echo=echo,
            connect_args={"check_same_thread": False, "timeout": 30},
            pool_size=pool_size,
            max_overflow=20,
        )
        _configure_sqlite(engine)
        return engine
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
    kwargs: dict[str, Any] = {"pool_size": pool_size, "max_overflow": 20, "pool_pre_ping": True}
    if url.endswith("?poolclass=null"):
        url = url.removesuffix("?poolclass=null")
        kwargs = {"poolclass": NullPool}
    return create_engine(url, echo=echo, **kwargs)


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: sqlite3.Connection, _record: Any) -> None:
        # Autocommit at the driver level; SQLAlchemy's "begin" below emits BEGIN itself.
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.execute("PRAGMA temp_store=MEMORY")
        cur.execute("PRAGMA cache_size=-32000")
        cur.close()

    # Writers in this process queue on a lock instead of SQLite's busy handler, which
    # sleep-polls (up to 100 ms a nap) and turns contention into long tail latency.
    # The lock is taken when a transaction begins and released when the connection
    # goes back to the pool, which the Session does at every commit and rollback.
    # Other processes (a `kefu worker`) still meet at SQLite's lock and busy timeout.
    write_lock = threading.Lock()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        if conn.get_execution_options().get(READONLY):
            # Readers never block in WAL mode and need no queue: a deferred BEGIN
            # gives a consistent snapshot and lets many run at once.
            conn.exec_driver_sql("BEGIN")
            return
        record = conn.connection._connection_record
        if record is not None and not record.info.get("kefu_locked"):
            if not write_lock.acquire(timeout=30):
                raise sqlite3.OperationalError("database is locked (in-process queue)")
            record.info["kefu_locked"] = True
        # IMMEDIATE: take the write lock now; a deferred transaction that later writes
        # cannot wait for the lock and fails with SQLITE_BUSY instead.
        conn.exec_driver_sql("BEGIN IMMEDIATE")

    @event.listens_for(engine.pool, "checkin")
    def _on_checkin(_dbapi_conn: Any, record: Any) -> None:
        if record is not None and record.info.pop("kefu_locked", False):
            write_lock.release()

    @event.listens_for(engine.pool, "invalidate")
    def _on_invalidate(_dbapi_conn: Any, record: Any, _exc: Any) -> None:
        if record is not None and record.info.pop("kefu_locked", False):
            write_lock.release()


READONLY = "kefu_readonly"
READONLY_INFO = "kefu.readonly"


def make_sessionmaker(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False, autoflush=True)


def make_read_sessionmaker(engine: Engine) -> sessionmaker[Session]:
    """Sessions for reads only: on SQLite they take no write lock. Flushing one is a
    programming error and raises (see ``_refuse_writes``)."""
    return sessionmaker(
        engine.execution_options(**{READONLY: True}),
        expire_on_commit=False,
        autoflush=False,
        info={READONLY_INFO: True},
    )


@event.listens_for(Session, "before_flush")
def _refuse_writes(session: Session, _flush_context: Any, _instances: Any) -> None:
    if session.info.get(READONLY_INFO) and (session.new or session.dirty or session.deleted):
        raise RuntimeError("write attempted in a read-only session")
