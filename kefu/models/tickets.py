"""Tickets and their tags."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from kefu.domain.chat import ChatState
from kefu.domain.clock import utcnow
from kefu.domain.tickets import Channel, Priority, TicketKind, TicketStatus
from kefu.models.base import Base, str_enum


class Ticket(Base):
    __tablename__ = "tickets"
    __table_args__ = (
        Index("ix_tickets_status_created", "status", "created_at", "id"),
        Index("ix_tickets_team_created", "team_id", "created_at", "id"),
        Index("ix_tickets_assignee_created", "assignee_id", "created_at", "id"),
        Index("ix_tickets_contact_created", "contact_id", "created_at", "id"),
        Index("ix_tickets_created", "created_at", "id"),
        Index("ix_tickets_updated", "updated_at", "id"),
        Index("ix_tickets_chat_state", "chat_state", "assignee_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    number: Mapped[str] = mapped_column(String(16), unique=True)
    subject: Mapped[str] = mapped_column(String(300))
    kind: Mapped[TicketKind] = mapped_column(str_enum(TicketKind), default=TicketKind.QUESTION)
    channel: Mapped[Channel] = mapped_column(str_enum(Channel))
    status: Mapped[TicketStatus] = mapped_column(str_enum(TicketStatus), default=TicketStatus.NEW)
    priority: Mapped[Priority] = mapped_column(str_enum(Priority), default=Priority.NORMAL)
    team_id: Mapped[int | None] = mapped_column(ForeignKey("teams.id", ondelete="SET NULL"))
    assignee_id: Mapped[int | None] = mapped_column(ForeignKey("agents.id", ondelete="SET NULL"))
    contact_id: Mapped[int | None] = mapped_column(ForeignKey("contacts.id", ondelete="SET NULL"))
    inbox_id: Mapped[int | None] = mapped_column(ForeignKey("inboxes.id", ondelete="SET NULL"))
    merged_into_id: Mapped[int | None] = mapped_column(ForeignKey("tickets.id"))

    # Exchange fields, each validated by format in domain.exchange_fields.
    exchange_uid: Mapped[str | None] = mapped_column(String(32))
    txid: Mapped[str | None] = mapped_column(String(130))
    order_id: Mapped[str | None] = mapped_column(String(64))
    coin: Mapped[str | None] = mapped_column(String(16))
    network: Mapped[str | None] = mapped_column(String(24))
    amount: Mapped[str | None] = mapped_column(String(48))

    # Live chat (docs/chat-protocol.md): None for tickets that never were a chat.
    chat_state: Mapped[ChatState | None] = mapped_column(str_enum(ChatState))
    chat_topic: Mapped[str | None] = mapped_column(String(32))
    queued_at: Mapped[datetime | None]

    last_seq: Mapped[int] = mapped_column(default=0)
    message_count: Mapped[int] = mapped_column(default=0)
    last_message_at: Mapped[datetime | None]
    first_response_at: Mapped[datetime | None]
    solved_at: Mapped[datetime | None]
    closed_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)

    tag_rows: Mapped[list[TicketTag]] = relationship(
        lazy="selectin", cascade="all, delete-orphan", order_by="TicketTag.tag"
    )

    @property
    def tags(self) -> list[str]:
        return sorted(t.tag for t in self.tag_rows)


class TicketTag(Base):
    __tablename__ = "ticket_tags"
    __table_args__ = (Index("ix_ticket_tags_tag", "tag", "ticket_id"),)

    ticket_id: Mapped[int] = mapped_column(
        ForeignKey("tickets.id", ondelete="CASCADE"), primary_key=True
    )
    tag: Mapped[str] = mapped_column(String(64), primary_key=True)
