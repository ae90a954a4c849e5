"""/api/v1/attachments: upload, then attach by id to a message; download with auth.

Besides the API's credentials (a bearer token, the exchange's identity token, the
console's session), the chat widget's anonymous visitor authenticates with the visitor
token its chat socket's ``hello`` takes, in the ``X-Kefu-Visitor`` header: the same
credential, checked by the same ``check_visitor``, so a visitor can send a screenshot
in a chat and see the files on their own tickets (docs/chat-protocol.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Depends, Header, Path, Request, UploadFile
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from kefu.actions.attachments import ALLOWED_TYPES, do_upload_attachment
from kefu.actions.chat import CHAT_ATTACHMENT_TYPES
from kefu.domain.access import Actor, ActorKind
from kefu.domain.errors import NotAuthenticated, PayloadTooLarge, PermissionDenied, RateLimited
from kefu.models import Contact
from kefu.queries.attachments import access_attachment_by_id
from kefu.web.chat import check_visitor
from kefu.web.deps import (
    SESSION_COOKIE,
    AppState,
    Principal,
    ReadDbDep,
    StateDep,
    get_principal,
)
from kefu.web.schemas import MAX_ID, AttachmentPublic

router = APIRouter(prefix="/attachments", tags=["attachments"])

# Types a browser may show inline; anything else is a download, so an uploaded HTML or
# SVG file can never run script on our origin.
INLINE_TYPES = frozenset({"image/png", "image/jpeg", "image/gif", "image/webp", "application/pdf"})
# An anonymous visitor's uploads are files for a chat; this bounds what one visitor
# token can pile into the store.
VISITOR_UPLOADS_PER_HOUR = 30


@dataclass(frozen=True, slots=True)
class Caller:
    principal: Principal
    is_visitor: bool = False  # authenticated by a chat visitor token


async def get_caller(
    request: Request,
    state: StateDep,
    x_kefu_visitor: Annotated[
        str | None,
        Header(max_length=64, description="The chat widget's visitor token (see hello)."),
    ] = None,
) -> Caller:
    """Who is calling: the API's credentials, or else a chat visitor's token."""
    has_credentials = request.headers.get("authorization") or request.cookies.get(SESSION_COOKIE)
    if has_credentials or x_kefu_visitor is None:
        return Caller(await get_principal(request, state))
    contact_id = check_visitor(state.secret_key, x_kefu_visitor)
    if contact_id is None:
        raise NotAuthenticated("invalid visitor token")
    return Caller(Principal(actor=Actor(kind=ActorKind.CONTACT, id=contact_id)), is_visitor=True)


CallerDep = Annotated[Caller, Depends(get_caller)]


@router.post("", status_code=201, response_model=AttachmentPublic)
async def upload_attachment(
    file: UploadFile, caller: CallerDep, state: StateDep
) -> AttachmentPublic:
    if caller.is_visitor:
        key = f"upload:{caller.principal.key}"
        wait = await state.limiter.hit(key, VISITOR_UPLOADS_PER_HOUR, 3600)
        if wait:
            raise RateLimited("too many uploads; try again later", retry_after_seconds=wait)
    return await run_in_threadpool(_store_upload, file, caller, state)


def _store_upload(file: UploadFile, caller: Caller, state: AppState) -> AttachmentPublic:
    principal = caller.principal
    limit = state.settings.max_upload_bytes
    data = file.file.read(limit + 1)
    if len(data) > limit:
        raise PayloadTooLarge("file too large", max_bytes=limit)
    if principal.agent is not None and not principal.has_scope("write"):
        raise PermissionDenied("token lacks the scope", scope="write")
    with state.transaction() as db:
        if caller.is_visitor and db.get(Contact, principal.actor.id) is None:
            raise NotAuthenticated("invalid visitor token")  # the contact was erased
        att = do_upload_attachment(
            db,
            principal.actor,
            state.files,
            data=data,
            filename=file.filename or "attachment",
            declared_type=file.content_type,
            max_bytes=limit,
            # A visitor's files are for a chat: screenshots and PDFs only.
            allowed_types=CHAT_ATTACHMENT_TYPES if caller.is_visitor else ALLOWED_TYPES,
        )
        return AttachmentPublic.of(att)


@router.get("/{attachment_id}", response_class=Response)
def download_attachment(
    attachment_id: Annotated[int, Path(ge=1, le=MAX_ID)],
    db: ReadDbDep,
    caller: CallerDep,
    state: StateDep,
) -> Response:
    # The uploader, or whoever may see the message it is on (a contact: their own
    # tickets' public messages), else 404.
    att = access_attachment_by_id(db, caller.principal.actor, attachment_id)
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
