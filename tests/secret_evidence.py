"""Everything kefu could have kept of what a customer sent, gathered for the per-channel
proof that no secret is stored, indexed, filed or logged (issue 6, docs/security.md).

- the database: every table that exists in it, not only the ORM's metadata, so the
  full-text index (``message_fts`` and its FTS5 shadow tables on SQLite,
  ``message_search`` on PostgreSQL, both created by migration 0004 outside the ORM)
  is read too, and so is any table added later;
- the file store: every file under the app's ``files/`` directory (attachments, kept
  originals of mails);
- the logs: every captured record with its ``extra`` fields (as the JSON formatter
  writes them), and a real process's stderr where a test has it.

A secret counts as kept when it appears as sent or as the analyser indexes it
(``segmented``: lower-cased, punctuation dropped: ``Hunter2024!`` is indexed as
``hunter2024``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import inspect, text
from sqlalchemy.orm import Session

from kefu.domain.text import segmented
from kefu.infra.logs import JsonFormatter
from kefu.infra.search.messages import SEARCH_TABLES
from kefu.models import Base


def _table_names(db: Session) -> list[str]:
    return sorted(inspect(db.connection()).get_table_names())


def _rows_text(db: Session, table: str) -> list[str]:
    quoted = db.get_bind().dialect.identifier_preparer.quote(table)
    out: list[str] = []
    for row in db.execute(text(f"SELECT * FROM {quoted}")):  # noqa: S608  # names from the schema
        for value in row:
            if value is None:
                continue
            if isinstance(value, bytes | memoryview):
                out.append(bytes(value).decode("utf-8", "replace"))
            else:
                out.append(str(value))
    return out


def is_index_table(name: str) -> bool:
    return any(name == t or name.startswith(t + "_") for t in SEARCH_TABLES)


def all_text_in_database(db: Session) -> str:
    """Every value of every table in the database (index tables included), as one blob."""
    db.flush()
    chunks: list[str] = []
    for table in _table_names(db):
        chunks.extend(_rows_text(db, table))
    return "\n".join(chunks)


def index_text(db: Session) -> str:
    """Only the full-text index tables: a test shows they were read and are not empty."""
    return "\n".join(
        chunk
        for table in _table_names(db)
        if is_index_table(table)
        for chunk in _rows_text(db, table)
    )


def files_text(root: Path) -> str:
    """Every file under the file store's root, decoded leniently."""
    if not root.exists():
        return ""
    return "\n".join(
        p.read_bytes().decode("utf-8", "replace") for p in sorted(root.rglob("*")) if p.is_file()
    )


_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}
# The test's own clients log what they send; that is not kefu keeping anything.
_TEST_CLIENT_LOGGERS = ("websockets.client",)


def _safe_str(value: object) -> str:
    try:
        return str(value)
    except ReferenceError:  # a weakref extra (websockets' connection) that has died since
        return ""


def _record_text(record: logging.LogRecord) -> str:
    try:
        return JsonFormatter().format(record)
    except (TypeError, ReferenceError):
        # Formatted after the fact: the message and every extra field, one by one.
        extras = [_safe_str(v) for k, v in vars(record).items() if k not in _STANDARD]
        return " ".join([record.getMessage(), *extras])


def logs_text(caplog: pytest.LogCaptureFixture) -> str:
    """What was logged, with every ``extra`` field (the JSON formatter writes them)."""
    records = [r for r in caplog.records if not r.name.startswith(_TEST_CLIENT_LOGGERS)]
    return "\n".join(_record_text(r) for r in records)


@dataclass(frozen=True, slots=True)
class Evidence:
    database: str
    index: str
    files: str
    logs: str

    def places(self) -> dict[str, str]:
        # The index is inside the database blob as well; named apart for the message.
        return {
            "database": self.database,
            "search index": self.index,
            "file store": self.files,
            "logs": self.logs,
        }


def gather(
    db: Session,
    *,
    files_dir: Path | None,
    caplog: pytest.LogCaptureFixture | None,
    stderr: str = "",
) -> Evidence:
    logs = logs_text(caplog) if caplog is not None else ""
    return Evidence(
        database=all_text_in_database(db),
        index=index_text(db),
        files=files_text(files_dir) if files_dir is not None else "",
        logs=logs + "\n" + stderr,
    )


def assert_kept_nowhere(evidence: Evidence, secrets: list[str]) -> None:
    for secret in secrets:
        forms = {secret, segmented(secret)} - {""}
        for place, blob in evidence.places().items():
            for form in forms:
                assert form not in blob, f"{secret[:12]}… is in the {place}"


def assert_reads_everything(db: Session) -> None:
    """The database blob reads every table there is: the ORM's and the index's."""
    names = set(_table_names(db))
    assert {t.name for t in Base.metadata.sorted_tables} <= names
    assert any(is_index_table(n) for n in names), "no full-text index table found"
