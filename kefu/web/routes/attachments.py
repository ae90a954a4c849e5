"""/api/v1/attachments: upload, then attach by id to a message; download with auth."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Path, UploadFile
from starlette.responses import Response

from kefu.actions.attachments import do_upload_attachment
from kefu.domain.errors import PayloadTooLarge, PermissionDenied
from kefu.queries.attachments import access_attachment_by_id
from kefu.web.deps import PrincipalDep, ReadDbDep, StateDep
from kefu.web.schemas import MAX_ID, AttachmentPublic

router = APIRouter(prefix="/attachments", tags=["attachments"])

# Types a browser may show inline; anything else is a download, so an uploaded HTML or
# SVG file can never run script on our origin.
INLINE_TYPES = frozenset({"image/png", "image/jpeg", "image/gif", "image/webp", "application/pdf"})


@router.post("", status_code=201, response_model=AttachmentPublic)
def upload_attachment(
    file: UploadFile, principal: PrincipalDep, state: StateDep
) -> AttachmentPublic:
    limit = state.settings.max_upload_bytes
    data = file.file.read(limit + 1)
    if len(data) > limit:
        raise PayloadTooLarge("file too large", max_bytes=limit)
    if principal.agent is not None and not principal.has_scope("write"):
        raise PermissionDenied("token lacks the scope", scope="write")
    with state.transaction() as db:
        att = do_upload_attachment(
            db,
            principal.actor,
            state.files,
            data=data,
            filename=file.filename or "attachment",
            declared_type=file.content_type,
            max_bytes=limit,
        )
        return AttachmentPublic.of(att)


@router.get("/{attachment_id}", response_class=Response)
def download_attachment(
    attachment_id: Annotated[int, Path(ge=1, le=MAX_ID)],
    db: ReadDbDep,
    principal: PrincipalDep,
    state: StateDep,
) -> Response:
    att = access_attachment_by_id(db, principal.actor, attachment_id)
    data = state.files.get(att.sha256)
    disposition = "inline" if att.content_type in INLINE_TYPES else "attachment"
    return Response(
        data,
        media_type=att.content_type,
        headers={
            "Content-Disposition": f"{disposition}; filename*=UTF-8''{quote(att.filename)}",
            "X-Content-Type-Options": "nosniff",
            "Content-Security-Policy": "default-src 'none'; sandbox",
            "Cache-Control": "private, max-age=3600",
        },
    )
