"""Who may see what: every rule in domain.access, including the ways to break it."""

from __future__ import annotations

from kefu.domain.access import (
    SYSTEM,
    Actor,
    ActorKind,
    Role,
    can_administer,
    can_assign_to_team,
    can_manage_ticket,
    can_see_message,
    can_see_ticket,
    can_write_internal_note,
)

AGENT = Actor(kind=ActorKind.AGENT, id=1, role=Role.AGENT, team_ids=frozenset({10}))
SUPERVISOR = Actor(kind=ActorKind.AGENT, id=2, role=Role.SUPERVISOR, team_ids=frozenset({10}))
ADMIN = Actor(kind=ActorKind.AGENT, id=3, role=Role.ADMIN)
CONTACT = Actor(kind=ActorKind.CONTACT, id=7)


def see(actor: Actor, team: int | None, assignee: int | None, contact: int | None) -> bool:
    return can_see_ticket(actor, team_id=team, assignee_id=assignee, contact_id=contact)


def test_agent_sees_own_teams_general_queue_and_own_assignments() -> None:
    assert see(AGENT, 10, None, 7)
    assert see(AGENT, None, None, 7)
    assert see(AGENT, 99, 1, 7)
    assert not see(AGENT, 99, None, 7)
    assert not see(AGENT, 99, 2, 7)


def test_supervisor_sees_like_an_agent() -> None:
    assert see(SUPERVISOR, 10, None, None)
    assert not see(SUPERVISOR, 99, None, None)


def test_admin_and_system_see_everything() -> None:
    assert see(ADMIN, 99, None, None)
    assert see(SYSTEM, 99, None, None)


def test_contact_sees_only_own_tickets() -> None:
    assert see(CONTACT, 10, None, 7)
    assert not see(CONTACT, 10, None, 8)
    assert not see(CONTACT, None, None, None)
    # A contact whose id equals an assignee id gains nothing from it.
    assert not see(CONTACT, None, 7, 8)
    assert not see(Actor(kind=ActorKind.CONTACT, id=None), None, None, None)


def test_internal_notes_never_reach_contacts() -> None:
    assert not can_see_message(CONTACT, is_internal=True)
    assert can_see_message(CONTACT, is_internal=False)
    assert can_see_message(AGENT, is_internal=True)
    assert not can_write_internal_note(CONTACT)
    assert can_write_internal_note(AGENT)
    assert can_write_internal_note(SYSTEM)


def test_management_rights() -> None:
    assert can_manage_ticket(AGENT)
    assert can_manage_ticket(SYSTEM)
    assert not can_manage_ticket(CONTACT)
    assert can_assign_to_team(AGENT, 99)
    assert not can_assign_to_team(CONTACT, 10)
    assert can_administer(ADMIN)
    assert not can_administer(SUPERVISOR)
    assert not can_administer(CONTACT)


def test_actor_properties() -> None:
    assert AGENT.is_agent and not AGENT.is_contact and not AGENT.is_admin
    assert SUPERVISOR.is_supervisor_or_admin and ADMIN.is_supervisor_or_admin
    assert CONTACT.is_contact and not CONTACT.is_supervisor_or_admin
