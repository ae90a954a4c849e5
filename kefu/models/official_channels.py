"""The official-channel registry and the log of verification lookups."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from kefu.domain.clock import utcnow
from kefu.domain.verify import ChannelKind, Verdict
from kefu.models.base import Base, str_enum


class OfficialChannel(Base):
    __tablename__ = "official_channels"
    __table_args__ = (UniqueConstraint("kind", "value"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[ChannelKind] = mapped_column(str_enum(ChannelKind, 16))
    value: Mapped[str] = mapped_column(String(320))  # normalised (domain.verify.normalize_entry)
    label: Mapped[str] = mapped_column(String(200), default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class VerifyLookup(Base):
    """One public lookup: which fakes customers are being sent, for abuse analytics."""

    __tablename__ = "verify_lookups"
    __table_args__ = (Index("ix_verify_lookups_created", "created_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    query: Mapped[str] = mapped_column(String(500))
    kind: Mapped[str | None] = mapped_column(String(16))
    verdict: Mapped[Verdict] = mapped_column(str_enum(Verdict, 16))
    matched: Mapped[str | None] = mapped_column(String(320))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
