"""Reads on the official-channel registry."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from kefu.domain.verify import OfficialEntry
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
