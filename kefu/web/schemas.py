"""Request and response shapes of the REST API (``XCreate``/``XUpdate``/``XPublic``).

Strings are bounded here so oversized input fails validation with a 422 rather than
reaching the core.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from kefu.actions.guard import display_body, display_email, display_phone, display_text
from kefu.domain.access import Role
from kefu.domain.helpcenter import ArticleStatus
from kefu.domain.tickets import Channel, Priority, TicketKind, TicketStatus
from kefu.domain.verify import ChannelKind, Verdict
from kefu.models import (
    Agent,
    ApiToken,
    Article,
    ArticleRevision,
    Attachment,
    Contact,
    Event,
    Message,
    OfficialChannel,
    Team,
    Ticket,
    Webhook,
)

# Row ids are 32-bit signed integers in PostgreSQL; larger values must fail validation.
MAX_ID = 2**31 - 1

Short = Annotated[str, StringConstraints(max_length=200)]
Tag = Annotated[str, StringConstraints(min_length=1, max_length=64)]
Body = Annotated[str, StringConstraints(max_length=100_000)]
ClientId = Annotated[str, StringConstraints(min_length=1, max_length=64)]


def _strip_nul(value: Any) -> Any:
    if isinstance(value, str):
        return value.replace("\x00", "")
    if isinstance(value, list):
        return [_strip_nul(v) for v in value]
    if isinstance(value, dict):
        return {k: _strip_nul(v) for k, v in value.items()}
    return value


class Strict(BaseModel):
    """Request bodies: unknown fields refused, NUL characters dropped (PostgreSQL text
    cannot store them and no client means them)."""

    model_config = ConfigDict(extra="forbid")

    @model_validator(mode="before")
    @classmethod
    def _no_nul(cls, data: Any) -> Any:
        return _strip_nul(data)


class ContactRef(Strict):
    email: Short | None = None
    exchange_uid: Annotated[str, StringConstraints(max_length=32)] | None = None
    phone: Annotated[str, StringConstraints(max_length=32)] | None = None
    name: Short | None = None


class ExchangeFieldsIn(Strict):
    exchange_uid: Annotated[str, StringConstraints(max_length=32)] | None = None
    txid: Annotated[str, StringConstraints(max_length=130)] | None = None
    order_id: Annotated[str, StringConstraints(max_length=64)] | None = None
    coin: Annotated[str, StringConstraints(max_length=16)] | None = None
    network: Annotated[str, StringConstraints(max_length=24)] | None = None
    amount: Annotated[str, StringConstraints(max_length=48)] | None = None


class TicketCreate(ExchangeFieldsIn):
    subject: Annotated[str, StringConstraints(min_length=1, max_length=300)]
    body: Body = ""
    kind: TicketKind = TicketKind.QUESTION
    channel: Channel = Channel.API
    priority: Priority | None = None
    team_id: int | None = Field(default=None, ge=1, le=MAX_ID)
    assignee_id: int | None = Field(default=None, ge=1, le=MAX_ID)
    contact_id: int | None = Field(default=None, ge=1, le=MAX_ID)
    contact: ContactRef | None = None
    tags: list[Tag] = Field(default_factory=list, max_length=30)
    attachment_ids: list[Annotated[int, Field(ge=1, le=MAX_ID)]] = Field(
        default_factory=list, max_length=20
    )


class TicketUpdate(ExchangeFieldsIn):
    subject: Annotated[str, StringConstraints(min_length=1, max_length=300)] | None = None
    kind: TicketKind | None = None
    status: TicketStatus | None = None
    priority: Priority | None = None
    team_id: int | None = Field(default=None, ge=1, le=MAX_ID)
    assignee_id: int | None = Field(default=None, ge=1, le=MAX_ID)
    add_tags: list[Tag] = Field(default_factory=list, max_length=30)
    remove_tags: list[Tag] = Field(default_factory=list, max_length=30)


class TicketPublic(BaseModel):
    number: str
    subject: str
    kind: TicketKind
    channel: Channel
    status: TicketStatus
    priority: Priority
    team_id: int | None
    assignee_id: int | None
    contact_id: int | None
    tags: list[str]
    exchange_uid: str | None
    txid: str | None
    order_id: str | None
    coin: str | None
    network: str | None
    amount: str | None
    message_count: int
    merged_into: str | None = None
    created_at: datetime
    updated_at: datetime
    first_response_at: datetime | None
    solved_at: datetime | None

    @classmethod
    def of(
        cls, t: Ticket, merged_into: str | None = None, *, mask_pii: bool = False
    ) -> TicketPublic:
        """``mask_pii``: the subject with id cards, bank cards, phones and emails partly
        masked, as in message bodies (the agent view unless an audited reveal)."""
        return cls(
            number=t.number,
            subject=display_text(t.subject) if mask_pii else t.subject,
            kind=t.kind,
            channel=t.channel,
            status=t.status,
            priority=t.priority,
            team_id=t.team_id,
            assignee_id=t.assignee_id,
            contact_id=t.contact_id,
            tags=t.tags,
            exchange_uid=t.exchange_uid,
            txid=t.txid,
            order_id=t.order_id,
            coin=t.coin,
            network=t.network,
            amount=t.amount,
            message_count=t.message_count,
            merged_into=merged_into,
            created_at=t.created_at,
            updated_at=t.updated_at,
            first_response_at=t.first_response_at,
            solved_at=t.solved_at,
        )


class TicketList(BaseModel):
    items: list[TicketPublic]
    next: str | None


class MergeRequest(Strict):
    into: Annotated[str, StringConstraints(min_length=1, max_length=16)]


class MessageCreate(Strict):
    body: Body = ""
    is_internal: bool = False
    attachment_ids: list[Annotated[int, Field(ge=1, le=MAX_ID)]] = Field(
        default_factory=list, max_length=20
    )
    client_msg_id: ClientId | None = None


class AuthorPublic(BaseModel):
    type: str
    id: int | None
    name: str | None = None


class AttachmentPublic(BaseModel):
    id: int
    filename: str
    content_type: str
    size: int
    sha256: str
    url: str

    @classmethod
    def of(cls, a: Attachment) -> AttachmentPublic:
        return cls(
            id=a.id,
            filename=a.filename,
            content_type=a.content_type,
            size=a.size,
            sha256=a.sha256,
            url=f"/api/v1/attachments/{a.id}",
        )


class MessagePublic(BaseModel):
    id: int
    seq: int
    body: str
    body_html: str | None
    author: AuthorPublic
    is_internal: bool
    channel: Channel
    direction: str
    client_msg_id: str | None
    delivery_status: str | None
    created_at: datetime
    attachments: list[AttachmentPublic]

    @classmethod
    def of(
        cls, m: Message, *, mask_pii: bool = False, author_name: str | None = None
    ) -> MessagePublic:
        """``mask_pii``: show id cards, bank cards, phones and emails partly masked (the
        agent view unless an audited reveal); the HTML part is then left out."""
        author_id = m.agent_id if m.author_type == "agent" else m.contact_id
        return cls(
            id=m.id,
            seq=m.seq,
            body=display_body(m) if mask_pii else m.body,
            body_html=None if mask_pii else m.body_html,
            author=AuthorPublic(type=m.author_type, id=author_id, name=author_name),
            is_internal=m.is_internal,
            channel=m.channel,
            direction=m.direction,
            client_msg_id=m.client_msg_id,
            delivery_status=m.delivery_status,
            created_at=m.created_at,
            attachments=[AttachmentPublic.of(a) for a in m.attachments],
        )


class MessageList(BaseModel):
    items: list[MessagePublic]


class EventPublic(BaseModel):
    id: int
    kind: str
    actor_type: str
    actor_id: int | None
    data: dict[str, Any]
    created_at: datetime

    @classmethod
    def of(cls, e: Event) -> EventPublic:
        return cls(
            id=e.id,
            kind=e.kind,
            actor_type=e.actor_type,
            actor_id=e.actor_id,
            data=e.data,
            created_at=e.created_at,
        )


class EventList(BaseModel):
    items: list[EventPublic]


class ContactCreate(Strict):
    email: Short | None = None
    phone: Annotated[str, StringConstraints(max_length=32)] | None = None
    exchange_uid: Annotated[str, StringConstraints(max_length=32)] | None = None
    name: Short | None = None
    locale: Annotated[str, StringConstraints(max_length=16)] | None = None
    verification_level: int | None = Field(default=None, ge=0, le=3)


class ContactUpdate(ContactCreate):
    pass


class ContactPublic(BaseModel):
    id: int
    email: str | None
    phone: str | None
    exchange_uid: str | None
    name: str
    locale: str
    verification_level: int
    created_at: datetime

    @classmethod
    def of(cls, c: Contact, *, mask_pii: bool = False) -> ContactPublic:
        """``mask_pii``: phone and email partly masked, PII in the name too (the agent
        view unless an audited reveal); the contact themself sees it all."""
        return cls(
            id=c.id,
            email=display_email(c.email) if mask_pii else c.email,
            phone=display_phone(c.phone) if mask_pii else c.phone,
            exchange_uid=c.exchange_uid,
            name=display_text(c.name) if mask_pii else c.name,
            locale=c.locale,
            verification_level=c.verification_level,
            created_at=c.created_at,
        )


class ContactList(BaseModel):
    items: list[ContactPublic]
    next: str | None


class AntiPhishingCode(Strict):
    code: Annotated[str, StringConstraints(min_length=4, max_length=20)]


class TeamCreate(Strict):
    slug: Annotated[str, StringConstraints(min_length=1, max_length=64)]
    name: Short


class TeamPublic(BaseModel):
    id: int
    slug: str
    name: str

    @classmethod
    def of(cls, t: Team) -> TeamPublic:
        return cls(id=t.id, slug=t.slug, name=t.name)


class TeamList(BaseModel):
    items: list[TeamPublic]


class AgentCreate(Strict):
    email: Short
    name: Short
    role: Role = Role.AGENT
    password: Annotated[str, StringConstraints(max_length=1024)] | None = None
    team_ids: list[Annotated[int, Field(ge=1, le=MAX_ID)]] = Field(
        default_factory=list, max_length=50
    )
    locale: Annotated[str, StringConstraints(pattern=r"^(zh-CN|en)$")] = "zh-CN"
    max_chats: int = Field(default=5, ge=0, le=50)


class AgentUpdate(Strict):
    name: Short | None = None
    role: Role | None = None
    team_ids: list[Annotated[int, Field(ge=1, le=MAX_ID)]] | None = Field(
        default=None, max_length=50
    )
    is_active: bool | None = None
    max_chats: int | None = Field(default=None, ge=0, le=50)
    can_view_sensitive: bool | None = None


class AgentPublic(BaseModel):
    id: int
    email: str
    name: str
    role: Role
    team_ids: list[int]
    is_active: bool
    has_totp: bool
    locale: str
    max_chats: int

    @classmethod
    def of(cls, a: Agent) -> AgentPublic:
        return cls(
            id=a.id,
            email=a.email,
            name=a.name,
            role=a.role,
            team_ids=sorted(a.team_ids),
            is_active=a.is_active,
            has_totp=a.totp_secret is not None,
            locale=a.locale,
            max_chats=a.max_chats,
        )


class AgentList(BaseModel):
    items: list[AgentPublic]


class TokenCreate(Strict):
    name: Short
    scopes: list[Annotated[str, StringConstraints(max_length=16)]] = Field(
        default_factory=lambda: ["read", "write"], max_length=3
    )
    expires_at: datetime | None = None


class TokenPublic(BaseModel):
    id: int
    name: str
    prefix: str
    scopes: list[str]
    created_at: datetime
    last_used_at: datetime | None
    expires_at: datetime | None
    revoked: bool

    @classmethod
    def of(cls, t: ApiToken) -> TokenPublic:
        return cls(
            id=t.id,
            name=t.name,
            prefix=t.prefix,
            scopes=t.scopes,
            created_at=t.created_at,
            last_used_at=t.last_used_at,
            expires_at=t.expires_at,
            revoked=t.revoked_at is not None,
        )


class TokenCreated(TokenPublic):
    token: str


class TokenList(BaseModel):
    items: list[TokenPublic]


class LoginRequest(Strict):
    email: Short
    password: Annotated[str, StringConstraints(max_length=1024)]
    totp: Annotated[str, StringConstraints(max_length=12)] | None = None


class LoginResponse(BaseModel):
    agent: AgentPublic
    csrf_token: str


class WebhookCreate(Strict):
    url: Annotated[str, StringConstraints(min_length=8, max_length=2000, pattern=r"^https?://")]
    events: list[Annotated[str, StringConstraints(max_length=64)]] = Field(
        default_factory=list, max_length=50
    )


class WebhookPublic(BaseModel):
    id: int
    url: str
    events: list[str]
    is_active: bool

    @classmethod
    def of(cls, w: Webhook) -> WebhookPublic:
        return cls(id=w.id, url=w.url, events=w.events, is_active=w.is_active)


class WebhookCreated(WebhookPublic):
    secret: str


class WebhookList(BaseModel):
    items: list[WebhookPublic]


class MePublic(BaseModel):
    kind: str
    agent: AgentPublic | None = None
    contact: ContactPublic | None = None


class OfficialChannelCreate(Strict):
    kind: ChannelKind
    value: Annotated[str, StringConstraints(min_length=1, max_length=320)]
    label: Short = ""


class OfficialChannelPublic(BaseModel):
    id: int
    kind: ChannelKind
    value: str
    label: str

    @classmethod
    def of(cls, c: OfficialChannel) -> OfficialChannelPublic:
        return cls(id=c.id, kind=c.kind, value=c.value, label=c.label)


class OfficialChannelList(BaseModel):
    items: list[OfficialChannelPublic]


class VerifyResponse(BaseModel):
    verdict: Verdict
    kind: ChannelKind | None
    matched: str | None
    reason: str


class SearchHit(BaseModel):
    id: str
    title: str
    score: float
    url: str


class SearchResults(BaseModel):
    results: list[SearchHit]


class ArticleSummary(BaseModel):
    id: str
    title: str
    category: str
    locale: str
    status: ArticleStatus
    url: str
    updated_at: datetime

    @classmethod
    def of(cls, a: Article) -> ArticleSummary:
        return cls(
            id=a.id,
            title=a.title,
            category=a.category,
            locale=a.locale,
            status=a.status,
            url=f"/help/articles/{a.id}",
            updated_at=a.updated_at,
        )


class ArticlePublic(ArticleSummary):
    body: str
    body_html: str
    tags: list[str]
    related_ids: list[str]
    helpful_count: int
    unhelpful_count: int
    revision: int
    # The same article in other languages: locale → article id.
    translations: dict[str, str]

    @classmethod
    def of(cls, a: Article, translations: dict[str, str] | None = None) -> ArticlePublic:
        return cls(
            **ArticleSummary.of(a).model_dump(),
            translations=translations or {},
            body=a.body_md,
            body_html=a.body_html,
            tags=a.tags,
            related_ids=a.related_ids,
            helpful_count=a.helpful_count,
            unhelpful_count=a.unhelpful_count,
            revision=a.revision,
        )


class ArticleList(BaseModel):
    items: list[ArticleSummary]


class ArticleIn(Strict):
    title: Annotated[str, StringConstraints(min_length=1, max_length=300)]
    body: Annotated[str, StringConstraints(max_length=100_000)] = ""
    category: Annotated[str, StringConstraints(max_length=32)] | None = None
    locale: Annotated[str, StringConstraints(pattern=r"^(zh-CN|en)$")] = "zh-CN"
    status: ArticleStatus = ArticleStatus.DRAFT
    position: int | None = Field(default=None, ge=0, le=100_000)
    tags: list[Annotated[str, StringConstraints(max_length=40)]] = Field(
        default_factory=list, max_length=20
    )
    related_ids: list[Annotated[str, StringConstraints(max_length=64)]] = Field(
        default_factory=list, max_length=10
    )
    translation_of: Annotated[str, StringConstraints(min_length=1, max_length=64)] | None = Field(
        default=None,
        description="The id of the article this one translates; joins its group of "
        "languages (one article per language).",
    )


class FeedbackIn(Strict):
    helpful: bool
    comment: Annotated[str, StringConstraints(max_length=1000)] = ""


class RevisionPublic(BaseModel):
    revision: int
    title: str
    body: str
    status: ArticleStatus
    edited_by_agent_id: int | None
    created_at: datetime

    @classmethod
    def of(cls, r: ArticleRevision) -> RevisionPublic:
        return cls(
            revision=r.revision,
            title=r.title,
            body=r.body_md,
            status=r.status,
            edited_by_agent_id=r.edited_by_agent_id,
            created_at=r.created_at,
        )


class RevisionList(BaseModel):
    items: list[RevisionPublic]


class SearchGapPublic(BaseModel):
    query: str
    count: int
    last_at: datetime


class HelpAnalytics(BaseModel):
    searches_without_results: list[SearchGapPublic]
    unhelpful_articles: list[ArticleSummary]


class DlpScanIn(Strict):
    text: Annotated[str, StringConstraints(max_length=100_000)]
    known_txids: list[Annotated[str, StringConstraints(max_length=130)]] = Field(
        default_factory=list, max_length=20
    )


class DlpFinding(BaseModel):
    kind: str
    start: int
    end: int


class DlpScanOut(BaseModel):
    findings: list[DlpFinding]
    masked: str
