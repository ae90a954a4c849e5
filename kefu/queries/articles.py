"""Help-center reads: listings, one article, analytics, and the ranked search service."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from kefu.domain.access import Actor
from kefu.domain.errors import NotFound
from kefu.domain.helpcenter import ArticleStatus
from kefu.infra.search.articles import ArticleIndex
from kefu.models import Article, ArticleRevision, HelpSearch


def list_published(
    session: Session, locale: str, category: str | None = None, limit: int = 500
) -> list[Article]:
    stmt = select(Article).where(
        Article.locale == locale, Article.status == ArticleStatus.PUBLISHED
    )
    if category is not None:
        stmt = stmt.where(Article.category == category)
    stmt = stmt.order_by(Article.category, Article.position, Article.title).limit(limit)
    return list(session.scalars(stmt).all())


def list_articles_for_agents(
    session: Session, *, status: ArticleStatus | None, after_id: str, limit: int
) -> list[Article]:
    stmt = select(Article).where(Article.id > after_id)
    if status is not None:
        stmt = stmt.where(Article.status == status)
    return list(session.scalars(stmt.order_by(Article.id).limit(limit)).all())


def get_published_article(session: Session, article_id: str) -> Article:
    article = session.get(Article, article_id)
    if article is None or article.status is not ArticleStatus.PUBLISHED:
        raise NotFound("article not found")
    return article


def article_translations(
    session: Session, article: Article, *, published_only: bool = True
) -> dict[str, str]:
    """The other languages of ``article``: locale → article id (one each)."""
    if article.translation_group is None:
        return {}
    stmt = select(Article.locale, Article.id).where(
        Article.translation_group == article.translation_group, Article.id != article.id
    )
    if published_only:
        stmt = stmt.where(Article.status == ArticleStatus.PUBLISHED)
    return {row.locale: row.id for row in session.execute(stmt.order_by(Article.id))}


def access_article_by_id(session: Session, actor: Actor, article_id: str) -> Article:
    """Agents see drafts and archived articles too; everyone else only published ones."""
    if not actor.is_agent:
        return get_published_article(session, article_id)
    article = session.get(Article, article_id)
    if article is None:
        raise NotFound("article not found")
    return article


def list_revisions(session: Session, article_id: str) -> list[ArticleRevision]:
    stmt = (
        select(ArticleRevision)
        .where(ArticleRevision.article_id == article_id)
        .order_by(ArticleRevision.revision.desc())
    )
    return list(session.scalars(stmt).all())


@dataclass(frozen=True, slots=True)
class SearchGap:
    query: str
    count: int
    last_at: datetime


def searches_without_results(session: Session, limit: int = 50) -> list[SearchGap]:
    stmt = (
        select(HelpSearch.query, func.count(), func.max(HelpSearch.created_at))
        .where(HelpSearch.result_count == 0)
        .group_by(HelpSearch.query)
        .order_by(func.count().desc())
        .limit(limit)
    )
    return [SearchGap(q, n, last) for q, n, last in session.execute(stmt).all()]


def unhelpful_articles(session: Session, limit: int = 50) -> list[Article]:
    stmt = (
        select(Article)
        .where(Article.unhelpful_count > 0)
        .order_by((Article.unhelpful_count - Article.helpful_count).desc())
        .limit(limit)
    )
    return list(session.scalars(stmt).all())


class ArticleSearch:
    """Ranked search over published articles, one in-memory index per locale.

    The index follows the database: at most every ``REFRESH_SECONDS`` it reads the
    articles changed since it last looked and re-indexes just those, so an edit made on
    any ``kefu serve`` node is searchable everywhere within a couple of seconds.
    """

    REFRESH_SECONDS = 2.0

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self._sessions = sessions
        self._indexes: dict[str, ArticleIndex] = {}
        self._titles: dict[str, str] = {}
        self._locale_of: dict[str, str] = {}
        self._seen_until: datetime | None = None
        self._checked_at = 0.0
        self._lock = threading.Lock()

    def refresh(self, *, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._checked_at < self.REFRESH_SECONDS:
            return
        with self._lock:
            if not force and now - self._checked_at < self.REFRESH_SECONDS:
                return
            self._checked_at = now
            with self._sessions() as session:
                stmt = select(
                    Article.id, Article.locale, Article.status, Article.title, Article.body_md,
                    Article.updated_at,
                )  # fmt: skip
                if self._seen_until is not None:
                    stmt = stmt.where(Article.updated_at >= self._seen_until)
                rows = session.execute(stmt).all()
            for article_id, locale, status, title, body, updated_at in rows:
                old_locale = self._locale_of.pop(article_id, None)
                if old_locale is not None:
                    self._indexes[old_locale].remove(article_id)
                    self._titles.pop(article_id, None)
                if status is ArticleStatus.PUBLISHED:
                    self._indexes.setdefault(locale, ArticleIndex()).add(article_id, title, body)
                    self._locale_of[article_id] = locale
                    self._titles[article_id] = title
                if self._seen_until is None or updated_at > self._seen_until:
                    self._seen_until = updated_at

    def search(self, query: str, locale: str, limit: int = 10) -> list[tuple[str, str, float]]:
        """(id, title, score) best first; never raises on any query text."""
        self.refresh()
        index = self._indexes.get(locale)
        if index is None:
            return []
        return [
            (doc_id, self._titles.get(doc_id, ""), score)
            for doc_id, score in index.search(query, limit)
        ]

    def suggest(
        self, texts: Sequence[str], locale: str, limit: int = 3
    ) -> list[tuple[str, str, float]]:
        """Articles for a ticket or chat (deflection): its subject and first message."""
        return self.search(" ".join(t for t in texts if t)[:500], locale, limit)
