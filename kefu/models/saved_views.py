"""Saved filters: an agent's own named inbox views (a view plus the picked filters)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from kefu.domain.clock import utcnow
from kefu.models.base import Base


class SavedView(Base):
    __tablename__ = "saved_views"
    __table_args__ = (UniqueConstraint("agent_id", "name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    agent_id: Mapped[int] = mapped_column(ForeignKey("agents.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(80))
    view: Mapped[str] = mapped_column(String(16))  # queries.console.InboxView
    query: Mapped[str] = mapped_column(String(500))  # the filter bar's query string
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
