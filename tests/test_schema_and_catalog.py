"""The migrations match the models, and every message the core raises is translated."""

from __future__ import annotations

import re
from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy.engine import Engine

from kefu.infra.i18n import gettext_for, negotiate, translations
from kefu.infra.migrate import include_object
from kefu.models import Base

KEFU = Path(__file__).resolve().parent.parent / "kefu"


def test_migrations_match_models(engine: Engine) -> None:
    with engine.connect() as conn:
        ctx = MigrationContext.configure(
            conn, opts={"compare_type": True, "include_object": include_object}
        )
        diff = compare_metadata(ctx, Base.metadata)
    assert diff == []


_RAISED = re.compile(
    r"(?:(?:NotFound|PermissionDenied|NotAuthenticated|InvalidTransition|Conflict|"
    r"ValidationFailed|RateLimited|PayloadTooLarge)\(|(?:ChatError|self\.error)\(\s*\"[a-z_]+\",)"
    r"\s*\"([^\"]+)\""
)


def test_every_raised_message_has_a_zh_cn_translation() -> None:
    catalog = translations("zh-CN")
    missing = []
    for path in KEFU.rglob("*.py"):
        for message in _RAISED.findall(path.read_text(encoding="utf-8")):
            if catalog.gettext(message) == message:
                missing.append(f"{path.relative_to(KEFU)}: {message}")
    assert missing == []


def test_negotiation() -> None:
    assert negotiate(None) == "zh-CN"
    assert negotiate("en") == "en"
    assert negotiate("en;q=0.5, zh-TW;q=0.8") == "zh-CN"
    assert negotiate("fr, de") == "zh-CN"
    assert negotiate("en;q=abc") == "zh-CN"
    assert negotiate("en-GB") == "en"
    assert gettext_for("en", "ticket not found") == "ticket not found"
    assert gettext_for("zh-CN", "ticket not found") == "找不到该工单"


_TEMPLATE_TEXT = re.compile(r"""_\(\s*(?:"([^"]+)"|'([^']+)')""")


def test_every_template_text_has_a_zh_cn_translation() -> None:
    """Pages are zh-CN first: a string in a template without a translation would show
    up in English on a Chinese page."""
    catalog = translations("zh-CN")
    missing = []
    for path in (KEFU / "templates").rglob("*.html"):
        for double, single in _TEMPLATE_TEXT.findall(path.read_text(encoding="utf-8")):
            message = double or single
            if catalog.gettext(message) == message:
                missing.append(f"{path.relative_to(KEFU)}: {message}")
    assert missing == []
