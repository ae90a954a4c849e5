"""Help-center articles, their edit history, readers' feedback and the search log."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from kefu.domain.clock import utcnow
from kefu.domain.helpcenter import ArticleStatus
from kefu.models.base import Base, str_enum


class Article(Base):
    __tablename__ = "articles"
    __table_args__ = (
        Index("ix_articles_listing", "locale", "status", "category", "position"),
        Index("ix_articles_updated", "updated_at"),
        Index("ix_articles_translation_group", "translation_group"),
    )

    # Kept as imported (`kefu kb import` keeps the file's ids), so a string key.
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    locale: Mapped[str] = mapped_column(String(16), default="zh-CN")
    # Articles with the same group are one article in several languages (at most one
    # per locale); the group is the id of the article the first translation was made of.
    translation_group: Mapped[str | None] = mapped_column(String(64))
    category: Mapped[str] = mapped_column(String(32))
    title: Mapped[str] = mapped_column(String(300))
    body_md: Mapped[str] = mapped_column(Text, default="")
    body_html: Mapped[str] = mapped_column(Text, default="")
    status: Mapped[ArticleStatus] = mapped_column(
        str_enum(ArticleStatus, 16), default=ArticleStatus.PUBLISHED
    )
    position: Mapped[int] = mapped_column(default=0)
    tags: Mapped[list[str]] = mapped_column(default=list)
    related_ids: Mapped[list[str]] = mapped_column(default=list)
    helpful_count: Mapped[int] = mapped_column(default=0)
    unhelpful_count: Mapped[int] = mapped_column(default=0)
    view_count: Mapped[int] = mapped_column(default=0)
    revision: Mapped[int] = mapped_column(default=1)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class ArticleRevision(Base):
    __tablename__ = "article_revisions"
    __table_args__ = (Index("ix_article_revisions_article", "article_id", "revision"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    article_id: Mapped[str] = mapped_column(ForeignKey("articles.id", ondelete="CASCADE"))
    revision: Mapped[int]
    title: Mapped[str] = mapped_column(String(300))
    body_md: Mapped[str] = mapped_column(Text)
    status: Mapped[ArticleStatus] = mapped_column(str_enum(ArticleStatus, 16))
    edited_by_agent_id: Mapped[int | None] = mapped_column(
        ForeignKey("agents.id", ondelete="SET NULL")
    )
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ArticleFeedback(Base):
    __tablename__ = "article_feedback"
    __table_args__ = (Index("ix_article_feedback_article", "article_id", "created_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    article_id: Mapped[str] = mapped_column(ForeignKey("articles.id", ondelete="CASCADE"))
    helpful: Mapped[bool]
    comment: Mapped[str] = mapped_column(String(1000), default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class HelpSearch(Base):
    """A help-center search, kept so admins see what customers looked for in vain."""

    __tablename__ = "help_searches"
    __table_args__ = (Index("ix_help_searches_created", "created_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    query: Mapped[str] = mapped_column(String(200))
    locale: Mapped[str] = mapped_column(String(16))
    result_count: Mapped[int]
    top_article_id: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
