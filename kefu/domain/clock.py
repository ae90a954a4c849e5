"""Time: storage is UTC, business rules use the deployment's zone (Asia/Shanghai)."""

from __future__ import annotations

from datetime import UTC, datetime
from functools import cache
from zoneinfo import ZoneInfo


def utcnow() -> datetime:
    return datetime.now(UTC)


def as_utc(value: datetime) -> datetime:
    """SQLite hands back naive datetimes; everything kefu stores is UTC."""
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def wall_clock(value: datetime, tz: str, fmt: str = "%Y-%m-%d %H:%M") -> str:
    """A stored UTC time as the desk's wall-clock time in zone ``tz`` (business logic
    runs in Asia/Shanghai by default; ``KEFU_TIME_ZONE``)."""
    return as_utc(value).astimezone(_zone(tz)).strftime(fmt)


@cache
def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)
