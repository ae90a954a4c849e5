"""SQLAlchemy tables, one module per noun. Importing this package registers them all."""

from kefu.models.agents import Agent, AgentSession, AgentTeam, ApiToken, Team
from kefu.models.articles import Article, ArticleFeedback, ArticleRevision, HelpSearch
from kefu.models.base import Base
from kefu.models.contacts import Contact
from kefu.models.events import Event
from kefu.models.files import Attachment
from kefu.models.idempotency import IdempotencyRecord
from kefu.models.inboxes import Inbox
from kefu.models.macros import Macro
from kefu.models.messages import Message
from kefu.models.official_channels import OfficialChannel, VerifyLookup
from kefu.models.outbox import Job
from kefu.models.ratings import Rating
from kefu.models.saved_views import SavedView
from kefu.models.tickets import Ticket, TicketTag
from kefu.models.webhooks import Webhook

__all__ = [
    "Agent",
    "AgentSession",
    "AgentTeam",
    "ApiToken",
    "Article",
    "ArticleFeedback",
    "ArticleRevision",
    "Attachment",
    "Base",
    "Contact",
    "Event",
    "HelpSearch",
    "IdempotencyRecord",
    "Inbox",
    "Job",
    "Macro",
    "Message",
    "OfficialChannel",
    "Rating",
    "SavedView",
    "Team",
    "Ticket",
    "TicketTag",
    "VerifyLookup",
    "Webhook",
]
