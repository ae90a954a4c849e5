"""Migrations that fill a new column or table from rows already stored, run from the
revision before them on both databases. The rows are written in SQL: the models are
the newest revision's and would name columns the old schema lacks."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select, text
from sqlalchemy.engine import Engine

from kefu.actions.guard import display_body, display_text
from kefu.domain.access import SYSTEM
from kefu.infra.db import make_engine, make_sessionmaker
from kefu.infra.migrate import upgrade
from kefu.models import Message
from kefu.queries.tickets import TicketFilter, list_tickets
from tests.conftest import DB_BACKENDS, PG_URL


@pytest.fixture
def empty_database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A database of its own, for a migration run from an older revision."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'old.db'}"
        return
    name = f"kefu_migration_{uuid.uuid4().hex[:8]}"
    admin = make_engine(PG_URL.rsplit("/", 1)[0] + "/postgres?poolclass=null")
    with admin.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield PG_URL.rsplit("/", 1)[0] + "/" + name
    finally:
        with admin.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def _old_ticket(engine: Engine, bodies: list[str]) -> None:
    """A ticket with one message per body, as any revision since 0001 stores them."""
    with engine.begin() as conn:
        ticket_id = conn.execute(
            text(
                "INSERT INTO tickets (number, subject, kind, channel, status, priority,"
                " message_count, last_seq, created_at, updated_at) VALUES"
                " ('K00000000', '旧工单', 'question', 'email', 'open', 'normal',"
                " :n, :n, CURRENT_TIMESTAMP, CURRENT_TIMESTAMP) RETURNING id"
            ),
            {"n": len(bodies)},
        ).scalar_one()
        conn.execute(
            text(
                "INSERT INTO messages (ticket_id, seq, author_type, direction, is_internal,"
                " channel, body, meta, created_at) VALUES (:t, :seq, 'contact', 'in', false,"
                " 'email', :body, '{}', CURRENT_TIMESTAMP)"
            ),
            [{"t": ticket_id, "seq": i, "body": b} for i, b in enumerate(bodies, 1)],
        )


@pytest.mark.parametrize("empty_database", DB_BACKENDS, indirect=True)
def test_0004_indexes_messages_already_stored(empty_database: str) -> None:
    upgrade(empty_database, "0003")
    engine = make_engine(empty_database)
    _old_ticket(engine, ["升级之前的提现问题"])
    upgrade(empty_database)
    with make_sessionmaker(engine)() as s:
        page = list_tickets(s, SYSTEM, TicketFilter(text="提现"))
        assert [t.subject for t in page.items] == ["旧工单"]
        assert s.scalar(select(Message.body)) == "升级之前的提现问题"
    engine.dispose()


@pytest.mark.parametrize("empty_database", DB_BACKENDS, indirect=True)
def test_0006_stores_the_display_text_of_messages_already_stored(empty_database: str) -> None:
    upgrade(empty_database, "0005")
    engine = make_engine(empty_database)
    bodies = ["请回电 13800138000，谢谢", "提现三天未到账", ""]
    _old_ticket(engine, bodies)
    upgrade(empty_database)
    with make_sessionmaker(engine)() as s:
        messages = s.scalars(select(Message).order_by(Message.seq)).all()
        stored = [m.display_body for m in messages]
        # The phone is masked; a body with nothing to mask is not stored twice.
        assert stored == ["请回电 138****8000，谢谢", "", ""]
        assert [display_body(m) for m in messages] == [display_text(b) for b in bodies]
        assert [m.body for m in messages] == bodies  # the stored text is untouched
    engine.dispose()
