"""Knowledge-base files (JSON Lines) in and out: parsing only; writes go through
``actions.articles.do_import_articles``. See docs/subsystems/helpcenter.md."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any, TextIO

from kefu.actions.articles import ImportRow
from kefu.domain.errors import ValidationFailed
from kefu.models import Article


def parse_kb_line(line: str, lineno: int) -> ImportRow | None:
    line = line.strip()
    if not line:
        return None
    try:
        obj = json.loads(line)
    except json.JSONDecodeError as exc:
        raise ValidationFailed(f"line {lineno}: not JSON ({exc.msg})") from None
    if not isinstance(obj, dict):
        raise ValidationFailed(f"line {lineno}: expected an object")
    raw_id = obj.get("id")
    title = obj.get("title") or obj.get("question")
    body = obj.get("body") if obj.get("body") is not None else obj.get("answer")
    if raw_id is None or not isinstance(title, str) or not title.strip():
        raise ValidationFailed(f"line {lineno}: needs an id and a title or question")
    tags = obj.get("tags") or []
    source = obj.get("translation_of")
    return ImportRow(
        id=str(raw_id),
        title=title,
        body=body if isinstance(body, str) else "",
        category=obj.get("category") if isinstance(obj.get("category"), str) else None,
        locale=str(obj["locale"]) if obj.get("locale") in ("zh-CN", "en") else "zh-CN",
        tags=[str(t) for t in tags] if isinstance(tags, list) else [],
        translation_of=str(source) if isinstance(source, str | int) and source != "" else None,
    )


def read_kb(fh: TextIO) -> Iterator[ImportRow]:
    for lineno, line in enumerate(fh, 1):
        row = parse_kb_line(line, lineno)
        if row is not None:
            yield row


def render_kb_line(article: Article) -> str:
    obj: dict[str, Any] = {
        "id": article.id,
        "title": article.title,
        "body": article.body_md,
        "category": article.category,
        "locale": article.locale,
        "status": article.status.value,
        "tags": article.tags,
    }
    if article.translation_group is not None and article.translation_group != article.id:
        # Export names the group's first article: importing the file links them again.
        obj["translation_of"] = article.translation_group
    return json.dumps(obj, ensure_ascii=False)
