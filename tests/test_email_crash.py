"""`kill -9` of a real `kefu serve` while mail streams in over SMTP: every mail that was
answered 250 is stored, and the sender's retry of one that was not is stored once."""

from __future__ import annotations

import smtplib
import socket
import threading
import time
from email.message import EmailMessage
from pathlib import Path

from sqlalchemy import select

from kefu.infra.db import make_engine, make_sessionmaker
from kefu.models import Message
from tests.processes import Server, free_port, process_env

RCPT = "support@kx-exchange.example"


def mail(n: int) -> bytes:
    msg = EmailMessage()
    msg["From"] = f"customer{n}@example.com"
    msg["To"] = RCPT
    msg["Subject"] = f"充值未到账 {n}"
    msg["Message-ID"] = f"<crash-{n}@example.com>"
    msg.set_content(f"第 {n} 封：USDT 充值两小时了还没到账。", charset="utf-8")
    return msg.as_bytes()


def stored_ids(data_dir: Path) -> list[str]:
    engine = make_engine(f"sqlite:///{data_dir / 'kefu.db'}")
    try:
        with make_sessionmaker(engine)() as s:
            rows = s.scalars(
                select(Message.email_message_id).where(Message.email_message_id.is_not(None))
            ).all()
        return [r for r in rows if r and r.startswith("crash-")]
    finally:
        engine.dispose()


def test_a_crash_mid_stream_loses_no_accepted_mail(tmp_path: Path) -> None:
    env = process_env(tmp_path)
    smtp_port = free_port()
    env.update({"KEFU_RUN_SMTP": "true", "KEFU_SMTP_PORT": str(smtp_port)})
    server = Server(env, free_port())
    accepted: list[int] = []
    unanswered: list[int] = []
    stop = threading.Event()

    def sender() -> None:
        n = 0
        # Send until the server dies under us, then note the mail whose answer was lost.
        while not stop.is_set() and n < 2000:
            n += 1
            try:
                with smtplib.SMTP("127.0.0.1", smtp_port, timeout=10) as client:
                    client.sendmail(f"customer{n}@example.com", [RCPT], mail(n))
            except (OSError, smtplib.SMTPException):
                unanswered.append(n)
                return
            accepted.append(n)

    thread = threading.Thread(target=sender)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not _listening(smtp_port):
            time.sleep(0.1)
        thread.start()
        deadline = time.monotonic() + 60
        while len(accepted) < 25 and time.monotonic() < deadline and thread.is_alive():
            time.sleep(0.02)
        server.kill9()  # mid-stream: a mail may be half received, stored or acknowledged
    finally:
        stop.set()
        thread.join(30)
        if server.proc.poll() is None:
            server.proc.kill()
    assert len(accepted) >= 25
    assert len(unanswered) == 1  # the one in flight when the server died
    stored = stored_ids(tmp_path)
    for n in accepted:
        assert f"crash-{n}@example.com" in stored, f"mail {n} was answered 250, then lost"
    assert len(stored) == len(set(stored))

    # The sender retries the one it got no answer for, against the restarted server:
    # stored once, whether or not it had been stored before the crash.
    restarted = Server(env, free_port())
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not _listening(smtp_port):
            time.sleep(0.1)
        n = unanswered[0]
        with smtplib.SMTP("127.0.0.1", smtp_port, timeout=10) as client:
            client.sendmail(f"customer{n}@example.com", [RCPT], mail(n))
    finally:
        restarted.stop()
    again = stored_ids(tmp_path)
    assert again.count(f"crash-{unanswered[0]}@example.com") == 1
    assert len(again) == len(set(again)) == len(accepted) + 1


def _listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False
