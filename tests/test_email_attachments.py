"""Attachments that arrive by email and could hurt: a forwarded mail (``message/rfc822``)
holding a seed phrase or a key, and zip archives built to overlap or explode
(CVE-2024-0450). Through the real ingest path into the database and a real file store
(``files/`` under the test's data directory)."""

from __future__ import annotations

import base64
import io
import struct
import zipfile
import zlib
from email import message_from_bytes
from email.message import EmailMessage
from email.policy import compat32
from pathlib import Path

import pytest
from mnemonic import Mnemonic
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from kefu.actions.attachments import zip_problem
from kefu.channels.email.inbound import Ingestor
from kefu.infra.files import LocalFileStore
from kefu.models import Attachment, Message
from kefu.settings import Settings
from tests.secret_evidence import assert_kept_nowhere, gather

SEED = Mnemonic("english").to_mnemonic(bytes(range(16)))
PRIVKEY = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
DOMAIN = "kx-exchange.example"
FIXTURES = Path(__file__).parent / "fixtures" / "email"
PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
)


@pytest.fixture
def ingestor(sessions: sessionmaker[Session], settings: Settings) -> Ingestor:
    return Ingestor(sessions, LocalFileStore(settings.files_dir), 5_000_000, (DOMAIN,))


def decoded_files(root: Path) -> str:
    """Every stored file, and every part of every stored mail decoded from its transfer
    encoding: a secret in base64 is still kept."""
    chunks: list[str] = []
    for path in sorted(root.rglob("*")):
        if not path.is_file():
            continue
        data = path.read_bytes()
        chunks.append(data.decode("utf-8", "replace"))
        for part in message_from_bytes(data, policy=compat32).walk():
            payload = part.get_payload(decode=True)
            if isinstance(payload, bytes):
                chunks.append(payload.decode("utf-8", "replace"))
    return "\n".join(chunks)


def phishing_mail(text: str = f"请回复您的助记词完成验证：{SEED}") -> EmailMessage:
    """What a scammer sent the customer: base64 text parts, a QR code, a 'backup' file."""
    inner = EmailMessage()
    inner["From"] = "币安安全中心 <security@kefu-verify.example>"
    inner["To"] = "huang@example.cn"
    inner["Subject"] = "【重要】您的账户存在风险"
    inner["Message-ID"] = "<phish-9@kefu-verify.example>"
    inner.set_content(text, cte="base64")
    inner.add_attachment(PNG, maintype="image", subtype="png", filename="qrcode.png")
    if SEED in text:
        inner.add_attachment(
            f"private key: {PRIVKEY}\n".encode(),
            maintype="text",
            subtype="plain",
            filename="备份.txt",
        )
    return inner


def forward(inner: EmailMessage, message_id: str) -> bytes:
    outer = EmailMessage()
    outer["From"] = "黄十一 <huang@example.cn>"
    outer["To"] = f"support@{DOMAIN}"
    outer["Subject"] = "Fw: 【重要】您的账户存在风险"
    outer["Message-ID"] = f"<{message_id}>"
    outer.set_content("我收到这封邮件，是你们发的吗？")
    outer.add_attachment(inner, filename="可疑邮件.eml")
    return outer.as_bytes()


def test_a_forwarded_mail_holding_secrets_is_kept_masked(
    ingestor: Ingestor, db: Session, settings: Settings
) -> None:
    raw = forward(phishing_mail(), "fwd-9@example.cn")
    assert SEED.encode() not in raw  # only base64 carries it: a raw scan would miss it
    received = ingestor.ingest(raw, recipient=f"support@{DOMAIN}")
    assert received.created_ticket and received.message is not None
    stored = db.get(Message, received.message.id)
    assert stored is not None
    db.refresh(stored)
    assert "original_not_kept" in stored.meta["flags"]
    assert "[已屏蔽：助记词]" in stored.body  # the forwarded text, shown to agents, masked
    (eml,) = [a for a in stored.attachments if a.content_type == "message/rfc822"]
    kept = LocalFileStore(settings.files_dir).get(eml.sha256)
    parts = {
        part.get_filename() or part.get_content_type(): part.get_payload(decode=True)
        for part in message_from_bytes(kept, policy=compat32).walk()
        if not part.is_multipart()
    }
    # The evidence stays whole (headers, QR code); only what a person reads is masked.
    assert parts["qrcode.png"] == PNG
    assert b"[\xe5\xb7\xb2\xe5\xb1\x8f\xe8\x94\xbd" in parts["text/plain"]  # "[已屏蔽"
    assert "[已屏蔽：私钥]".encode() in parts["备份.txt"]
    assert b"phish-9@kefu-verify.example" in kept
    evidence = gather(db, files_dir=settings.files_dir, caplog=None)
    assert_kept_nowhere(evidence, [SEED, PRIVKEY])
    everything = decoded_files(settings.files_dir)
    assert "[已屏蔽：助记词]" in everything  # the decoder did read the stored parts
    for secret in (SEED, PRIVKEY):
        assert secret not in everything


