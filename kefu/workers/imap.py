"""IMAP polling: mail from a mailbox at a provider, for desks without their own MX.

Owns the fetch loop; parsing, threading and storing are the SMTP listener's
(``channels.email.inbound.Ingestor``). See docs/email.md.

A message is marked ``\\Seen`` only after its transaction has committed, so a crash in
between fetches it again next time, and the Message-ID check stores it once: nothing
acknowledged is lost, nothing is stored twice. Mail kefu refuses for good (no usable
From …) is marked seen and keyworded ``$KefuRefused`` for the operator, rather than
fetched again forever. Where the server offers IDLE (RFC 2177) the loop waits for new
mail on the open connection; elsewhere it polls.
"""

from __future__ import annotations

import asyncio
import contextlib
import imaplib
import logging
import socket
import ssl
import time
from dataclasses import dataclass

from kefu.channels.email.inbound import Ingestor
from kefu.domain.errors import KefuError
from kefu.settings import Settings

log = logging.getLogger(__name__)

IDLE_SECONDS = 25 * 60  # re-issued before the 29 minutes servers may wait (RFC 2177)
MAX_BACKOFF_SECONDS = 300.0
FETCH_BATCH = 200


@dataclass(frozen=True, slots=True)
class ImapConfig:
    host: str
    port: int
    user: str
    password: str
    folder: str = "INBOX"
    use_ssl: bool = True
    address: str | None = None  # the mailbox's address: which Inbox (team) mail lands in
    poll_seconds: float = 30.0
    idle_seconds: float = IDLE_SECONDS


class ImapFetcher:
    def __init__(self, config: ImapConfig, ingestor: Ingestor) -> None:
        self.config = config
        self.ingestor = ingestor
        self._conn: imaplib.IMAP4 | None = None
        self._stopping = False

    # -- one connection's work (blocking; runs in a worker thread) -----------------------

    def connect(self) -> imaplib.IMAP4:
        c = self.config
        conn: imaplib.IMAP4
        if c.use_ssl:
            conn = imaplib.IMAP4_SSL(c.host, c.port, ssl_context=ssl.create_default_context())
        else:
            conn = imaplib.IMAP4(c.host, c.port)
        conn.login(c.user, c.password)
        typ, _ = conn.select(_quote(c.folder))
        if typ != "OK":
            conn.logout()
            raise RuntimeError(f"cannot open folder {c.folder!r}")
        self._conn = conn
        return conn

    def fetch_new(self, conn: imaplib.IMAP4) -> int:
        """Store every unseen message; returns how many were stored."""
        typ, data = conn.uid("SEARCH", "UNSEEN")
        if typ != "OK" or not data or not data[0]:
            return 0
        stored = 0
        for uid in data[0].split()[:FETCH_BATCH]:
            typ, parts = conn.uid("FETCH", uid, "(BODY.PEEK[])")
            raw = _body(parts) if typ == "OK" else None
            if raw is None:
                continue
            try:
                self.ingestor.ingest(raw, recipient=self.config.address)
            except KefuError as exc:
                # Refused for good: keep it out of the loop, findable by the operator.
                log.warning("imap mail refused", extra={"uid": uid.decode(), "reason": exc.message})
                conn.uid("STORE", uid, "+FLAGS", "(\\Seen $KefuRefused)")
                continue
            # Only now, with the transaction committed, is the message ours.
            conn.uid("STORE", uid, "+FLAGS", "(\\Seen)")
            stored += 1
        return stored

    def wait_for_mail(self, conn: imaplib.IMAP4) -> None:
        """Block until the server announces new mail (IDLE) or the poll interval ends."""
        if "IDLE" not in conn.capabilities:
            # Without IDLE: wait, then NOOP, which asks the server for news.
            self._sleep(self.config.poll_seconds)
            conn.noop()
            return
        tag = b"KEFUIDLE"
        conn.send(tag + b" IDLE\r\n")
        first = conn.readline()
        if not first.startswith(b"+"):
            raise imaplib.IMAP4.error(f"IDLE refused: {first[:100]!r}")
        conn.sock.settimeout(self.config.idle_seconds)
        try:
            while not self._stopping:
                line = conn.readline()
                if not line:
                    raise imaplib.IMAP4.abort("connection closed during IDLE")
                if line.rstrip().endswith((b"EXISTS", b"RECENT")):
                    break
        except TimeoutError:
            pass  # re-issue IDLE: servers drop idle clients after 29 minutes
        finally:
            conn.sock.settimeout(None)
        conn.send(b"DONE\r\n")
        while True:
            line = conn.readline()
            if not line or line.startswith(tag):
                break

    def is_stopping(self) -> bool:
        return self._stopping

    def _sleep(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while not self._stopping and time.monotonic() < deadline:
            time.sleep(min(0.5, max(0.0, deadline - time.monotonic())))

    def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is None:
            return
        try:
            conn.logout()
        except Exception:  # a cut connection cannot say goodbye
            with contextlib.suppress(Exception):
                conn.shutdown()  # but its socket is closed all the same

    # -- the loop -------------------------------------------------------------------------

    async def run_forever(self) -> None:
        backoff = 1.0
        while not self._stopping:
            try:
                conn = await asyncio.to_thread(self.connect)
                backoff = 1.0
                while not self._stopping:
                    n = await asyncio.to_thread(self.fetch_new, conn)
                    if n:
                        log.info("imap mail stored", extra={"count": n})
                        continue  # there may be more than one batch
                    await asyncio.to_thread(self.wait_for_mail, conn)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if self.is_stopping():
                    break
                log.warning(
                    "imap polling failed; retrying",
                    extra={"error": str(exc)[:300], "retry_in_s": backoff},
                )
                await asyncio.to_thread(self.close)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF_SECONDS)
        await asyncio.to_thread(self.close)

    def stop(self) -> None:
        """Ask the loop to end; a connection waiting in IDLE is cut so it notices."""
        self._stopping = True
        conn = self._conn
        if conn is not None:
            with contextlib.suppress(OSError):
                conn.sock.shutdown(socket.SHUT_RDWR)


def _quote(folder: str) -> str:
    # A folder name with spaces or quotes must be a quoted string (RFC 3501 4.3).
    return '"' + folder.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _body(parts: list[object]) -> bytes | None:
    for part in parts:
        if isinstance(part, tuple) and len(part) == 2 and isinstance(part[1], bytes):
            return part[1]
    return None


def imap_config(settings: Settings) -> ImapConfig | None:
    """The mailbox to poll, from KEFU_IMAP_*; None when none is configured."""
    if not settings.imap_host:
        return None
    return ImapConfig(
        host=settings.imap_host,
        port=settings.imap_port,
        user=settings.imap_user,
        password=settings.imap_password.get_secret_value(),
        folder=settings.imap_folder,
        use_ssl=settings.imap_ssl,
        address=settings.imap_address or settings.imap_user or None,
        poll_seconds=settings.imap_poll_seconds,
    )
