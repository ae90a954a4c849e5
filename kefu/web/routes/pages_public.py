"""Public pages (no login): the official-channel check."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from starlette.responses import HTMLResponse

from kefu.domain.errors import RateLimited
from kefu.web.deps import StateDep
from kefu.web.pages import render
from kefu.web.routes.verify import check_channel

router = APIRouter(include_in_schema=False)


@router.get("/verify", response_class=HTMLResponse)
async def verify_page(
    request: Request, state: StateDep, q: Annotated[str, Query(max_length=500)] = ""
) -> HTMLResponse:
    query = q.strip()
    if not query:
        return render(request, "pages/verify/index.html", query="", result=None)
    try:
        result = await check_channel(request, state, query)
    except RateLimited as exc:
        # The same limit as the API (one counter per address), answered as a page that
        # says so, with the wait a browser or a script can read.
        page = render(
            request, "pages/verify/index.html", status_code=429, query=query, rate_limited=True
        )
        page.headers["Retry-After"] = str(exc.retry_after_seconds)
        return page
    return render(request, "pages/verify/index.html", query=query, result=result)
