"""Writes on help-center articles: create, edit (with history), import, feedback, and the
search log. See docs/subsystems/helpcenter.md."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from kefu import events
from kefu.actions.history import record_event
from kefu.domain.access import Actor, ActorKind
from kefu.domain.clock import utcnow
from kefu.domain.errors import NotFound, PermissionDenied, ValidationFailed
from kefu.domain.helpcenter import (
    CATEGORY_BY_SLUG,
    ArticleStatus,
    is_valid_article_id,
    new_article_id,
    normalize_category,
)
from kefu.infra.markdown import render_markdown
from kefu.models import Article, ArticleFeedback, ArticleRevision, HelpSearch

MAX_TITLE = 300
MAX_BODY = 100_000
LOCALES = ("zh-CN", "en")


@dataclass(frozen=True, slots=True)
class ArticleData:
    title: str
    body_md: str = ""
    category: str | None = None
    locale: str = "zh-CN"
    status: ArticleStatus = ArticleStatus.PUBLISHED
    position: int | None = None
    tags: Sequence[str] = ()
    related_ids: Sequence[str] = ()
    # The id of the article this one translates (any member of its group); None keeps
    # whatever link the article has.
    translation_of: str | None = None


def _check_writer(actor: Actor) -> None:
    if actor.kind is ActorKind.CONTACT:
        raise PermissionDenied("agents only")


def _clean(data: ArticleData) -> ArticleData:
    title = " ".join(data.title.split())
    if not title:
        raise ValidationFailed("title is required", field="title")
    if len(title) > MAX_TITLE:
        raise ValidationFailed("title too long", field="title")
    body = data.body_md.replace("\x00", "")
    if len(body) > MAX_BODY:
        raise ValidationFailed("body too long", field="body")
    if data.category is not None and data.category not in CATEGORY_BY_SLUG:
        raise ValidationFailed("unknown category", field="category")
    if data.locale not in LOCALES:
        raise ValidationFailed("unsupported locale", field="locale")
    tags = [t.strip()[:40] for t in data.tags if t.strip()][:20]
    related = [r for r in data.related_ids if is_valid_article_id(r)][:10]
    return ArticleData(
        title=title,
        body_md=body,
        category=normalize_category(data.category),
        locale=data.locale,
        status=data.status,
        position=data.position,
        tags=tags,
        related_ids=related,
        translation_of=data.translation_of,
    )


def _link_translation(session: Session, article: Article, source_id: str) -> bool:
    """Put ``article`` in the translation group of ``source_id``: one article in several
    languages, at most one per locale. Returns whether the link is new."""
    if source_id == article.id:
        raise ValidationFailed("an article cannot be its own translation", field="translation_of")
    source = session.get(Article, source_id) if is_valid_article_id(source_id) else None
    if source is None:
        raise ValidationFailed("unknown article", field="translation_of")
    group = source.translation_group or source.id
    if article.translation_group == group:
        return False
    _check_locale_free(session, group, article.locale, article.id)
    source.translation_group = group
    article.translation_group = group
    return True


def _check_locale_free(session: Session, group: str, locale: str, article_id: str) -> None:
    # The group's first article may not carry the group yet (it is its own id).
    taken = session.scalar(
        select(Article.id).where(
            or_(Article.translation_group == group, Article.id == group),
            Article.locale == locale,
            Article.id != article_id,
        )
    )
    if taken is not None:
        raise ValidationFailed(
            "the article already has a translation in this language",
            field="translation_of",
            value=taken,
        )


def _revise(session: Session, actor: Actor, article: Article) -> None:
    session.add(
        ArticleRevision(
            article_id=article.id,
            revision=article.revision,
            title=article.title,
            body_md=article.body_md,
            status=article.status,
            edited_by_agent_id=actor.id if actor.kind is ActorKind.AGENT else None,
        )
    )


def do_save_article(
    session: Session, actor: Actor, data: ArticleData, *, article_id: str | None = None
) -> tuple[Article, bool]:
    """Create the article or, if ``article_id`` exists, edit it (a new revision when
    anything changed). Returns the article and whether anything was written."""
    _check_writer(actor)
    data = _clean(data)
    if article_id is not None and not is_valid_article_id(article_id):
        raise ValidationFailed("invalid article id", field="id")
    article = session.get(Article, article_id) if article_id is not None else None
    now = utcnow()
    if article is None:
        article = Article(
            id=article_id or new_article_id(),
            locale=data.locale,
            category=data.category or normalize_category(None),
            title=data.title,
            body_md=data.body_md,
            body_html=render_markdown(data.body_md),
            status=data.status,
            position=data.position or 0,
            tags=list(data.tags),
            related_ids=list(data.related_ids),
            revision=1,
            created_at=now,
            updated_at=now,
        )
        session.add(article)
        if data.translation_of is not None:
            _link_translation(session, article, data.translation_of)
        session.flush()
        _revise(session, actor, article)
        record_event(
            session, actor, events.ARTICLE_SAVED, data={"article_id": article.id, "revision": 1}
        )
        return article, True
    changed = (
        article.title != data.title
        or article.body_md != data.body_md
        or article.category != data.category
        or article.locale != data.locale
        or article.status is not data.status
        or (data.position is not None and article.position != data.position)
        or article.tags != list(data.tags)
        or article.related_ids != list(data.related_ids)
    )
    if article.locale != data.locale and article.translation_group is not None:
        _check_locale_free(session, article.translation_group, data.locale, article.id)
    # A new link is written on the articles themselves; it is no new revision of the text.
    linked = data.translation_of is not None and _link_translation(
        session, article, data.translation_of
    )
    if not changed:
        return article, linked
    article.title = data.title
    if article.body_md != data.body_md:
        article.body_md = data.body_md
        article.body_html = render_markdown(data.body_md)
    article.category = data.category or article.category
    article.locale = data.locale
    article.status = data.status
    if data.position is not None:
        article.position = data.position
    article.tags = list(data.tags)
    article.related_ids = list(data.related_ids)
    article.revision += 1
    article.updated_at = now
    session.flush()
    _revise(session, actor, article)
    record_event(
        session,
        actor,
        events.ARTICLE_SAVED,
        data={"article_id": article.id, "revision": article.revision},
    )
    return article, True


def do_record_feedback(
    session: Session, article_id: str, *, helpful: bool, comment: str = ""
) -> None:
    """A reader's "was this helpful?"; counters are bumped in SQL so votes never race."""
    counter = Article.helpful_count if helpful else Article.unhelpful_count
    updated = session.execute(
        update(Article)
        .where(Article.id == article_id, Article.status == ArticleStatus.PUBLISHED)
        .values({counter: counter + 1})
        .execution_options(synchronize_session=False)
    )
    if updated.rowcount == 0:  # type: ignore[attr-defined]  # CursorResult from an UPDATE
        raise NotFound("article not found")
    session.add(ArticleFeedback(article_id=article_id, helpful=helpful, comment=comment[:1000]))


