"""Inbound mail, from raw bytes to a stored message: parse (parse.py), keep the original,
and hand a plain ``InboundMail`` to ``actions.email.do_receive_email``.

Used by the SMTP listener and the IMAP poller alike. See docs/email.md.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from sqlalchemy.orm import Session, sessionmaker

from kefu.actions.email import Received, do_receive_email
from kefu.actions.guard import html_text, screen_inbound
from kefu.channels.email.parse import ParsedEmail, parse_email
from kefu.domain.mail import InboundMail, MailAttachment
from kefu.infra.files import FileStore


def holds_secret(parsed: ParsedEmail, *, depth: int = 0) -> bool:
    """Whether any part a person could read holds a seed phrase, key, password or code,
    forwarded mails (``.eml`` attachments) included, whatever their transfer encoding."""
    texts = [parsed.from_name, parsed.subject, parsed.text, html_text(parsed.html or "")]
    nested: list[bytes] = []
    for att in parsed.attachments:
        if att.content_type == "message/rfc822":
            nested.append(att.data)
        if att.content_type.startswith("text/") or att.content_type == "message/rfc822":
            texts.append(att.data.decode("utf-8", "replace"))
    if any(screen_inbound(t).secret_kinds for t in texts if t):
        return True
    # A bounce's returned mail is not in ``text``, and base64 hides a forward's parts
    # from the raw scan above. The parser's own depth limit bounds this further.
    return depth < _MAX_NESTED_SCAN and any(
        holds_secret(parse_email(data), depth=depth + 1) for data in nested[:5]
    )


_MAX_NESTED_SCAN = 3


def to_inbound(parsed: ParsedEmail, raw_sha256: str | None) -> InboundMail:
    return InboundMail(
        message_id=parsed.message_id,
        thread_ids=(*parsed.references, *parsed.in_reply_to),
        subject=parsed.subject,
        from_address=parsed.from_address,
        from_name=parsed.from_name,
        to=tuple(parsed.to),
        text=parsed.reply_text or parsed.text,
        full_text=parsed.text,
        html=parsed.html,
        attachments=tuple(
            MailAttachment(a.filename, a.content_type, a.data, a.content_id, a.is_inline)
            for a in parsed.attachments
        ),
        is_auto_submitted=parsed.is_auto_submitted,
        is_bounce=parsed.is_bounce,
        bounced_recipients=tuple(parsed.bounced_recipients),
        returned_message_ids=tuple(parsed.returned_message_ids),
        auth_results=dict(parsed.auth_results),
        flags=tuple(parsed.flags),
        ticket_number=parsed.ticket_number_in_subject,
        raw_sha256=raw_sha256,
    )


@dataclass(frozen=True, slots=True)
class Ingestor:
    sessions: sessionmaker[Session]
    files: FileStore
    max_attachment_bytes: int
    own_domains: tuple[str, ...] = ()
    authserv_id: str | None = None

    def ingest(self, raw: bytes, *, recipient: str | None = None) -> Received:
        """Parse and store one message in its own transaction; raises if not stored."""
        parsed = parse_email(raw, authserv_id=self.authserv_id)
        if self.authserv_id is None:
            # Without our MTA's id we cannot tell its verdicts from ones the sender wrote.
            parsed = dataclasses.replace(parsed, auth_results={})
        # The original is kept byte for byte (content-addressed), whatever parsing made of
        # it, unless it holds a secret: then only the masked, parsed form is kept.
        if holds_secret(parsed):
            raw_sha = None
            parsed = dataclasses.replace(parsed, flags=[*parsed.flags, "original_not_kept"])
        else:
            raw_sha = self.files.put(raw)
        mail = to_inbound(parsed, raw_sha)
        with self.sessions.begin() as session:
            return do_receive_email(
                session,
                mail,
                files=self.files,
                max_attachment_bytes=self.max_attachment_bytes,
                inbox_address=recipient,
                own_domains=self.own_domains,
            )
