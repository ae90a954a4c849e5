"""Uploads: bytes into the content-addressed store, a metadata row into the database.

The type is sniffed from the bytes, not trusted from the client; the filename is
cleaned of paths, control and bidi characters (a U+202E can make ``exe.pdf`` read as
``fdp.exe``). Secrets are masked in what a person can read: text files, and the text
parts of a forwarded mail (``.eml``). A zip is kept only if its central directory is
sane (CVE-2024-0450: this Python's zipfile lacks the overlap check). See
docs/subsystems/attachments.md and docs/email.md.
"""

from __future__ import annotations

import itertools
import struct
import unicodedata
from email import message_from_bytes
from email.header import Header, decode_header, make_header
from email.message import Message
from email.policy import compat32

import filetype
from sqlalchemy.orm import Session

from kefu import events
from kefu.actions.guard import html_text, screen_inbound
from kefu.actions.history import record_event
from kefu.domain.access import Actor, ActorKind
from kefu.domain.errors import PayloadTooLarge, ValidationFailed
from kefu.infra.files import FileStore
from kefu.models import Attachment

ALLOWED_TYPES = frozenset(
    {
        "image/png",
        "image/jpeg",
        "image/gif",
        "image/webp",
        "image/bmp",
        "image/heic",
        "application/pdf",
        "text/plain",
        "text/csv",
        "message/rfc822",
        "application/zip",
    }
)
_BIDI_AND_INVISIBLE = {
    chr(c)
    for c in (
        *range(0x202A, 0x202F),
        *range(0x2066, 0x206A),
        0x200E,
        0x200F,
        0x061C,
        0xFEFF,
        0x200B,
    )
}
MAX_FILENAME = 150


def sanitize_filename(name: str, *, fallback: str = "attachment") -> str:
    name = unicodedata.normalize("NFKC", name)
    name = name.replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(
        ch for ch in name if ch not in _BIDI_AND_INVISIBLE and unicodedata.category(ch)[0] != "C"
    )
    name = name.strip().strip(".")
    if not name:
        name = fallback
    if len(name) > MAX_FILENAME:
        stem, dot, ext = name.rpartition(".")
        if dot and 0 < len(ext) <= 10:
            name = stem[: MAX_FILENAME - len(ext) - 1] + "." + ext
        else:
            name = name[:MAX_FILENAME]
    return name


def sniff_type(data: bytes, declared: str | None) -> str:
    kind = filetype.guess(data)
    if kind is not None:
        return str(kind.mime)
    if declared in ("text/plain", "text/csv", "message/rfc822"):
        try:
            data.decode("utf-8")
        except UnicodeDecodeError:
            try:
                data.decode("gb18030")
            except UnicodeDecodeError:
                return "application/octet-stream"
        return declared
    return "application/octet-stream"


def do_upload_attachment(
    session: Session,
    actor: Actor,
    store: FileStore,
    *,
    data: bytes,
    filename: str,
    declared_type: str | None,
    max_bytes: int,
    allowed_types: frozenset[str] = ALLOWED_TYPES,
) -> Attachment:
    """Store an upload. ``allowed_types`` narrows what is kept (a chat visitor's files
    are screenshots and PDFs); a refused file leaves nothing behind."""
    if len(data) > max_bytes:
        raise PayloadTooLarge("file too large", max_bytes=max_bytes)
    if not data:
        raise ValidationFailed("file is empty", field="file")
    content_type = sniff_type(data, declared_type)
    if content_type not in ALLOWED_TYPES or content_type not in allowed_types:
        raise ValidationFailed("file type not allowed", field="file", content_type=content_type)
    masked_kinds: tuple[str, ...] = ()
    if content_type in _TEXT_TYPES:
        # A seed phrase in notes.txt is as much at rest as one in a message body.
        data, masked_kinds = _mask_text_file(data)
    elif content_type == "message/rfc822":
        # A forwarded mail is text too, behind transfer encodings: screened part by part.
        data, masked_kinds = _mask_eml(data)
    elif content_type == "application/zip":
        problem = zip_problem(data)
        if problem is not None:
            raise ValidationFailed(
                "zip archive refused: damaged, overlapping entries or a zip bomb",
                field="file",
                reason=problem,
            )
    sha = store.put(data)
    att = Attachment(
        sha256=sha,
        size=len(data),
        content_type=content_type,
        filename=sanitize_filename(filename),
        uploaded_by_agent_id=actor.id if actor.kind is ActorKind.AGENT else None,
        uploaded_by_contact_id=actor.id if actor.kind is ActorKind.CONTACT else None,
    )
    session.add(att)
    session.flush()
    record_event(
        session,
        actor,
        events.ATTACHMENT_UPLOADED,
        data={"attachment_id": att.id, "size": att.size, "type": content_type},
    )
    if masked_kinds:
        record_event(
            session,
            actor,
            events.SECRET_MASKED,
            data={"attachment_id": att.id, "kinds": list(masked_kinds)},
            is_internal=True,
        )
    return att


