"""Full-text search over ticket messages, in the database itself.

The default tokenisers of SQLite and PostgreSQL cannot find 提现 inside 如何提现到银行卡
(DESIGN.md, "Chinese text"), so what is indexed is the text already segmented by the one
analyser (``domain.text.segmented``: 如何 提币 到 银行卡, synonyms made canonical), and a
query goes through the same analyser. Two stores, one interface:

- SQLite: an FTS5 table ``message_fts`` (rowid = message id, ``ticket_id`` unindexed);
- PostgreSQL: ``message_search`` (message id, ticket id, terms) with a GIN index on
  ``to_tsvector('simple', terms)``: no stemming, no stop words, the analyser did that.

Both hold only what the message row holds: secrets were masked before the message was
stored, so they never reach the index. Created by migration 0004 (outside the ORM's
metadata; ``SEARCH_TABLES`` tells autogenerate to leave them alone).
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import Integer, TextClause, bindparam, text
from sqlalchemy.orm import Session
from sqlalchemy.sql.selectable import TextualSelect

from kefu.domain.text import analyze_query, segmented

SEARCH_TABLES = ("message_fts", "message_search")
MAX_QUERY_TOKENS = 12


def _dialect(session: Session) -> str:
    return session.get_bind().dialect.name


def index_message(session: Session, message_id: int, ticket_id: int, body: str) -> None:
    """Add one stored message to the index, in the caller's transaction."""
    index_messages(session, [(message_id, ticket_id, body)])


def index_messages(session: Session, messages: Iterable[tuple[int, int, str]]) -> None:
    """Add stored messages (message id, ticket id, body) to the index in one
    executemany, in the caller's transaction (the chat writer stores many at once)."""
    rows = [
        {"m": message_id, "t": ticket_id, "terms": terms}
        for message_id, ticket_id, body in messages
        if (terms := segmented(body))
    ]
    if not rows:
        return
    if _dialect(session) == "sqlite":
        sql = "INSERT INTO message_fts (rowid, terms, ticket_id) VALUES (:m, :terms, :t)"
    else:
        sql = "INSERT INTO message_search (message_id, ticket_id, terms) VALUES (:m, :t, :terms)"
    session.execute(text(sql), rows)


def move_messages(session: Session, message_ids: Iterable[int], ticket_id: int) -> None:
    """Messages moved to another ticket (a merge): their index rows follow."""
    ids = list(message_ids)
    if not ids:
        return
    if _dialect(session) == "sqlite":
        stmt = text("UPDATE message_fts SET ticket_id = :t WHERE rowid IN :ids")
    else:
        stmt = text("UPDATE message_search SET ticket_id = :t WHERE message_id IN :ids")
    session.execute(stmt.bindparams(bindparam("ids", expanding=True)), {"t": ticket_id, "ids": ids})


def query_tokens(query: str) -> list[str]:
    return analyze_query(query)[:MAX_QUERY_TOKENS]


def tickets_matching(dialect: str, query: str) -> TextualSelect | None:
    """``SELECT ticket_id`` of the messages holding every word of ``query`` (for an
    ``IN``), or None when the query has no searchable word."""
    tokens = query_tokens(query)
    if not tokens:
        return None
    stmt: TextClause
    if dialect == "sqlite":
        # Each token a quoted FTS5 string (quotes doubled): the query language is never
        # exposed, so AND/OR/NEAR/* typed by an agent are just words.
        match = " ".join('"' + t.replace('"', '""') + '"' for t in tokens)
        stmt = text("SELECT ticket_id FROM message_fts WHERE message_fts MATCH :q").bindparams(
            q=match
        )
    else:
        stmt = text(
            "SELECT ticket_id FROM message_search "
            "WHERE to_tsvector('simple', terms) @@ plainto_tsquery('simple', :q)"
        ).bindparams(q=" ".join(tokens))
    return stmt.columns(ticket_id=Integer)
