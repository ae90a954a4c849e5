"""/api/v1/agents, /teams, /tokens, /webhooks: administration and credentials."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path

from kefu.actions.agents import do_create_agent, do_create_team, do_update_agent
from kefu.actions.auth import do_create_api_token, do_revoke_api_token
from kefu.actions.webhooks import do_create_webhook, do_delete_webhook
from kefu.domain.errors import ValidationFailed
from kefu.queries.people import (
    access_agent_by_id,
    list_agents,
    list_api_tokens,
    list_teams,
    list_webhooks,
)
from kefu.web.deps import AdminDep, AgentDep, ReadDbDep, StateDep
from kefu.web.schemas import (
    MAX_ID,
    AgentCreate,
    AgentList,
    AgentPublic,
    AgentUpdate,
    TeamCreate,
    TeamList,
    TeamPublic,
    TokenCreate,
    TokenCreated,
    TokenList,
    TokenPublic,
    WebhookCreate,
    WebhookCreated,
    WebhookList,
    WebhookPublic,
)

router = APIRouter(tags=["admin"])
IdPath = Annotated[int, Path(ge=1, le=MAX_ID)]


@router.get("/teams", response_model=TeamList)
def get_teams(db: ReadDbDep, principal: AgentDep) -> TeamList:
    return TeamList(items=[TeamPublic.of(t) for t in list_teams(db)])


@router.post("/teams", status_code=201, response_model=TeamPublic)
def create_team(body: TeamCreate, state: StateDep, principal: AdminDep) -> TeamPublic:
    with state.transaction() as db:
        return TeamPublic.of(do_create_team(db, principal.actor, slug=body.slug, name=body.name))


@router.get("/agents", response_model=AgentList)
def get_agents(db: ReadDbDep, principal: AgentDep) -> AgentList:
    return AgentList(items=[AgentPublic.of(a) for a in list_agents(db)])


@router.post("/agents", status_code=201, response_model=AgentPublic)
def create_agent(body: AgentCreate, state: StateDep, principal: AdminDep) -> AgentPublic:
    with state.transaction() as db:
        agent = do_create_agent(
            db,
            principal.actor,
            email=body.email,
            name=body.name,
            role=body.role,
            password=body.password,
            team_ids=body.team_ids,
            locale=body.locale,
            max_chats=body.max_chats,
        )
        return AgentPublic.of(agent)


@router.get("/agents/{agent_id}", response_model=AgentPublic)
def get_agent(agent_id: IdPath, db: ReadDbDep, principal: AgentDep) -> AgentPublic:
    return AgentPublic.of(access_agent_by_id(db, principal.actor, agent_id))


@router.patch("/agents/{agent_id}", response_model=AgentPublic)
def update_agent(
    agent_id: IdPath, body: AgentUpdate, state: StateDep, principal: AdminDep
) -> AgentPublic:
    with state.transaction() as db:
        agent = access_agent_by_id(db, principal.actor, agent_id)
        do_update_agent(
            db,
            principal.actor,
            agent,
            name=body.name,
            role=body.role,
            team_ids=body.team_ids,
            is_active=body.is_active,
            max_chats=body.max_chats,
            can_view_sensitive=body.can_view_sensitive,
        )
        public = AgentPublic.of(agent)
    state.principals.clear()  # a new role, team or deactivation applies at once
    return public


@router.get("/tokens", response_model=TokenList)
def get_tokens(db: ReadDbDep, principal: AgentDep) -> TokenList:
    assert principal.agent is not None  # noqa: S101  # AgentDep guarantees it
    return TokenList(items=[TokenPublic.of(t) for t in list_api_tokens(db, principal.agent.id)])


@router.post("/tokens", status_code=201, response_model=TokenCreated)
def create_token(body: TokenCreate, state: StateDep, principal: AgentDep) -> TokenCreated:
    with state.transaction() as db:
        assert principal.agent is not None  # noqa: S101  # AgentDep guarantees it
        if body.expires_at is not None and body.expires_at.tzinfo is None:
            raise ValidationFailed("timestamps need a time zone", field="expires_at")
        created = do_create_api_token(
            db,
            principal.actor,
            principal.agent,
            name=body.name,
            scopes=body.scopes,
            expires_at=body.expires_at,
        )
        return TokenCreated(**TokenPublic.of(created.token).model_dump(), token=created.raw)


@router.delete("/tokens/{token_id}", status_code=204)
def revoke_token(token_id: IdPath, state: StateDep, principal: AgentDep) -> None:
    with state.transaction() as db:
        do_revoke_api_token(db, principal.actor, token_id)
    state.principals.clear()  # the revoked token stops working here at once


@router.get("/webhooks", response_model=WebhookList)
def get_webhooks(db: ReadDbDep, principal: AdminDep) -> WebhookList:
    return WebhookList(items=[WebhookPublic.of(w) for w in list_webhooks(db)])


@router.post("/webhooks", status_code=201, response_model=WebhookCreated)
def create_webhook(body: WebhookCreate, state: StateDep, principal: AdminDep) -> WebhookCreated:
    with state.transaction() as db:
        hook = do_create_webhook(db, principal.actor, url=body.url, events=body.events)
        return WebhookCreated(**WebhookPublic.of(hook).model_dump(), secret=hook.secret)


@router.delete("/webhooks/{webhook_id}", status_code=204)
def delete_webhook(webhook_id: IdPath, state: StateDep, principal: AdminDep) -> None:
    with state.transaction() as db:
        do_delete_webhook(db, principal.actor, webhook_id)
