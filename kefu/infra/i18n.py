"""User-facing text through gettext catalogs: zh-CN first, en as the source language.

Message ids are English; ``kefu/locale/<locale>/LC_MESSAGES/kefu.po`` holds the
translations. Catalogs are compiled in memory when first used, so there is no build
step that can leave a stale ``.mo`` behind.
"""

from __future__ import annotations

import gettext
import io
from functools import cache
from pathlib import Path

from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po

LOCALES = ("zh-CN", "en")
DEFAULT_LOCALE = "zh-CN"
LOCALE_DIR = Path(__file__).resolve().parent.parent / "locale"


@cache
def translations(locale: str) -> gettext.NullTranslations:
    po = LOCALE_DIR / locale.replace("-", "_") / "LC_MESSAGES" / "kefu.po"
    if not po.exists():
        return gettext.NullTranslations()
    with po.open("rb") as fh:
        catalog = read_po(fh, locale=locale.replace("-", "_"))
    buf = io.BytesIO()
    write_mo(buf, catalog)
    buf.seek(0)
    return gettext.GNUTranslations(buf)


def gettext_for(locale: str, message: str) -> str:
    return translations(locale).gettext(message)


def negotiate(accept_language: str | None, default: str = DEFAULT_LOCALE) -> str:
    """Pick zh-CN or en from an Accept-Language header (q-values honoured)."""
    if not accept_language:
        return default
    best: tuple[float, str] | None = None
    for part in accept_language.split(",")[:20]:
        lang, _, params = part.strip().partition(";")
        q = 1.0
        params = params.strip()
        if params.startswith("q="):
            try:
                q = float(params[2:])
            except ValueError:
                q = 0.0
        lang = lang.strip().lower()
        if lang.startswith("zh"):
            match = "zh-CN"
        elif lang.startswith("en"):
            match = "en"
        else:
            continue
        if best is None or q > best[0]:
            best = (q, match)
    return best[1] if best is not None and best[0] > 0 else default
