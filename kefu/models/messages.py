"""Messages: anything said on a ticket. ``is_internal`` marks a note."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from kefu.domain.access import ActorKind
from kefu.domain.clock import utcnow
from kefu.domain.tickets import Channel
from kefu.models.base import Base, str_enum
from kefu.models.files import Attachment


class Message(Base):
    __tablename__ = "messages"
    __table_args__ = (
        UniqueConstraint("ticket_id", "seq"),
        UniqueConstraint("ticket_id", "client_msg_id"),
        Index("ix_messages_ticket_seq", "ticket_id", "seq"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id", ondelete="CASCADE"))
    seq: Mapped[int]
    author_type: Mapped[ActorKind] = mapped_column(str_enum(ActorKind))
    agent_id: Mapped[int | None] = mapped_column(ForeignKey("agents.id", ondelete="SET NULL"))
    contact_id: Mapped[int | None] = mapped_column(ForeignKey("contacts.id", ondelete="SET NULL"))
    direction: Mapped[str] = mapped_column(String(8))  # "in" (from contact) or "out"
    is_internal: Mapped[bool] = mapped_column(default=False)
    channel: Mapped[Channel] = mapped_column(str_enum(Channel))
    body: Mapped[str] = mapped_column(Text, default="")
    body_html: Mapped[str | None] = mapped_column(Text)
    # ``body`` as agents see it by default (PII partly masked), worked out once when the
    # message is stored so that opening a long ticket scans nothing. "" when the body
    # has nothing to mask; NULL for a row written some other way, which readers mask
    # on the fly (actions.guard.display_body).
    display_body: Mapped[str | None] = mapped_column(Text)
    client_msg_id: Mapped[str | None] = mapped_column(String(64))
    email_message_id: Mapped[str | None] = mapped_column(String(300), unique=True)
    meta: Mapped[dict[str, Any]] = mapped_column(default=dict)
    delivery_status: Mapped[str | None] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    attachments: Mapped[list[Attachment]] = relationship(
        lazy="selectin", order_by="Attachment.id", viewonly=True
    )
