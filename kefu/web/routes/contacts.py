"""/api/v1/contacts (agents) and /api/v1/me (whoever is calling).

Agents see contacts' phones and emails partly masked; ``reveal=true`` (with the "view
sensitive data" permission) shows them and is written to the audit log, as for message
bodies (docs/security.md). A contact sees their own data as written.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query

from kefu.actions.contacts import (
    ContactData,
    do_create_contact,
    do_set_anti_phishing_code,
    do_update_contact,
)
from kefu.actions.guard import do_record_sensitive_reveal
from kefu.domain.errors import PermissionDenied
from kefu.models import Contact
from kefu.queries.people import access_contact_by_id, list_contacts
from kefu.web.deps import AgentDep, PrincipalDep, ReadDbDep, StateDep
from kefu.web.schemas import (
    MAX_ID,
    AgentPublic,
    AntiPhishingCode,
    ContactCreate,
    ContactList,
    ContactPublic,
    ContactUpdate,
    MePublic,
)

router = APIRouter(tags=["contacts"])
IdPath = Annotated[int, Path(ge=1, le=MAX_ID)]
RevealQuery = Annotated[
    bool, Query(description="Show phones and emails in full (needs the permission; audited).")
]
CONTACT_PII_FIELDS = ("email", "phone", "name")


def _data(body: ContactCreate) -> ContactData:
    return ContactData(
        email=body.email,
        phone=body.phone,
        exchange_uid=body.exchange_uid,
        name=body.name,
        locale=body.locale,
        verification_level=body.verification_level,
    )


@router.get("/contacts", response_model=ContactList)
def get_contacts(
    db: ReadDbDep,
    state: StateDep,
    principal: AgentDep,
    q: Annotated[str | None, Query(max_length=200)] = None,
    cursor: Annotated[int, Query(ge=0, le=MAX_ID)] = 0,
    limit: Annotated[int, Query(ge=1, le=100)] = 25,
    reveal: RevealQuery = False,
) -> ContactList:
    rows = list_contacts(db, principal.actor, q=q, after_id=cursor, limit=limit + 1)
    nxt = str(rows[limit - 1].id) if len(rows) > limit else None
    page = rows[:limit]
    if reveal:
        with state.transaction() as wdb:
            do_record_sensitive_reveal(
                wdb, principal.actor, fields=CONTACT_PII_FIELDS, contact_ids=[c.id for c in page]
            )
    return ContactList(items=[ContactPublic.of(c, mask_pii=not reveal) for c in page], next=nxt)


@router.post("/contacts", status_code=201, response_model=ContactPublic)
def create_contact(body: ContactCreate, state: StateDep, principal: AgentDep) -> ContactPublic:
    with state.transaction() as db:
        contact = do_create_contact(db, principal.actor, _data(body))
        return ContactPublic.of(contact, mask_pii=True)


@router.get("/contacts/{contact_id}", response_model=ContactPublic)
def get_contact(
    contact_id: IdPath,
    db: ReadDbDep,
    state: StateDep,
    principal: AgentDep,
    reveal: RevealQuery = False,
) -> ContactPublic:
    contact = access_contact_by_id(db, principal.actor, contact_id)
    if reveal:
        with state.transaction() as wdb:
            do_record_sensitive_reveal(
                wdb, principal.actor, fields=CONTACT_PII_FIELDS, contact_ids=[contact.id]
            )
    return ContactPublic.of(contact, mask_pii=not reveal)


@router.patch("/contacts/{contact_id}", response_model=ContactPublic)
def update_contact(
    contact_id: IdPath, body: ContactUpdate, state: StateDep, principal: AgentDep
) -> ContactPublic:
    with state.transaction() as db:
        contact = access_contact_by_id(db, principal.actor, contact_id)
        updated = do_update_contact(db, principal.actor, contact, _data(body))
        return ContactPublic.of(updated, mask_pii=True)


@router.get("/me", response_model=MePublic)
def get_me(db: ReadDbDep, principal: PrincipalDep) -> MePublic:
    if principal.agent is not None:
        return MePublic(kind="agent", agent=AgentPublic.of(principal.agent))
    contact = db.get(Contact, principal.actor.id)
    if contact is None:
        raise PermissionDenied("unknown caller")
    return MePublic(kind="contact", contact=ContactPublic.of(contact))


@router.put("/me/anti-phishing-code", status_code=204)
def set_anti_phishing_code(
    body: AntiPhishingCode, state: StateDep, principal: PrincipalDep
) -> None:
    """A contact's personal code, shown at the top of every email kefu sends them."""
    with state.transaction() as db:
        if not principal.actor.is_contact:
            raise PermissionDenied("contacts only")
        contact = db.get(Contact, principal.actor.id)
        if contact is None:
            raise PermissionDenied("unknown caller")
        do_set_anti_phishing_code(db, principal.actor, contact, body.code)
