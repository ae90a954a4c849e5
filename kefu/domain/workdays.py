"""Working days in mainland China: weekends, public holidays, and the make-up working
days (调休) that turn a Saturday or Sunday into a workday. Email promises "1–3 working
days", so the date told to a customer must skip the National Day week and count the
Sunday before it.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import chinese_calendar

BUSINESS_ZONE = ZoneInfo("Asia/Shanghai")


def is_working_day(day: date) -> bool:
    try:
        return bool(chinese_calendar.is_workday(day))
    except NotImplementedError:
        # Beyond the years the calendar knows (the State Council publishes each year's
        # schedule in November): weekends only.
        return day.weekday() < 5


def add_working_days(start: date, days: int) -> date:
    """The date ``days`` working days after ``start`` (``start`` itself not counted)."""
    current = start
    remaining = days
    while remaining > 0:
        current += timedelta(days=1)
        if is_working_day(current):
            remaining -= 1
    return current


def reply_due(received_at: datetime, working_days: int = 3) -> date:
    """The promised answer date for mail received at ``received_at`` (any zone)."""
    local = received_at.astimezone(BUSINESS_ZONE).date()
    return add_working_days(local, working_days)