def test_a_clean_forward_is_kept_byte_for_byte(
    ingestor: Ingestor, db: Session, settings: Settings
) -> None:
    inner = phishing_mail("您的账户存在风险，请点击链接验证。")
    received = ingestor.ingest(forward(inner, "fwd-10@example.cn"))
    assert received.message is not None
    stored = db.get(Message, received.message.id)
    assert stored is not None
    db.refresh(stored)
    assert "original_not_kept" not in stored.meta["flags"]
    assert stored.meta["email"]["original_sha256"] is not None


def test_a_bounce_returning_a_secret_is_not_filed(
    ingestor: Ingestor, db: Session, settings: Settings
) -> None:
    """A report returns someone's mail as an attachment only (not in the text): the kept
    original must still be screened, even behind base64."""
    raw = (FIXTURES / "dsn_bounce.eml").read_bytes().replace(b"\r\n", b"\n")
    body = base64.encodebytes(f"我的助记词 {SEED}".encode())
    returned = b"Content-Transfer-Encoding: base64\n\n" + body
    raw = raw.replace(
        "\n\n工单 K12345671 已更新。\n".encode(),
        b"\nMIME-Version: 1.0\nContent-Type: text/plain; charset=utf-8\n" + returned,
    )
    assert body in raw
    assert ingestor.ingest(raw).bounce
    assert SEED not in decoded_files(settings.files_dir)
    assert_kept_nowhere(gather(db, files_dir=settings.files_dir, caplog=None), [SEED])


# -- zip archives ----------------------------------------------------------------------


def _local(name: bytes, data: bytes) -> bytes:
    return (
        struct.pack(
            "<4sHHHHHIIIHH",
            b"PK\x03\x04",
            20,
            0,
            0,
            0,
            0,
            zlib.crc32(data),
            len(data),
            len(data),
            len(name),
            0,
        )
        + name
    )


def _central(name: bytes, data_len: int, crc: int, offset: int) -> bytes:
    return (
        struct.pack(
            "<4sHHHHHHIIIHHHHHII",
            b"PK\x01\x02",
            20,
            20,
            0,
            0,
            0,
            0,
            crc,
            data_len,
            data_len,
            len(name),
            0,
            0,
            0,
            0,
            0,
            offset,
        )
        + name
    )


def overlapping_zip() -> bytes:
    """The 'quoted overlap' shape: entry A's stored data *is* entry B's local header
    and data, so one file's bytes are read twice (CVE-2024-0450). A real bomb nests
    this thousands of times; two entries are enough to show the overlap."""
    kernel = b"\x00" * 1000
    b_local = _local(b"b.txt", kernel)
    a_data = b_local + kernel
    a_local = _local(b"a.txt", a_data)
    body = a_local + a_data
    b_offset = len(a_local)
    directory = _central(b"a.txt", len(a_data), zlib.crc32(a_data), 0) + _central(
        b"b.txt", len(kernel), zlib.crc32(kernel), b_offset
    )
    end = struct.pack("<4sHHHHIIH", b"PK\x05\x06", 0, 0, 2, 2, len(directory), len(body), 0)
    return body + directory + end


def plain_zip(**files: bytes) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def duplicate_zip() -> bytes:
    raw = plain_zip(**{"a.txt": b"first", "b.txt": b"second"})
    assert raw.count(b"b.txt") == 2  # in the local header and in the directory
    return raw.replace(b"b.txt", b"a.txt")


