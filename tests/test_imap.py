"""IMAP polling against a real IMAP server: Debian's Dovecot, started here on a free
port with a throwaway mailbox (`make test` installs dovecot-imapd; under CI it is
required)."""

from __future__ import annotations

import asyncio
import imaplib
import logging
import os
import pwd
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from email.header import Header
from email.mime.text import MIMEText
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from kefu.channels.email.inbound import Ingestor
from kefu.infra.db import make_engine, make_sessionmaker
from kefu.infra.files import LocalFileStore, MemoryFileStore
from kefu.infra.migrate import upgrade
from kefu.models import Message, Ticket
from kefu.settings import Settings
from kefu.workers.imap import ImapConfig, ImapFetcher, imap_config
from tests.processes import free_port
from tests.secret_evidence import assert_kept_nowhere, gather

DOVECOT = shutil.which("dovecot") or "/usr/sbin/dovecot"
IN_CI = os.environ.get("CI", "").lower() == "true"
USER, PASSWORD = "support", "imap-test-password"
DOMAIN = "kx-exchange.example"
HANG_GUARD_S = 30


@pytest.fixture(scope="module")
def dovecot() -> Iterator[int]:
    if not Path(DOVECOT).exists():
        if IN_CI:
            pytest.fail(f"CI=true but Dovecot is missing ({DOVECOT}); make test installs it")
        pytest.skip("dovecot-imapd not installed (make test installs it)")
    # A short base dir: Dovecot's unix sockets live there (108-byte path limit).
    root = Path(tempfile.mkdtemp(prefix="kefu-dv-"))
    root.chmod(0o755)  # Dovecot's unprivileged auth process reads the users file here
    mail = root / "mail"
    mail.mkdir()
    (root / "users").write_text(f"{USER}:{{PLAIN}}{PASSWORD}\n")
    if os.getuid() == 0:
        # Dovecot will not deliver mail as root; the package's own user owns the box.
        owner = "dovecot"
        shutil.chown(mail, owner, owner)
        internal = ""
    else:
        owner = pwd.getpwuid(os.getuid()).pw_name
        internal = f"default_internal_user = {owner}\ndefault_login_user = {owner}\n"
    port = free_port()
    (root / "dovecot.conf").write_text(
        f"""protocols = imap
listen = 127.0.0.1
base_dir = {root}/run
state_dir = {root}/state
log_path = {root}/dovecot.log
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
first_valid_uid = 0
mail_location = maildir:{mail}/%u
{internal}passdb {{
  driver = passwd-file
  args = scheme=PLAIN {root}/users
}}
userdb {{
  driver = static
  args = uid={owner} gid={owner} home={mail}/%u
}}
service imap-login {{
  chroot =
  inet_listener imap {{
    address = 127.0.0.1
    port = {port}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
service anvil {{
  chroot =
}}
"""
    )
    proc = subprocess.Popen(
        [DOVECOT, "-F", "-c", str(root / "dovecot.conf")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + HANG_GUARD_S
    while True:
        try:
            imaplib.IMAP4("127.0.0.1", port).logout()
            break
        except OSError:
            if time.monotonic() > deadline or proc.poll() is not None:
                log = (root / "dovecot.log").read_text() if (root / "dovecot.log").exists() else ""
                proc.kill()
                pytest.fail(f"Dovecot did not start: {log[-1500:]}")
            time.sleep(0.1)
    yield port
    proc.terminate()
    proc.wait(10)
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def mailbox(dovecot: int) -> Iterator[imaplib.IMAP4]:
    """A client on the test mailbox, emptied before each test."""
    conn = imaplib.IMAP4("127.0.0.1", dovecot)
    conn.login(USER, PASSWORD)
    conn.select("INBOX")
    _, found = conn.search(None, "ALL")
    if found and found[0]:
        conn.store("1:*", "+FLAGS", "(\\Deleted)")
        conn.expunge()
    yield conn
    conn.logout()


def config(port: int, **kw: Any) -> ImapConfig:
    return ImapConfig(
        host="127.0.0.1",
        port=port,
        user=USER,
        password=PASSWORD,
        use_ssl=False,
        address=f"support@{DOMAIN}",
        **kw,
    )


def mail(subject: str, body: str, sender: str, message_id: str, charset: str = "gb2312") -> bytes:
    msg = MIMEText(body, "plain", charset)
    msg["Subject"] = Header(subject, charset)
    msg["From"] = f"{Header('王芳', charset).encode()} <{sender}>"
    msg["To"] = f"support@{DOMAIN}"
    msg["Message-ID"] = message_id
    return msg.as_bytes().replace(b"\n", b"\r\n")


def flags(conn: imaplib.IMAP4) -> list[bytes]:
    conn.select("INBOX")
    typ, data = conn.fetch("1:*", "(FLAGS)")
    assert typ == "OK"
    return [d for d in data if isinstance(d, bytes)]


def test_mail_in_the_mailbox_becomes_tickets_once(
    dovecot: int, mailbox: imaplib.IMAP4, sessions: sessionmaker[Session], db: Session
) -> None:
    mailbox.append(
        "INBOX", None, None, mail("充值未到账", "我的USDT没到", "a@example.com", "<i1@example.com>")
    )
    mailbox.append(
        "INBOX",
        None,
        None,
        mail("提幣審核", "已經一天了", "b@example.com", "<i2@example.com>", "big5"),
    )
    fetcher = ImapFetcher(config(dovecot), Ingestor(sessions, MemoryFileStore(), 1_000_000))
    conn = fetcher.connect()
    try:
        assert fetcher.fetch_new(conn) == 2
        assert fetcher.fetch_new(conn) == 0  # marked seen: not fetched again
    finally:
        fetcher.close()
    subjects = sorted(db.scalars(select(Ticket.subject)).all())
    assert subjects == ["充值未到账", "提幣審核"]
    assert all(b"\\Seen" in f for f in flags(mailbox))


def test_a_crash_before_marking_seen_stores_the_mail_once(
    dovecot: int, mailbox: imaplib.IMAP4, sessions: sessionmaker[Session], db: Session
) -> None:
    """Stored, then the process died before the \\Seen flag: the next poll fetches the
    mail again and the Message-ID check keeps it to one copy."""
    raw = mail("账户被盗", "资产被转走", "c@example.com", "<i3@example.com>")
    mailbox.append("INBOX", None, None, raw)
    ingestor = Ingestor(sessions, MemoryFileStore(), 1_000_000)
    ingestor.ingest(raw, recipient=f"support@{DOMAIN}")  # the crashed run's work
    fetcher = ImapFetcher(config(dovecot), ingestor)
    conn = fetcher.connect()
    try:
        assert fetcher.fetch_new(conn) == 1
    finally:
        fetcher.close()
    assert db.scalar(select(func.count()).select_from(Ticket)) == 1
    assert (
        db.scalar(select(func.count()).select_from(Message).where(Message.direction == "in")) == 1
    )
    assert all(b"\\Seen" in f for f in flags(mailbox))


def test_refused_mail_is_set_aside_not_fetched_forever(
    dovecot: int, mailbox: imaplib.IMAP4, sessions: sessionmaker[Session], db: Session
) -> None:
    mailbox.append("INBOX", None, None, b"Subject: no sender\r\nMessage-ID: <i4@x>\r\n\r\nhi\r\n")
    fetcher = ImapFetcher(config(dovecot), Ingestor(sessions, MemoryFileStore(), 1_000_000))
    conn = fetcher.connect()
    try:
        assert fetcher.fetch_new(conn) == 0
        assert fetcher.fetch_new(conn) == 0
    finally:
        fetcher.close()
    (only,) = flags(mailbox)
    assert b"$KefuRefused" in only and b"\\Seen" in only
    assert db.scalar(select(func.count()).select_from(Ticket)) == 0


def test_idle_picks_up_new_mail_without_polling(
    dovecot: int, mailbox: imaplib.IMAP4, tmp_path: Path
) -> None:
    """The loop as `kefu serve` runs it: connected, idle; mail that arrives is stored
    within moments although the poll interval is an hour."""
    url = f"sqlite:///{tmp_path / 'kefu.db'}"
    upgrade(url)
    engine = make_engine(url)
    sessions = make_sessionmaker(engine)
    fetcher = ImapFetcher(
        config(dovecot, poll_seconds=3600), Ingestor(sessions, MemoryFileStore(), 1_000_000)
    )
    loop = asyncio.new_event_loop()
    task = loop.create_task(fetcher.run_forever())
    thread = threading.Thread(target=loop.run_until_complete, args=(task,), daemon=True)
    thread.start()
    try:
        time.sleep(0.5)  # connected and idle
        mailbox.append(
            "INBOX", None, None, mail("闲时来信", "内容", "d@example.com", "<i5@example.com>")
        )
        deadline = time.monotonic() + HANG_GUARD_S
        while True:
            with sessions() as s:
                if s.scalar(select(Ticket.subject)) == "闲时来信":
                    break
            assert time.monotonic() < deadline, "IDLE never woke up"
            time.sleep(0.1)
    finally:
        loop.call_soon_threadsafe(fetcher.stop)
        thread.join(HANG_GUARD_S)
        engine.dispose()
    assert not thread.is_alive()
    loop.close()


def test_settings_name_the_mailbox() -> None:
    assert imap_config(Settings(run_smtp=False)) is None
    cfg = imap_config(
        Settings(
            imap_host="imap.exmail.qq.com",
            imap_user="support@kx-exchange.example",
            imap_password="x",  # type: ignore[arg-type]
            run_smtp=False,
        )
    )
    assert cfg is not None
    assert (cfg.port, cfg.use_ssl, cfg.folder) == (993, True, "INBOX")
    assert cfg.address == "support@kx-exchange.example"


def test_a_seed_phrase_fetched_over_imap_is_never_stored(
    dovecot: int,
    mailbox: imaplib.IMAP4,
    sessions: sessionmaker[Session],
    db: Session,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The IMAP door masks secrets like every other: nothing of the phrase, a key, a
    password or a code in the database, the index, the files or the logs, and the
    original mail is not kept."""
    caplog.set_level(logging.DEBUG)
    words = "abandon ability able about above absent absorb abstract absurd abuse access accident"
    key = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    body = f"我的助记词是 {words}，请帮我找回。私钥 {key} 登录密码：Hunter2024! 谷歌验证码 482913"
    mailbox.append("INBOX", None, None, mail("钱包被盗", body, "e@example.com", "<i6@example.com>"))
    files = LocalFileStore(tmp_path / "files")
    fetcher = ImapFetcher(config(dovecot), Ingestor(sessions, files, 1_000_000))
    conn = fetcher.connect()
    try:
        assert fetcher.fetch_new(conn) == 1
    finally:
        fetcher.close()
    evidence = gather(db, files_dir=tmp_path / "files", caplog=caplog)
    assert "已屏蔽" in evidence.database and "屏蔽" in evidence.index
    assert_kept_nowhere(evidence, [words, key, "Hunter2024!", "482913"])
    stored = db.scalar(select(Message).where(Message.direction == "in"))
    assert stored is not None and "original_not_kept" in stored.meta["flags"]
