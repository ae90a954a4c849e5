"""Reads on the official-channel registry."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from kefu.domain.verify import OfficialEntry, Verdict
from kefu.models import OfficialChannel, VerifyLookup


def list_official_channels(session: Session) -> list[OfficialChannel]:
    return list(
        session.scalars(
            select(OfficialChannel).order_by(OfficialChannel.kind, OfficialChannel.id)
        ).all()
    )


def official_registry(session: Session) -> list[OfficialEntry]:
    rows = session.execute(
        select(OfficialChannel.kind, OfficialChannel.value, OfficialChannel.label)
    ).all()
    return [OfficialEntry(kind, value, label) for kind, value, label in rows]


def verify_lookup_counts(session: Session) -> dict[str, int]:
    rows = session.execute(
        select(VerifyLookup.verdict, func.count()).group_by(VerifyLookup.verdict)
    ).all()
    return {verdict.value: count for verdict, count in rows}


def top_impersonations(
    session: Session, *, since: datetime, limit: int = 20
) -> list[tuple[str, str | None, int]]:
    """What customers most often checked that turned out to imitate us, since ``since``:
    (what they pasted, the official entry it imitates, how many times). These are the
    fakes in circulation; the console shows them so admins can report and warn."""
    rows = session.execute(
        select(VerifyLookup.query, VerifyLookup.matched, func.count().label("n"))
        .where(VerifyLookup.verdict == Verdict.IMPERSONATION, VerifyLookup.created_at >= since)
        .group_by(VerifyLookup.query, VerifyLookup.matched)
        .order_by(func.count().desc(), VerifyLookup.query)
        .limit(limit)
    ).all()
    return [(query, matched, int(n)) for query, matched, n in rows]
