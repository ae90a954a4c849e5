"""Inbound email as the core sees it: what the email channel parsed, reduced to what
threading and storage need. Pure data; see docs/email.md."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

_MSGID_RE = re.compile(r"^[^<>\s@]{1,250}@[^<>\s@]{1,250}$")


@dataclass(frozen=True, slots=True)
class MailAttachment:
    filename: str
    content_type: str
    data: bytes
    content_id: str | None = None
    is_inline: bool = False


@dataclass(frozen=True, slots=True)
class InboundMail:
    message_id: str | None
    # In-Reply-To and References, newest last: what this mail answers.
    thread_ids: tuple[str, ...]
    subject: str
    from_address: str | None
    from_name: str
    to: tuple[str, ...]
    text: str  # the new part, quoted history stripped
    full_text: str  # the whole text as received
    html: str | None
    attachments: tuple[MailAttachment, ...] = ()
    is_auto_submitted: bool = False
    is_bounce: bool = False
    bounced_recipients: tuple[str, ...] = ()
    # A bounce's returned message: the Message-ID of the mail that failed (RFC 3464).
    returned_message_ids: tuple[str, ...] = ()
    auth_results: dict[str, str] = field(default_factory=dict)
    flags: tuple[str, ...] = ()
    ticket_number: str | None = None
    raw_sha256: str | None = None


def is_message_id(value: str) -> bool:
    return bool(_MSGID_RE.match(value))


def reply_subject(subject: str, number: str) -> str:
    """``Re: <subject> [#K12345678]``, without stacking prefixes or tags."""
    tag = f"[#{number}]"
    base = re.sub(r"^\s*((re|fw|fwd|回复|答复|转发)\s*[:：]\s*)+", "", subject, flags=re.IGNORECASE)
    base = base.replace(tag, "").strip()
    return f"Re: {base} {tag}".strip()
