"""Live-chat rules, pure: topics, the stolen-account fast lane, routing and the queue.

A chat is a ticket on the ``chat`` channel with a ``chat_state``:
``bot`` (answered by help-center suggestions) → ``queued`` (waiting for a person) →
``active`` (an agent has it) → ``ended``; or ``left_message`` when the contact gives up
waiting, or nobody is online, and the chat continues as a ticket answered by email.
See docs/chat-protocol.md.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

from kefu.domain.tickets import TicketKind


class ChatState(StrEnum):
    BOT = "bot"
    QUEUED = "queued"
    ACTIVE = "active"
    LEFT_MESSAGE = "left_message"
    ENDED = "ended"


# States in which the chat is still live on a socket.
LIVE_STATES = frozenset({ChatState.BOT, ChatState.QUEUED, ChatState.ACTIVE})


class Presence(StrEnum):
    ONLINE = "online"
    AWAY = "away"
    OFFLINE = "offline"


class ChatTopic(StrEnum):
    DEPOSIT_WITHDRAWAL = "deposit_withdrawal"
    ACCOUNT_SECURITY = "account_security"
    TRADING = "trading"
    KYC = "kyc"
    OTHER = "other"


@dataclass(frozen=True, slots=True)
class TopicRule:
    label_zh: str
    label_en: str
    team_slug: str
    kind: TicketKind
    # Account-sensitive topics need a contact the exchange has identified (its JWT).
    needs_identity: bool


TOPICS: dict[ChatTopic, TopicRule] = {
    ChatTopic.DEPOSIT_WITHDRAWAL: TopicRule(
        "充值提现", "Deposits & withdrawals", "payments", TicketKind.QUESTION, True
    ),
    ChatTopic.ACCOUNT_SECURITY: TopicRule(
        "账户安全/被盗", "Account security / stolen", "security", TicketKind.ACCOUNT_SECURITY, True
    ),
    ChatTopic.TRADING: TopicRule("交易", "Trading", "general", TicketKind.QUESTION, False),
    ChatTopic.KYC: TopicRule(
        "KYC 认证", "Identity verification", "general", TicketKind.QUESTION, True
    ),
    ChatTopic.OTHER: TopicRule("其他", "Other", "general", TicketKind.QUESTION, False),
}

# Words a customer uses when their account or assets were taken. Matched on the text
# with spaces removed and lower-cased, so "被 盗" and "HACKED" count too.
_TAKEOVER_ZH = (
    "被盗",
    "盗号",
    "被黑",
    "资产丢失",
    "资金丢失",
    "币丢了",
    "币没了",
    "钱没了",
    "账户异常",
    "账号异常",
    "被转走",
    "被提走",
    "被人登录",
    "异地登录",
    "不是我操作",
    "非本人操作",
    "未授权",
)
_TAKEOVER_EN = re.compile(
    r"\b(stolen|hacked|compromised|unauthori[sz]ed\s+(withdrawal|login|access|transfer)"
    r"|someone\s+(logged|took|stole|withdrew)|account\s+takeover|drained)\b",
    re.IGNORECASE,
)
# "How do I keep my account from being stolen" is a question, not an emergency.
_PREVENTIVE = ("如何防止", "怎么防止", "怎样防止", "防止被盗", "how to prevent", "how do i prevent")

# Words that ask for a person rather than the bot.
_HUMAN_REQUEST = ("转人工", "人工客服", "人工服务", "找人工", "真人", "客服人员")
_HUMAN_REQUEST_EN = re.compile(r"\b(human|agent|real person|operator|representative)\b", re.I)


def is_account_takeover(text: str) -> bool:
    """Whether a message reports a stolen account or lost assets: the fast lane."""
    squashed = "".join(text.split()).lower()
    if any(p in squashed or p in text.lower() for p in _PREVENTIVE):
        return False
    return any(w in squashed for w in _TAKEOVER_ZH) or bool(_TAKEOVER_EN.search(text))


def asks_for_human(text: str) -> bool:
    squashed = "".join(text.split())
    return any(w in squashed for w in _HUMAN_REQUEST) or bool(_HUMAN_REQUEST_EN.search(text))


@dataclass(frozen=True, slots=True)
class AgentLoad:
    """An agent as routing sees them."""

    agent_id: int
    presence: Presence
    capacity: int
    active_chats: int
    team_ids: frozenset[int]
    # Lower is longer idle: ties go to whoever has waited longest for a chat.
    last_assigned_rank: float = 0.0

    @property
    def free(self) -> int:
        return max(0, self.capacity - self.active_chats)


def pick_agent(agents: Sequence[AgentLoad], team_id: int | None) -> int | None:
    """The agent a chat for ``team_id`` goes to: online, with a free slot, on the team
    (any team when the chat has none), least loaded by share of capacity, then longest
    idle. ``None`` when nobody can take it: the chat waits in the queue."""
    candidates = [
        a
        for a in agents
        if a.presence is Presence.ONLINE
        and a.free > 0
        and (team_id is None or team_id in a.team_ids)
    ]
    if not candidates:
        return None
    best = min(
        candidates,
        key=lambda a: (a.active_chats / a.capacity, a.last_assigned_rank, a.agent_id),
    )
    return best.agent_id


# Without history to go on, a chat is assumed to take this long.
DEFAULT_HANDLE_SECONDS = 300.0


def estimate_wait_seconds(
    position: int, agents_online: int, capacity_online: int, avg_handle_seconds: float
) -> int | None:
    """Expected wait for the chat at ``position`` (1 = next). Each online slot frees up
    once per average chat, so the queue drains at ``capacity / handle`` chats a second.
    ``None`` when nobody is online: there is no honest estimate then."""
    if position <= 0:
        return 0
    if agents_online <= 0 or capacity_online <= 0:
        return None
    handle = avg_handle_seconds if avg_handle_seconds > 0 else DEFAULT_HANDLE_SECONDS
    return math.ceil(position * handle / capacity_online)
