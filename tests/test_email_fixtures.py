"""Every ``.eml`` in tests/fixtures/email/ through the real ingest path (parse → actions →
database), against one table of expected outcomes: a new ticket or a threaded reply,
the contact, the stored body, the flags, whether an acknowledgement is queued, what
happened to attachments. A fixture added without a row here fails the test.
"""

from __future__ import annotations

from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from kefu.channels.email.inbound import Ingestor
from kefu.channels.email.parse import parse_email
from kefu.domain.errors import KefuError
from kefu.infra.files import MemoryFileStore
from kefu.models import Contact, Job, Message, Ticket

FIXTURES = Path(__file__).parent / "fixtures" / "email"
NAMES = sorted(p.name for p in FIXTURES.glob("*.eml"))
# The fixtures are addressed to support@kefu.example and their Authentication-Results
# come from mx.kefu.example (one forged header in dkim_fail.eml names another host).
OWN_DOMAIN = "kefu.example"
SUPPORT = f"support@{OWN_DOMAIN}"
AUTHSERV = "mx.kefu.example"
# The thread the reply fixtures answer: a mail kefu received from this contact.
THREAD_CONTACT = "liushi@example.cn"


@dataclass(frozen=True)
class Expect:
    outcome: str  # "created", "threaded", "bounce" (no ticket), "refused" (550, nothing stored)
    contact: str | None = None
    body: str = ""  # a substring of the stored body
    flags: frozenset[str] = frozenset()  # all present on the stored message
    ack: bool = True  # an acknowledgement queued (new tickets only)
    attachments: tuple[str, ...] = ()  # stored filenames
    skipped: tuple[str, ...] = ()  # attachments refused, named for the agent
    not_in_body: str | None = None  # quoted history that must be gone


def created(contact: str, body: str, *flags: str, **kw: object) -> Expect:
    return Expect("created", contact, body, frozenset(flags), **kw)  # type: ignore[arg-type]


def threaded(body: str, not_in_body: str | None = None) -> Expect:
    return Expect("threaded", THREAD_CONTACT, body, ack=False, not_in_body=not_in_body)


EXPECTED: dict[str, Expect] = {
    "attachments_rfc2231.eml": created(
        "wu@example.cn",
        "冻结申请和转账截图",
        attachments=("账户冻结申请.pdf", "转账截图2026年11月25日.png"),
    ),
    "auto_reply.eml": created("zhangsan@example.cn", "我正在休假", ack=False),
    "big5_traditional.eml": created("chan@example.hk", "我的帳戶被盜"),
    "dkim_fail.eml": created(
        "chen@example.cn", "请冻结我的账户", "dkim_fail", "dmarc_fail", "authentication_failed"
    ),
    "dsn_bounce.eml": Expect("bounce", "nobody@example.cn", ack=False),
    "forward_rfc822.eml": created(
        "huang@example.cn",
        "---------- Forwarded message ----------",
        attachments=("【重要】您的账户存在风险.eml",),
    ),
    "from_ambiguous.eml": Expect("refused", ack=False),
    "from_spoof_display_name.eml": created(
        "attacker@evil.example", "请点击链接验证身份", "display_name_spoof"
    ),
    "gb2312_label_gb18030_chars.eml": created("wang@example.cn", "生僻字䶮和𠀀"),
    "gbk_plain.eml": created("lisi@example.cn", "充值的 USDT 一直未到账"),
    "hostile_5000_parts.eml": created(
        "parts@evil.example", "x", "too_many_parts", "malformed_mime"
    ),
    "hostile_broken_base64.eml": created(
        "he@example.cn", "转账凭证见附", "broken_base64", attachments=("receipt.pdf",)
    ),
    "hostile_deep_nesting.eml": created("deep@evil.example", "（空邮件）", "too_deep"),
    "hostile_filename_rlo.eml": created(
        "attacker@evil.example", "附件请查收", skipped=("invoicefdp.exe",)
    ),
    "hostile_filename_traversal.eml": created(
        "attacker@evil.example", "附件请查收", attachments=("passwd",)
    ),
    "hostile_nul_bytes.eml": created("nul@example.cn", "提现未到账", "nul_bytes"),
    "hostile_unknown_charset.eml": created("luo@example.cn", "内容是国标编码", "unknown_charset"),
    "html_only_script.eml": created("zhao@example.cn", "请尽快处理我的工单", "script_in_html"),
    "inline_cid_image.eml": created(
        "zhouba@example.cn", "转账截图见正文", attachments=("screenshot.png",)
    ),
    "multipart_alternative.eml": created("sunqi@example.cn", "谷歌验证器丢失"),
    "plain_utf8_zh.eml": created("zhangsan@example.cn", "USDT 提现"),
    "raw_8bit_gbk_headers.eml": created("qianjiu@example.cn", "地址填错了"),
    "reply_163.eml": threaded("截图已经发给你们了", "-----原始邮件-----"),
    "reply_foxmail.eml": threaded("已经按要求提供了截图"),
    "reply_gmail_en.eml": threaded("My UID is 12345678", " wrote:"),
    "reply_gmail_zh.eml": threaded("订单号是 W2026112400123", "写道"),
    "reply_outlook_en.eml": threaded("Here is the TXID", "From:"),
    "reply_outlook_zh.eml": threaded("我的 UID 是 12345678", "发件人"),
    "reply_qq_mail.eml": threaded("我马上去补充材料"),
    "reply_ticket_subject.eml": threaded("提现金额 500 USDT"),
    "subject_split_midchar.eml": created("zheng@example.cn", "账户被盗"),
}


