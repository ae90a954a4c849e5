"""The SMTP listener (aiosmtpd) for mail relayed from the company MX.

Accept → parse → store → commit, and only then ``250``: if storing fails the answer is
``451`` and the sending MTA retries, so an accepted message is never lost, and a crash
before the reply makes the sender retry too (a duplicate Message-ID is stored once).
Recipients outside our domains are refused: this is not an open relay.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from aiosmtpd.smtp import SMTP, Envelope
from aiosmtpd.smtp import Session as SMTPSession
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from kefu.channels.email.inbound import Ingestor
from kefu.domain.errors import KefuError
from kefu.infra.ratelimit import MemoryRateLimiter, RateLimiter
from kefu.models import Inbox

log = logging.getLogger(__name__)
# aiosmtpd logs every line of DATA at DEBUG (the whole mail, pasted seed phrases and all)
# and every command with its addresses at INFO; nothing unscreened is logged (issue 6).
logging.getLogger("mail.log").setLevel(logging.WARNING)


# A person writes a few mails an hour; a loop or a flood writes hundreds. Over the limit
# the answer is a temporary 451, so a real sender's MTA delivers later and nothing is lost.
SENDER_MAILS_PER_HOUR = 60


class KefuSMTPHandler:
    def __init__(
        self,
        ingestor: Ingestor,
        domains: set[str],
        sessions: sessionmaker[Session],
        limiter: RateLimiter | None = None,
        per_sender_per_hour: int = SENDER_MAILS_PER_HOUR,
    ) -> None:
        self.ingestor = ingestor
        self.domains = {d.lower() for d in domains}
        self.sessions = sessions
        self.limiter = limiter or MemoryRateLimiter()
        self.per_sender_per_hour = per_sender_per_hour

    async def handle_MAIL(  # aiosmtpd's hook name
        self,
        server: SMTP,
        session: SMTPSession,
        envelope: Envelope,
        address: str,
        mail_options: list[str],
    ) -> str:
        sender = address.strip().lower()
        if sender and await self.limiter.hit(f"smtp:{sender}", self.per_sender_per_hour, 3600):
            return "451 4.7.1 Too many messages from this sender, try again later"
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    def _known_inbox(self, address: str) -> bool:
        with self.sessions() as session:
            return session.scalar(select(Inbox.id).where(Inbox.address == address)) is not None

    async def handle_RCPT(  # aiosmtpd's hook name
        self,
        server: SMTP,
        session: SMTPSession,
        envelope: Envelope,
        address: str,
        rcpt_options: list[str],
    ) -> str:
        address = address.strip().lower()
        domain = address.rpartition("@")[2]
        if domain not in self.domains and not await asyncio.to_thread(self._known_inbox, address):
            return "550 5.7.1 Relaying denied"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(
        self, server: SMTP, session: SMTPSession, envelope: Envelope
    ) -> str:  # aiosmtpd's hook name
        raw = envelope.original_content or envelope.content
        if not isinstance(raw, bytes):
            raw = str(raw).encode("utf-8", "surrogateescape")
        recipient = envelope.rcpt_tos[0] if envelope.rcpt_tos else None
        try:
            result = await asyncio.to_thread(self.ingestor.ingest, raw, recipient=recipient)
        except KefuError as exc:
            log.info("mail refused", extra={"reason": exc.message})
            return "550 5.6.0 Message refused: " + exc.message[:100]
        except Exception:
            log.exception("storing mail failed; asking the sender to retry")
            return "451 4.3.0 Temporary failure, please try again later"
        log.info(
            "mail stored",
            extra={
                "ticket": result.ticket.number if result.ticket else None,
                "duplicate": result.duplicate,
                "bounce": result.bounce,
            },
        )
        return "250 2.0.0 Message accepted"


async def start_smtp_server(
    handler: KefuSMTPHandler, host: str, port: int, *, data_size_limit: int
) -> asyncio.Server:
    loop = asyncio.get_running_loop()

    def factory() -> Any:
        return SMTP(
            handler,
            data_size_limit=data_size_limit,
            enable_SMTPUTF8=True,
            decode_data=False,
            hostname="kefu",
            ident="kefu ESMTP",
            timeout=60,
        )

    return await loop.create_server(factory, host=host, port=port)
