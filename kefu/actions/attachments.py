"""Uploads: bytes into the content-addressed store, a metadata row into the database.

The type is sniffed from the bytes, not trusted from the client; the filename is
cleaned of paths, control and bidi characters (a U+202E can make ``exe.pdf`` read as
``fdp.exe``). See docs/subsystems/attachments.md.
"""

from __future__ import annotations

import unicodedata

import filetype
from sqlalchemy.orm import Session

from kefu import events
from kefu.actions.guard import screen_inbound
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
) -> Attachment:
    if len(data) > max_bytes:
        raise PayloadTooLarge("file too large", max_bytes=max_bytes)
    if not data:
        raise ValidationFailed("file is empty", field="file")
    content_type = sniff_type(data, declared_type)
    if content_type not in ALLOWED_TYPES:
        raise ValidationFailed("file type not allowed", field="file", content_type=content_type)
    masked_kinds: tuple[str, ...] = ()
    if content_type in _TEXT_TYPES:
        # A seed phrase in notes.txt is as much at rest as one in a message body.
        data, masked_kinds = _mask_text_file(data)
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