_TEXT_TYPES = frozenset({"text/plain", "text/csv"})


def _mask_text_file(data: bytes) -> tuple[bytes, tuple[str, ...]]:
    """``data`` with its secrets masked (re-encoded as UTF-8 if any were), and their kinds."""
    for charset in ("utf-8", "gb18030"):
        try:
            text = data.decode(charset)
        except UnicodeDecodeError:
            continue
        screened = screen_inbound(text)
        if screened.secret_kinds:
            return screened.text.encode("utf-8"), screened.secret_kinds
        return data, ()
    return data, ()


# -- forwarded mail (message/rfc822) ---------------------------------------------------

# The standard library's parser, which this uses, is not hardened like
# channels/email/parse.py (mail from the listener has been through that one already):
# these bounds keep a hostile upload to a fraction of a second of work, and a mail past
# them is refused rather than kept unscreened.
_EML_MAX_LINES = 600_000
_EML_MAX_BOUNDARY_LINES = 2_000
_EML_MAX_NESTED = 20
_EML_MAX_PARTS = 500
_EML_MAX_TYPE_HEADER = 2_000
_GB_LABELS = frozenset({"gb2312", "gbk", "x-gbk", "gb_2312-80", "euc-cn", "csgb2312"})


def _part_charset(part: Message) -> str:
    raw = str(part.get("content-type", ""))
    if len(raw) > _EML_MAX_TYPE_HEADER:
        return "utf-8"  # get_param is quadratic in the header's length
    label = (part.get_content_charset() or "utf-8").strip().lower()
    if label in _GB_LABELS:
        return "gb18030"  # GB2312 labels carry GB18030-only characters in practice
    try:
        "".encode(label)
    except (LookupError, UnicodeError):
        return "utf-8"
    return label


def _screen_header(message: Message, name: str) -> tuple[str, ...]:
    value = message.get(name)
    if value is None:
        return ()
    try:
        text = str(make_header(decode_header(str(value))))
    except Exception:  # a broken encoded word: screen it as it stands
        text = str(value)
    screened = screen_inbound(text)
    if screened.secret_kinds:
        message.replace_header(name, Header(screened.text, "utf-8").encode())
    return screened.secret_kinds


def _mask_eml(data: bytes) -> tuple[bytes, tuple[str, ...]]:
    """``data`` (one mail) with the secrets in its subject and text parts masked, and
    their kinds. Unchanged when it holds none: the original is the evidence."""
    lines = data.count(b"\n")
    boundaries = data.count(b"\n--")
    nested = data.lower().count(b"message/rfc822")
    if lines > _EML_MAX_LINES or boundaries > _EML_MAX_BOUNDARY_LINES or nested > _EML_MAX_NESTED:
        raise ValidationFailed("forwarded mail is too complex to check for secrets", field="file")
    try:
        root = message_from_bytes(data, policy=compat32)
        parts = list(root.walk())
    except Exception as exc:  # RecursionError and friends on a broken structure
        raise ValidationFailed(
            "forwarded mail is too complex to check for secrets", field="file"
        ) from exc
    if len(parts) > _EML_MAX_PARTS:
        raise ValidationFailed("forwarded mail is too complex to check for secrets", field="file")
    kinds: set[str] = set()
    for part in parts:
        if part.get_content_maintype() == "message" or part is root:
            # The envelope of every message inside: the subject is what a person reads first.
            inner = part.get_payload()
            carrier = part if part is root else (inner[0] if isinstance(inner, list) else None)
            if isinstance(carrier, Message):
                kinds.update(_screen_header(carrier, "subject"))
        if part.is_multipart() or part.get_content_maintype() != "text":
            continue
        payload = part.get_payload(decode=True)
        if not isinstance(payload, bytes) or not payload:
            continue
        text = payload.decode(_part_charset(part), "replace")
        is_html = part.get_content_subtype() == "html"
        screened = screen_inbound(html_text(text) if is_html else text)
        if not screened.secret_kinds:
            continue
        kinds.update(screened.secret_kinds)
        if is_html:
            # Masking inside markup can miss a secret split by tags: keep the masked text.
            part.set_type("text/plain")
        del part["content-transfer-encoding"]
        part.set_payload(screened.text, "utf-8")
    if not kinds:
        return data, ()
    masked = root.as_bytes(policy=compat32)
    # The undecoded remains (a part the parser could not split) are screened as text too.
    masked, raw_kinds = _mask_text_file(masked)
    return masked, tuple(sorted(kinds | set(raw_kinds)))


