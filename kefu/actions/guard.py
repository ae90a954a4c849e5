"""The secret guard on the write path: what customers paste is screened before anything
is stored, indexed, published or sent on, and agents' replies are linted.

Policy (docs/security.md):
- Secrets (seed phrase, private key, password, one-time code) are replaced by a marker
  such as ``[已屏蔽：助记词]`` before storage and never kept, from any author.
- The contact is warned in their channel and the ticket gets an event so an agent can
  advise (freeze, reset 2FA). The event says which kinds were found, never the values.
- PII (id card, bank card, phone, email) is stored, shown masked to agents by default
  (message bodies, ticket subjects, contacts' phones and emails); an agent with the
  "view sensitive data" permission may reveal it, and every reveal is an audit event.
- An agent reply that asks for a secret or names an off-platform contact is refused.
"""

from __future__ import annotations

import html as html_module
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache

from sqlalchemy import select
from sqlalchemy.orm import Session

from kefu import events
from kefu.actions.history import record_event
from kefu.domain import dlp
from kefu.domain.access import Actor
from kefu.domain.errors import PermissionDenied, ValidationFailed
from kefu.domain.verify import ChannelKind
from kefu.models import Message, OfficialChannel, Ticket

MASKED_WARNING = (
    "系统提示：您的消息中含有助记词、私钥、密码或验证码，已自动屏蔽，未被保存。"
    "请勿向任何人透露这些信息——官方客服绝不会索要。如担心资产安全，请立即冻结账户并修改密码。"
)


@dataclass(frozen=True, slots=True)
class Screened:
    text: str
    secret_kinds: tuple[str, ...]
    # ``display_text(text)``, when the screen's own scan already gave it (no secret and
    # no known TxID, so its findings are the display scan's): the chat's hot path
    # scans each message once.
    display: str | None = None


def screen_inbound(text: str, *, known_txids: Iterable[str] = ()) -> Screened:
    """Mask the secrets in ``text``; report which kinds were found."""
    if not text:
        return Screened(text, (), text)
    txids = [t for t in known_txids if t]
    findings = dlp.scan(text, known_txids=txids)
    if not any(f.kind in dlp.SECRET_KINDS for f in findings):
        if txids:
            return Screened(text, ())
        return Screened(text, (), dlp.mask_for_display(text, findings) if findings else text)
    masked, _ = dlp.mask_secrets(text, findings)
    kinds = tuple(sorted({f.kind.value for f in findings if f.kind in dlp.SECRET_KINDS}))
    return Screened(masked, kinds)


_TAG = re.compile(r"<[^>]*>")


def html_text(html: str) -> str:
    """The readable text of an HTML fragment, for scanning (not for display)."""
    return html_module.unescape(_TAG.sub(" ", html))


@lru_cache(maxsize=8192)
def display_text(text: str) -> str:
    """``text`` as an agent sees it by default: PII partly masked.

    Cached by the text itself (the result depends on nothing else): the live console
    re-renders a ticket's timeline after every new message, and scanning 500 messages
    again each time cost more than the rest of the page.
    """
    if not text:
        return text
    findings = dlp.scan(text)
    if not findings:
        return text
    return dlp.mask_for_display(text, findings)


def stored_display(body: str, shown: str | None = None) -> str:
    """What ``Message.display_body`` holds for ``body``: its display text (``shown``, if
    the screen already worked it out), or "" when that is the body itself (most
    messages hold no PII; no need to store them twice)."""
    if shown is None:
        shown = display_text(body)
    return "" if shown == body else shown


def display_body(message: Message) -> str:
    """A message's body as an agent sees it by default, from the value stored with it
    (``display_text`` of the body, worked out at write), or worked out now for a row
    stored without one."""
    stored = message.display_body
    if stored is None:
        return display_text(message.body)
    return stored or message.body


def display_phone(phone: str | None) -> str | None:
    """A contact's phone as an agent sees it by default: 138****8000."""
    return dlp.mask_pii_value(dlp.FindingKind.PHONE, phone) if phone else phone


def display_email(email: str | None) -> str | None:
    """A contact's email as an agent sees it by default: l***@example.com."""
    return dlp.mask_pii_value(dlp.FindingKind.EMAIL, email) if email else email


def check_can_reveal(actor: Actor) -> None:
    """Unmasked PII is for agents holding the "view sensitive data" permission."""
    # Contacts see their own data as written and nobody else's, so never "reveal".
    if not actor.is_agent:
        raise PermissionDenied("viewing sensitive data needs the permission")
    # An admin grants the permission per agent (AgentUpdate.can_view_sensitive).
    if not actor.can_view_sensitive:
        raise PermissionDenied("viewing sensitive data needs the permission")


def do_record_sensitive_reveal(
    session: Session,
    actor: Actor,
    *,
    fields: Sequence[str],
    ticket: Ticket | None = None,
    contact_ids: Sequence[int] = (),
) -> None:
    """Check the permission and audit an agent's look at unmasked ticket or contact
    fields (who, when, which fields of which rows); message reveals are
    ``actions.messages.do_record_reveal``. The event holds ids, never the values."""
    check_can_reveal(actor)
    data: dict[str, object] = {"fields": list(fields)}
    if contact_ids:
        data["contact_ids"] = list(contact_ids)[:500]
    record_event(
        session, actor, events.SENSITIVE_REVEALED, ticket=ticket, data=data, is_internal=True
    )


def _official_values(session: Session) -> list[str]:
    rows = session.execute(
        select(OfficialChannel.kind, OfficialChannel.value).where(
            OfficialChannel.kind.in_(
                [
                    ChannelKind.TELEGRAM,
                    ChannelKind.PHONE,
                    ChannelKind.WECHAT,
                    ChannelKind.X,
                    ChannelKind.DOMAIN,
                ]
            )
        )
    ).all()
    out: list[str] = []
    for kind, value in rows:
        out.append(value)
        if kind in (ChannelKind.TELEGRAM, ChannelKind.X):
            out.append("@" + value)
    return out


def check_agent_reply(session: Session, text: str) -> None:
    problems: Sequence[dlp.OutboundProblem] = dlp.lint_outbound(
        text, official=_official_values(session)
    )
    if problems:
        first = problems[0]
        raise ValidationFailed(
            "reply blocked: it asks for a secret or names an off-platform contact",
            field="body",
            problem=first.code,
            kind=first.kind,
            reason=first.message,
            excerpt=text[first.start : first.end][:80],
        )
