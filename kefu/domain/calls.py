"""Phone calls logged on a ticket: what a call record holds and how its duration is
typed and shown. Pure rules; ``actions.calls`` stores a call as a message.
"""

from __future__ import annotations

import re
from enum import StrEnum

from kefu.domain.errors import ValidationFailed

# A call longer than a day is a typo, not a call.
MAX_CALL_SECONDS = 24 * 3600


class CallDirection(StrEnum):
    INBOUND = "inbound"  # 来电
    OUTBOUND = "outbound"  # 去电 (a callback, a follow-up)


class CallOutcome(StrEnum):
    ANSWERED = "answered"  # 已接通
    NO_ANSWER = "no_answer"  # 未接通
    VOICEMAIL = "voicemail"  # 留言


_CLOCK = re.compile(r"^(?:(\d{1,2}):)?(\d{1,3}):([0-5]\d)$")


def parse_duration(text: str) -> int:
    """Seconds from what an agent types: ``""`` (0), ``566``, ``9:26`` or ``1:02:03``."""
    text = text.strip().replace("：", ":")
    if not text:
        return 0
    if text.isascii() and text.isdigit():
        seconds = int(text)
    else:
        match = _CLOCK.match(text)
        if match is None:
            raise ValidationFailed("duration must be seconds or m:ss", field="duration")
        hours, minutes, secs = (int(g) if g else 0 for g in match.groups())
        seconds = hours * 3600 + minutes * 60 + secs
    if seconds > MAX_CALL_SECONDS:
        raise ValidationFailed("duration must be seconds or m:ss", field="duration")
    return seconds


def format_duration(seconds: int) -> str:
    """``566`` → ``9:26``; an hour or more → ``1:02:03``."""
    seconds = max(0, int(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}:{minutes:02d}:{secs:02d}"
    return f"{minutes}:{secs:02d}"