# -- zip archives ----------------------------------------------------------------------

_ZIP_EOCD = b"PK\x05\x06"
_ZIP_CENTRAL = b"PK\x01\x02"
_ZIP_LOCAL = b"PK\x03\x04"
_ZIP_DESCRIPTOR = b"PK\x07\x08"
MAX_ZIP_ENTRIES = 1_000
MAX_ZIP_UNCOMPRESSED = 512 * 1024 * 1024
# Deflate tops out near 1,032:1; screenshots and PDFs barely compress, and even
# repetitive CSV exports stay well under this.
MAX_ZIP_RATIO = 200
_ZIP_RATIO_FLOOR = 1024 * 1024  # small files may compress as they like


def zip_problem(data: bytes) -> str | None:
    """Why ``data`` is not a zip archive kefu keeps, or None when it is fine.

    Read from the central directory and the local headers it points at, never by
    extracting: overlapping entries (the "quoted overlap" zip bomb of CVE-2024-0450,
    unfixed in this Python's zipfile), duplicate names (two readers, two contents), an
    absurd compression ratio, ZIP64 and multi-disk archives (nothing a customer sends
    needs them) and anything that does not add up are refused.
    """
    end = data.rfind(_ZIP_EOCD, max(0, len(data) - 22 - 0xFFFF))
    if end < 0 or end + 22 > len(data):
        return "no_central_directory"
    disk, cd_disk, disk_entries, entries, cd_size, cd_offset, _ = struct.unpack_from(
        "<HHHHIIH", data, end + 4
    )
    if 0xFFFF in (disk_entries, entries) or 0xFFFFFFFF in (cd_size, cd_offset):
        return "zip64"
    if disk != 0 or cd_disk != 0 or disk_entries != entries:
        return "multi_disk"
    if entries > MAX_ZIP_ENTRIES:
        return "too_many_entries"
    if cd_offset + cd_size != end:
        # Data between the entries and the directory, or before the first entry: a
        # polyglot, or a directory that does not describe this file.
        return "bad_central_directory"
    spans: list[tuple[int, int]] = []
    names: set[str] = set()
    total = 0
    pos = cd_offset
    for _ in range(entries):
        if pos + 46 > end or data[pos : pos + 4] != _ZIP_CENTRAL:
            return "bad_central_directory"
        (flags, method, compressed, size, name_len, extra_len, comment_len, local) = (
            struct.unpack_from("<HH8xIIHHH8xI", data, pos + 8)
        )
        raw_name = data[pos + 46 : pos + 46 + name_len]
        pos += 46 + name_len + extra_len + comment_len
        if pos > end:
            return "bad_central_directory"
        if 0xFFFFFFFF in (compressed, size, local):
            return "zip64"
        name = raw_name.decode("utf-8" if flags & 0x800 else "cp437", "replace")
        if name in names:
            return "duplicate_entry"
        names.add(name)
        if local + 30 > cd_offset or data[local : local + 4] != _ZIP_LOCAL:
            return "bad_local_header"
        local_name_len, local_extra_len = struct.unpack_from("<HH", data, local + 26)
        data_end = local + 30 + local_name_len + local_extra_len + compressed
        if flags & 0x08:  # a data descriptor follows the data, with or without signature
            data_end += 16 if data[data_end : data_end + 4] == _ZIP_DESCRIPTOR else 12
        if data_end > cd_offset:
            return "bad_local_header"
        if method == 0 and compressed != size and not flags & 0x01:
            return "bad_entry"  # a stored entry is its own bytes
        total += size
        if total > MAX_ZIP_UNCOMPRESSED:
            return "zip_bomb"
        if size > _ZIP_RATIO_FLOOR and size > max(compressed, 1) * MAX_ZIP_RATIO:
            return "zip_bomb"
        spans.append((local, data_end))
    spans.sort()
    for (_, previous_end), (start, _) in itertools.pairwise(spans):
        if start < previous_end:
            return "overlapping_entries"
    return None