def do_log_search(session: Session, query: str, locale: str, results: Sequence[str]) -> None:
    session.add(
        HelpSearch(
            query=query[:200],
            locale=locale,
            result_count=len(results),
            top_article_id=results[0] if results else None,
        )
    )


@dataclass(frozen=True, slots=True)
class ImportRow:
    """One line of a knowledge-base file: ``id``, ``title`` or ``question``, ``body`` or
    ``answer`` (may be null), optional ``category``, ``locale``, ``tags`` and
    ``translation_of`` (the id of the article this one translates)."""

    id: str
    title: str
    body: str = ""
    category: str | None = None
    locale: str = "zh-CN"
    tags: Sequence[str] = ()
    translation_of: str | None = None


@dataclass
class ImportResult:
    created: int = 0
    updated: int = 0
    unchanged: int = 0


def do_import_articles(
    session: Session, actor: Actor, rows: Sequence[ImportRow], result: ImportResult
) -> None:
    """Create or update articles by id; running the same file twice changes nothing."""
    _check_writer(actor)
    ids = [r.id for r in rows]
    for bad in ids:
        if not is_valid_article_id(bad):
            raise ValidationFailed("invalid article id", field="id", value=bad[:64])
    # One query loads the batch's existing rows into the identity map.
    existing = {a.id for a in session.scalars(select(Article).where(Article.id.in_(ids)))}
    saved: dict[str, tuple[Article, bool]] = {}
    for row in rows:
        category = row.category if row.category in CATEGORY_BY_SLUG else None
        article, changed = do_save_article(
            session,
            actor,
            ArticleData(
                title=row.title,
                body_md=row.body,
                category=category,
                locale=row.locale,
                tags=row.tags,
            ),
            article_id=row.id,
        )
        saved[row.id] = (article, changed)
        # Links after the batch is saved: a file may list a translation before its source.
        if row.translation_of is None:
            _count(result, row.id in existing, changed)
    for row in rows:
        if row.translation_of is not None:
            article, changed = saved[row.id]
            linked = _link_translation(session, article, row.translation_of)
            _count(result, row.id in existing, changed or linked)
    session.flush()


def _count(result: ImportResult, existed: bool, changed: bool) -> None:
    if not existed:
        result.created += 1
    elif changed:
        result.updated += 1
    else:
        result.unchanged += 1
