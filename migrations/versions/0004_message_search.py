"""message search: pre-segmented full-text index of ticket messages

Revision ID: 0004
Revises: 0003

SQLite gets an FTS5 table, PostgreSQL a table with a GIN index over
to_tsvector('simple', terms); see kefu/infra/search/messages.py. Messages already
stored are indexed here, in batches.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0004'
down_revision: str | None = '0003'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BATCH = 2000


def upgrade() -> None:
    from kefu.domain.text import segmented

    bind = op.get_bind()
    sqlite = bind.dialect.name == "sqlite"
    if sqlite:
        op.execute(
            "CREATE VIRTUAL TABLE message_fts USING fts5("
            "terms, ticket_id UNINDEXED, tokenize = 'unicode61 remove_diacritics 0')"
        )
        insert = sa.text("INSERT INTO message_fts (rowid, terms, ticket_id) VALUES (:m, :terms, :t)")
    else:
        op.execute(
            "CREATE TABLE message_search ("
            "message_id INTEGER PRIMARY KEY REFERENCES messages (id) ON DELETE CASCADE, "
            "ticket_id INTEGER NOT NULL, terms TEXT NOT NULL)"
        )
        op.execute(
            "CREATE INDEX ix_message_search_terms ON message_search "
            "USING gin (to_tsvector('simple', terms))"
        )
        op.execute("CREATE INDEX ix_message_search_ticket ON message_search (ticket_id)")
        insert = sa.text(
            "INSERT INTO message_search (message_id, ticket_id, terms) VALUES (:m, :t, :terms)"
        )
    last = 0
    while True:
        rows = bind.execute(
            sa.text("SELECT id, ticket_id, body FROM messages WHERE id > :last ORDER BY id LIMIT :n"),
            {"last": last, "n": BATCH},
        ).all()
        if not rows:
            break
        batch = [{"m": m, "t": t, "terms": segmented(body or "")} for m, t, body in rows]
        batch = [b for b in batch if b["terms"]]
        if batch:
            bind.execute(insert, batch)
        last = rows[-1][0]


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        op.execute("DROP TABLE message_fts")
    else:
        op.execute("DROP TABLE message_search")
