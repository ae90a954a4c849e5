"""Who may see and do what. Pure rules; ``queries.access_*`` apply them to rows.

- An agent sees tickets of their teams, tickets assigned to them, and tickets in no
  team (the general queue).
- A supervisor sees the same tickets as an agent (plus reports).
- An admin sees everything.
- A contact sees only their own tickets, and never an internal note.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class Role(StrEnum):
    AGENT = "agent"
    SUPERVISOR = "supervisor"
    ADMIN = "admin"


class ActorKind(StrEnum):
    AGENT = "agent"
    CONTACT = "contact"
    SYSTEM = "system"


@dataclass(frozen=True, slots=True)
class Actor:
    kind: ActorKind
    id: int | None
    role: Role | None = None
    team_ids: frozenset[int] = field(default_factory=frozenset)
    can_view_sensitive: bool = False

    @property
    def is_agent(self) -> bool:
        return self.kind is ActorKind.AGENT

    @property
    def is_contact(self) -> bool:
        return self.kind is ActorKind.CONTACT

    @property
    def is_admin(self) -> bool:
        return self.kind is ActorKind.AGENT and self.role is Role.ADMIN

    @property
    def is_supervisor_or_admin(self) -> bool:
        return self.kind is ActorKind.AGENT and self.role in (Role.SUPERVISOR, Role.ADMIN)


SYSTEM = Actor(kind=ActorKind.SYSTEM, id=None)


def can_see_ticket(
    actor: Actor, *, team_id: int | None, assignee_id: int | None, contact_id: int | None
) -> bool:
    if actor.kind is ActorKind.SYSTEM:
        return True
    if actor.kind is ActorKind.CONTACT:
        # A contact's identity is their id; nothing else grants access.
        return contact_id is not None and contact_id == actor.id
    if actor.role is Role.ADMIN:
        return True
    if assignee_id is not None and assignee_id == actor.id:
        return True
    if team_id is None:
        return True
    return team_id in actor.team_ids


def can_see_message(actor: Actor, *, is_internal: bool) -> bool:
    """Internal notes are for agents only."""
    return not (is_internal and actor.kind is ActorKind.CONTACT)


def can_write_internal_note(actor: Actor) -> bool:
    return actor.kind in (ActorKind.AGENT, ActorKind.SYSTEM)


def can_manage_ticket(actor: Actor) -> bool:
    """Status, priority, assignment, tags, merge: agents and the system, never contacts."""
    return actor.kind in (ActorKind.AGENT, ActorKind.SYSTEM)


def can_assign_to_team(actor: Actor, team_id: int | None) -> bool:
    """Any agent may hand a ticket to any team (that is how escalation works); seeing
    the ticket in the first place is checked before this."""
    return actor.kind in (ActorKind.AGENT, ActorKind.SYSTEM)


def can_administer(actor: Actor) -> bool:
    return actor.is_admin


def can_manage_macros(actor: Actor) -> bool:
    """Canned replies speak for the whole desk: supervisors and admins keep them."""
    return actor.kind is ActorKind.SYSTEM or actor.is_supervisor_or_admin
