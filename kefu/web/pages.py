"""Server-rendered pages: one Jinja2 environment with gettext, the locale of each request.

Pages are zh-CN first; ``?lang=en`` (remembered in a cookie) or the browser's
Accept-Language switch to English.
"""

from __future__ import annotations

from datetime import datetime
from functools import cache
from pathlib import Path
from typing import Any

from fastapi import Request
from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.responses import HTMLResponse

from kefu.domain.clock import wall_clock
from kefu.infra.i18n import LOCALES, negotiate, translations

TEMPLATES = Path(__file__).resolve().parent.parent / "templates"
LANG_COOKIE = "kefu_lang"


@cache
def _environment(locale: str) -> Environment:
    """One environment per locale, its gettext installed once: installing translations
    per request on a shared environment would race between worker threads."""
    env = Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=select_autoescape(["html"]),
        extensions=["jinja2.ext.i18n"],
        trim_blocks=True,
        lstrip_blocks=True,
    )
    # New-style gettext: _("%(n)s articles", n=3) formats and escapes the arguments.
    env.install_gettext_translations(translations(locale), newstyle=True)  # type: ignore[attr-defined]  # added by the i18n extension
    env.filters["localtime"] = localtime
    return env


def localtime(
    value: datetime | None, tz: str = "Asia/Shanghai", fmt: str = "%Y-%m-%d %H:%M"
) -> str:
    """A stored UTC time as the desk's wall-clock time (business logic runs in
    Asia/Shanghai by default; ``KEFU_TIME_ZONE``)."""
    return "" if value is None else wall_clock(value, tz, fmt)


def request_locale(request: Request) -> str:
    lang = request.query_params.get("lang") or request.cookies.get(LANG_COOKIE)
    if lang in LOCALES:
        return lang
    return negotiate(request.headers.get("accept-language"))


def _time_zone(request: Request) -> str:
    state = getattr(request.app.state, "kefu", None)
    return state.settings.time_zone if state is not None else "Asia/Shanghai"


def render(request: Request, template: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    locale = request_locale(request)
    html = (
        _environment(locale)
        .get_template(template)
        .render(request=request, locale=locale, tz=_time_zone(request), **context)
    )
    response = HTMLResponse(html, status_code=status_code)
    response.headers["Content-Language"] = locale
    response.headers["Content-Security-Policy"] = (
        "default-src 'self'; img-src 'self' data: blob:; style-src 'self'; script-src 'self'; "
        "frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
    )
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "same-origin"
    if request.query_params.get("lang") in LOCALES:
        response.set_cookie(LANG_COOKIE, locale, max_age=365 * 86400, samesite="lax")
    return response
