"""Running Alembic migrations from code (``kefu migrate``, tests, ``make run``)."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config

from kefu.infra.search.messages import SEARCH_TABLES

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent.parent / "migrations"


def alembic_config(database_url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    return cfg


def upgrade(database_url: str, revision: str = "head") -> None:
    command.upgrade(alembic_config(database_url), revision)


def include_object(
    obj: object, name: str | None, type_: str, reflected: bool, compare_to: object
) -> bool:
    """What autogenerate and the schema test compare: everything but the full-text
    index tables, which live outside the ORM's metadata (SQLite's FTS5 table and its
    shadow tables, PostgreSQL's GIN-indexed table); see infra/search/messages.py."""
    table = getattr(obj, "table", None) if type_ == "index" else obj
    table_name = getattr(table, "name", name) if type_ == "index" else name
    return not (table_name or "").startswith(SEARCH_TABLES)