def test_every_fixture_has_an_expected_outcome() -> None:
    assert sorted(EXPECTED) == NAMES


def seed_thread(ingestor: Ingestor, message_id: str) -> Ticket:
    """The mail the reply fixtures answer, received earlier from the same contact."""
    root = EmailMessage()
    root["From"] = f"刘十 <{THREAD_CONTACT}>"
    root["To"] = SUPPORT
    root["Subject"] = "提现未到账"
    root["Message-ID"] = f"<{message_id}>"
    root.set_content("我的提现一直没有到账。")
    received = ingestor.ingest(root.as_bytes(), recipient=SUPPORT)
    assert received.ticket is not None
    return received.ticket


def counts(db: Session) -> tuple[int, int, int]:
    return (
        db.scalar(select(func.count()).select_from(Ticket)) or 0,
        db.scalar(select(func.count()).select_from(Message)) or 0,
        db.scalar(select(func.count()).select_from(Job).where(Job.kind == "email.ack")) or 0,
    )


@pytest.mark.parametrize("name", NAMES)
def test_fixture_becomes_the_expected_ticket(
    name: str, sessions: sessionmaker[Session], db: Session
) -> None:
    expect = EXPECTED[name]
    raw = (FIXTURES / name).read_bytes()
    ingestor = Ingestor(sessions, MemoryFileStore(), 5_000_000, (OWN_DOMAIN,), authserv_id=AUTHSERV)
    root: Ticket | None = None
    if expect.outcome == "threaded":
        thread_ids = [i for i in _references(raw) if i]
        assert thread_ids, f"{name} answers nothing"
        root = seed_thread(ingestor, thread_ids[-1])
    if expect.outcome == "bounce":
        ingestor.ingest(
            _mail(expect.contact or "", "nb-0@example.cn"), recipient=SUPPORT
        )  # the bounced address is a contact of ours
    before = counts(db)

    if expect.outcome == "refused":
        with pytest.raises(KefuError):
            ingestor.ingest(raw, recipient=SUPPORT)
        assert counts(db) == before
        return
    received = ingestor.ingest(raw, recipient=SUPPORT)
    tickets, messages, acks = counts(db)

    if expect.outcome == "bounce":
        assert received.bounce and received.ticket is None and received.message is None
        assert (tickets, messages) == before[:2]
        contact = db.scalar(select(Contact).where(Contact.email == expect.contact))
        assert contact is not None
        db.refresh(contact)
        assert contact.email_bounced_at is not None
        return

    assert received.ticket is not None and received.message is not None
    assert not received.duplicate
    ticket = db.get(Ticket, received.ticket.id)
    message = db.get(Message, received.message.id)
    assert ticket is not None and message is not None
    db.refresh(message)
    contact = db.get(Contact, ticket.contact_id)
    assert contact is not None and contact.email == expect.contact
    assert message.contact_id == contact.id and message.direction == "in"
    if expect.outcome == "created":
        assert received.created_ticket and tickets == before[0] + 1
        assert ticket.channel.value == "email" and ticket.subject.strip()
        assert acks == before[2] + (1 if expect.ack else 0)
    else:
        assert root is not None and ticket.id == root.id and not received.created_ticket
        assert tickets == before[0] and acks == before[2]
        assert message.is_internal is False  # the ticket's own contact: public on it
    assert messages == before[1] + 1
    assert message.body.strip() and expect.body in message.body, message.body[:200]
    if expect.not_in_body is not None:
        assert expect.not_in_body not in message.body  # quoted history stripped …
        assert message.meta["email"]["quoted_history_stripped"] is True  # … and kept
    assert expect.flags <= set(message.meta["flags"]), message.meta["flags"]
    assert [a.filename for a in message.attachments] == list(expect.attachments)
    assert tuple(message.meta.get("skipped_attachments", ())) == expect.skipped
    assert message.email_message_id is not None
    # Redelivery (a lost 250) stores nothing twice.
    again = ingestor.ingest(raw, recipient=SUPPORT)
    assert again.duplicate and counts(db) == (tickets, messages, acks)


def _references(raw: bytes) -> list[str]:
    parsed = parse_email(raw)
    return [*parsed.references, *parsed.in_reply_to]


def _mail(sender: str, message_id: str) -> bytes:
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = SUPPORT
    msg["Subject"] = "你好"
    msg["Message-ID"] = f"<{message_id}>"
    msg.set_content("第一次来信")
    return msg.as_bytes()
