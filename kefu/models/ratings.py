"""Satisfaction ratings: stars plus the four quality dimensions supervisors measure."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from kefu.domain.clock import utcnow
from kefu.models.base import Base


class Rating(Base):
    """One per ticket: a contact rating again replaces their earlier rating."""

    __tablename__ = "ratings"

    id: Mapped[int] = mapped_column(primary_key=True)
    ticket_id: Mapped[int] = mapped_column(
        ForeignKey("tickets.id", ondelete="CASCADE"), unique=True
    )
    contact_id: Mapped[int | None] = mapped_column(ForeignKey("contacts.id", ondelete="SET NULL"))
    agent_id: Mapped[int | None] = mapped_column(ForeignKey("agents.id", ondelete="SET NULL"))
    stars: Mapped[int]
    # 响应速度, 专业程度, 沟通态度, 问题解决: 1-5 each, optional.
    speed: Mapped[int | None]
    professionalism: Mapped[int | None]
    communication: Mapped[int | None]
    resolution: Mapped[int | None]
    comment: Mapped[str] = mapped_column(String(1000), default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
