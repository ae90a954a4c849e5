"""Writes on macros (canned replies): save and delete, audited.

See docs/subsystems/console.md.
"""

from __future__ import annotations

import re

from sqlalchemy import select
from sqlalchemy.orm import Session

from kefu import events
from kefu.actions.history import record_event
from kefu.domain import access
from kefu.domain.access import Actor
from kefu.domain.errors import Conflict, NotFound, PermissionDenied, ValidationFailed
from kefu.domain.macros import MAX_BODY_CHARS, VARIABLES, unknown_variables
from kefu.infra.i18n import LOCALES
from kefu.models import Macro, Team

_SLUG = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")


def do_save_macro(
    session: Session,
    actor: Actor,
    *,
    slug: str,
    title: str,
    body: str,
    locale: str = "zh-CN",
    team_id: int | None = None,
) -> Macro:
    """Create the macro ``slug`` or replace its text."""
    if not access.can_manage_macros(actor):
        raise PermissionDenied("supervisors and admins keep the macros")
    slug = slug.strip().lower()
    if not _SLUG.match(slug):
        raise ValidationFailed("invalid macro slug", field="slug")
    title = " ".join(title.split())
    if not title or len(title) > 200:
        raise ValidationFailed("a macro needs a title of at most 200 characters", field="title")
    body = body.replace("\r\n", "\n").replace("\x00", "").strip()
    if not body or len(body) > MAX_BODY_CHARS:
        raise ValidationFailed("a macro needs a text of at most 20000 characters", field="body")
    unknown = unknown_variables(body)
    if unknown:
        raise ValidationFailed(
            "unknown placeholder in the macro", field="body", unknown=unknown, known=VARIABLES
        )
    if locale not in LOCALES:
        raise ValidationFailed("unknown locale", field="locale")
    if team_id is not None and session.get(Team, team_id) is None:
        raise ValidationFailed("unknown team", field="team_id")
    macro = session.scalar(select(Macro).where(Macro.slug == slug))
    if macro is None:
        macro = Macro(slug=slug, title=title, body=body, locale=locale, team_id=team_id)
        session.add(macro)
    else:
        macro.title, macro.body, macro.locale, macro.team_id = title, body, locale, team_id
    session.flush()
    record_event(session, actor, events.MACRO_SAVED, data={"macro_id": macro.id, "slug": slug})
    return macro


def do_delete_macro(session: Session, actor: Actor, macro_id: int) -> None:
    if not access.can_manage_macros(actor):
        raise PermissionDenied("supervisors and admins keep the macros")
    macro = session.get(Macro, macro_id)
    if macro is None:
        raise NotFound("macro not found")
    record_event(
        session, actor, events.MACRO_DELETED, data={"macro_id": macro.id, "slug": macro.slug}
    )
    session.delete(macro)
    session.flush()


def check_new_macro_slug(session: Session, slug: str) -> None:
    """For a create form that must not overwrite: the slug is still free."""
    if session.scalar(select(Macro.id).where(Macro.slug == slug.strip().lower())) is not None:
        raise Conflict("a macro with this slug exists", field="slug")