def test_zip_central_directory_checks() -> None:
    overlap = overlapping_zip()
    # The standard library on this machine lists it as two good files.
    assert zipfile.ZipFile(io.BytesIO(overlap)).namelist() == ["a.txt", "b.txt"]
    assert zip_problem(overlap) == "overlapping_entries"
    assert zip_problem(duplicate_zip()) == "duplicate_entry"
    assert zip_problem(plain_zip(**{"bomb.txt": b"\x00" * (8 * 1024 * 1024)})) == "zip_bomb"
    assert zip_problem(b"PK\x03\x04 not really a zip") == "no_central_directory"
    # Bytes in front of the archive (a polyglot: an image that is also a zip).
    assert zip_problem(b"GIF89a junk" + plain_zip(**{"a.txt": b"x"})) == "bad_central_directory"
    good = plain_zip(**{"截图.png": PNG, "记录.csv": b"time,amount\n" * 200})
    assert zip_problem(good) is None
    # Cut anywhere, it is refused, never a crash.
    for cut in range(0, len(good), 7):
        assert zip_problem(good[:cut]) is not None


def mail_with_zip(data: bytes, message_id: str) -> bytes:
    msg = EmailMessage()
    msg["From"] = "zhang.san@example.com"
    msg["To"] = f"support@{DOMAIN}"
    msg["Subject"] = "交易记录"
    msg["Message-ID"] = f"<{message_id}>"
    msg.set_content("附件是我的交易记录截图。")
    msg.add_attachment(data, maintype="application", subtype="zip", filename="记录.zip")
    return msg.as_bytes()


@pytest.mark.parametrize(
    ("archive", "kept"),
    [
        (overlapping_zip, False),
        (duplicate_zip, False),
        (lambda: plain_zip(**{"bomb.txt": b"\x00" * (8 * 1024 * 1024)}), False),
        (lambda: plain_zip(**{"截图.png": PNG}), True),
    ],
    ids=["overlap", "duplicate", "bomb", "fine"],
)
def test_zip_attachments_by_email(
    ingestor: Ingestor, db: Session, archive: object, kept: bool
) -> None:
    data = archive()  # type: ignore[operator]
    received = ingestor.ingest(mail_with_zip(data, f"zip-{len(data)}@example.com"))
    assert received.created_ticket and received.message is not None
    stored = db.get(Message, received.message.id)
    assert stored is not None
    db.refresh(stored)
    zips = [a for a in stored.attachments if a.content_type == "application/zip"]
    if kept:
        assert len(zips) == 1 and "unsafe_zip_refused" not in stored.meta["flags"]
    else:
        assert zips == []
        assert "unsafe_zip_refused" in stored.meta["flags"]
        assert stored.meta["skipped_attachments"] == ["记录.zip"]
        assert (
            db.scalars(select(Attachment).where(Attachment.content_type == "application/zip")).all()
            == []
        )


def test_originals_are_kept_whole_and_once(
    ingestor: Ingestor, db: Session, settings: Settings
) -> None:
    """Each mail's original lands under its SHA-256, in a directory made on first use,
    with no temporary file left beside it; the same bytes twice are one file."""
    raws = [_plain(f"orig-{n}@example.cn") for n in range(3)]
    for raw in [*raws, raws[0]]:
        ingestor.ingest(raw, recipient=f"support@{DOMAIN}")
    root = settings.files_dir
    files = [p for p in root.rglob("*") if p.is_file()]
    assert not [p for p in files if p.name.startswith(".tmp-")]
    store = LocalFileStore(root)
    kept = {
        m.meta["email"]["original_sha256"]
        for m in db.scalars(select(Message).where(Message.direction == "in"))
    }
    assert len(kept) == 3
    assert sorted(store.get(sha) for sha in kept) == sorted(raws)
    assert sorted(p.name for p in files) == sorted(kept)


def _plain(message_id: str) -> bytes:
    msg = EmailMessage()
    msg["From"] = "黄十一 <huang@example.cn>"
    msg["To"] = f"support@{DOMAIN}"
    msg["Subject"] = "提币审核中"
    msg["Message-ID"] = f"<{message_id}>"
    msg.set_content(f"订单 {message_id} 还在审核。")
    return msg.as_bytes()
