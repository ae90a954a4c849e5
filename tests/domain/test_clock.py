"""Stored times are UTC; the desk reads them on its own wall clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from kefu.domain.clock import as_utc, wall_clock


def test_a_naive_value_from_sqlite_is_read_as_utc() -> None:
    aware = datetime(2026, 12, 7, 16, 30, tzinfo=UTC)
    assert as_utc(aware.replace(tzinfo=None)) == aware


def test_wall_clock_shows_shanghai_time_across_midnight() -> None:
    stored = datetime(2026, 12, 7, 16, 30, tzinfo=UTC)
    assert wall_clock(stored, "Asia/Shanghai") == "2026-12-08 00:30"
    assert wall_clock(stored.replace(tzinfo=None), "Asia/Shanghai") == "2026-12-08 00:30"


def test_wall_clock_converts_from_any_offset_and_takes_a_format() -> None:
    stored = datetime(2026, 12, 7, 9, 0, tzinfo=timezone(timedelta(hours=-5)))
    assert wall_clock(stored, "UTC", "%H:%M") == "14:00"
    assert wall_clock(stored, "Europe/London", "%d %H:%M") == "07 14:00"
