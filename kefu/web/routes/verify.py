"""/api/v1/verify (public: is this channel official?) and the registry (admin)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Request
from starlette.concurrency import run_in_threadpool

from kefu.actions.official_channels import (
    do_add_official_channel,
    do_record_verify_lookup,
    do_remove_official_channel,
)
from kefu.domain.errors import RateLimited
from kefu.domain.verify import VerifyResult, verify
from kefu.queries.official_channels import list_official_channels, official_registry
from kefu.web.deps import AdminDep, AppState, ReadDbDep, StateDep
from kefu.web.routes.auth import client_ip
from kefu.web.schemas import (
    MAX_ID,
    OfficialChannelCreate,
    OfficialChannelList,
    OfficialChannelPublic,
    VerifyResponse,
)

router = APIRouter(tags=["verify"])

# Generous for a customer checking a handful of links, tight for someone mapping
# which of their look-alike domains we already know about.
VERIFY_PER_MINUTE = 30


async def check_channel(request: Request, state: AppState, query: str) -> VerifyResult:
    """Rate-limit, verify against the registry, and log the lookup (API and page)."""
    wait = await state.limiter.hit(f"verify:{client_ip(request)}", VERIFY_PER_MINUTE, 60)
    if wait:
        raise RateLimited("too many lookups", retry_after_seconds=wait)

    def run() -> VerifyResult:
        with state.read_sessions() as db:
            registry = official_registry(db)
        result = verify(query, registry)
        with state.transaction() as db:
            do_record_verify_lookup(db, query, result)
        return result

    return await run_in_threadpool(run)


@router.get("/verify", response_model=VerifyResponse)
async def verify_channel(
    request: Request, state: StateDep, q: Annotated[str, Query(max_length=500)] = ""
) -> VerifyResponse:
    result = await check_channel(request, state, q)
    return VerifyResponse(
        verdict=result.verdict, kind=result.kind, matched=result.matched, reason=result.reason
    )


@router.get("/official-channels", response_model=OfficialChannelList)
def get_official_channels(db: ReadDbDep, principal: AdminDep) -> OfficialChannelList:
    return OfficialChannelList(
        items=[OfficialChannelPublic.of(c) for c in list_official_channels(db)]
    )


@router.post("/official-channels", status_code=201, response_model=OfficialChannelPublic)
def add_official_channel(
    body: OfficialChannelCreate, state: StateDep, principal: AdminDep
) -> OfficialChannelPublic:
    with state.transaction() as db:
        row = do_add_official_channel(
            db, principal.actor, kind=body.kind, value=body.value, label=body.label
        )
        return OfficialChannelPublic.of(row)


@router.delete("/official-channels/{channel_id}", status_code=204)
def remove_official_channel(
    channel_id: Annotated[int, Path(ge=1, le=MAX_ID)], state: StateDep, principal: AdminDep
) -> None:
    with state.transaction() as db:
        do_remove_official_channel(db, principal.actor, channel_id)
