"""Writes on contacts, including the upsert from an exchange-signed identity token.

Every field a person can type (the display name from a web form, a mail's From header,
an identity token; the anti-phishing code) passes the secret guard first, like message
text: people paste anything anywhere (docs/security.md).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from sqlalchemy import bindparam, or_, select
from sqlalchemy.orm import Session

from kefu import events
from kefu.actions.guard import screen_inbound
from kefu.actions.history import record_event
from kefu.domain.access import Actor
from kefu.domain.errors import Conflict, ValidationFailed
from kefu.models import Contact

_EMAIL_RE = re.compile(r"^[^@\s<>\"]{1,64}@[^@\s<>\"]{1,255}\.[^@\s<>\"]{2,63}$")
_PHONE_RE = re.compile(r"^\+?[0-9]{6,16}$")
_UID_RE = re.compile(r"^\d{5,20}$")


_BY_EMAIL = select(Contact).where(Contact.email == bindparam("email"))


@dataclass(frozen=True, slots=True)
class ContactData:
    email: str | None = None
    phone: str | None = None
    exchange_uid: str | None = None
    name: str | None = None
    locale: str | None = None
    verification_level: int | None = None


def normalize_email(email: str) -> str:
    email = email.strip()
    if not _EMAIL_RE.match(email):
        raise ValidationFailed("invalid email address", field="email")
    local, _, domain = email.rpartition("@")
    return f"{local}@{domain.lower()}".lower()


def normalize_phone(phone: str) -> str:
    phone = re.sub(r"[\s()-]", "", phone)
    if not _PHONE_RE.match(phone):
        raise ValidationFailed("invalid phone number", field="phone")
    return phone


def _clean_name(name: str) -> str:
    # Screened whole, then cut: a secret cut in half at the limit would pass the guard.
    return screen_inbound(" ".join(name.split())).text[:200]


def _clean(data: ContactData) -> ContactData:
    uid = data.exchange_uid.strip() if data.exchange_uid else None
    if uid is not None and not _UID_RE.match(uid):
        raise ValidationFailed("invalid exchange UID", field="exchange_uid")
    level = data.verification_level
    if level is not None and not 0 <= level <= 3:
        raise ValidationFailed("verification level is 0 to 3", field="verification_level")
    locale = data.locale
    if locale is not None and locale not in ("zh-CN", "en"):
        raise ValidationFailed("unsupported locale", field="locale")
    return ContactData(
        email=normalize_email(data.email) if data.email else None,
        phone=normalize_phone(data.phone) if data.phone else None,
        exchange_uid=uid,
        name=_clean_name(data.name) if data.name else None,
        locale=locale,
        verification_level=level,
    )


def _check_unique(session: Session, data: ContactData, exclude_id: int | None = None) -> None:
    if data.email is not None:
        other = session.scalar(select(Contact.id).where(Contact.email == data.email))
        if other is not None and other != exclude_id:
            raise Conflict("a contact with this email exists", field="email")
    if data.exchange_uid is not None:
        other = session.scalar(select(Contact.id).where(Contact.exchange_uid == data.exchange_uid))
        if other is not None and other != exclude_id:
            raise Conflict("a contact with this exchange UID exists", field="exchange_uid")


def do_create_contact(session: Session, actor: Actor, data: ContactData) -> Contact:
    data = _clean(data)
    _check_unique(session, data)
    return _insert_contact(session, actor, data)


def _insert_contact(session: Session, actor: Actor, data: ContactData) -> Contact:
    """A new contact from cleaned ``data`` whose email and UID are known to be free."""
    contact = Contact(
        email=data.email,
        phone=data.phone,
        exchange_uid=data.exchange_uid,
        name=data.name or "",
        locale=data.locale or "zh-CN",
        verification_level=data.verification_level or 0,
    )
    session.add(contact)
    session.flush()
    record_event(session, actor, events.CONTACT_CREATED, data={"contact_id": contact.id})
    return contact


def do_update_contact(
    session: Session, actor: Actor, contact: Contact, data: ContactData
) -> Contact:
    data = _clean(data)
    _check_unique(session, data, exclude_id=contact.id)
    changed = []
    for name in ("email", "phone", "exchange_uid", "name", "locale", "verification_level"):
        value = getattr(data, name)
        if value is not None and value != getattr(contact, name):
            setattr(contact, name, value)
            changed.append(name)
    if changed:
        session.flush()
        record_event(
            session,
            actor,
            events.CONTACT_UPDATED,
            data={"contact_id": contact.id, "fields": changed},
        )
    return contact


def do_set_anti_phishing_code(session: Session, actor: Actor, contact: Contact, code: str) -> None:
    code = code.strip()
    if not 4 <= len(code) <= 20 or not code.isprintable():
        raise ValidationFailed("anti-phishing code must be 4 to 20 characters", field="code")
    if screen_inbound(code).secret_kinds:
        # Masking would leave a code the contact never chose; refusing keeps nothing.
        raise ValidationFailed("anti-phishing code must not be a password or code", field="code")
    contact.anti_phishing_code = code
    session.flush()
    record_event(
        session,
        actor,
        events.CONTACT_UPDATED,
        data={"contact_id": contact.id, "fields": ["anti_phishing_code"]},
    )


def do_upsert_contact_from_identity(session: Session, actor: Actor, data: ContactData) -> Contact:
    """A contact known by the exchange UID in a signed identity token.

    The exchange is the authority on the UID; name, email and verification level in
    the token refresh what kefu holds.
    """
    if data.exchange_uid is None:
        raise ValidationFailed("identity token has no UID", field="sub")
    data = _clean(data)
    contact = session.scalar(select(Contact).where(Contact.exchange_uid == data.exchange_uid))
    if contact is None:
        if data.email is not None:
            # An email-only contact (from mail) becomes the same person once identified.
            contact = session.scalar(
                select(Contact).where(Contact.email == data.email, Contact.exchange_uid.is_(None))
            )
        if contact is None:
            return do_create_contact(session, actor, data)
    return do_update_contact(session, actor, contact, data)


def do_find_or_create_contact(session: Session, actor: Actor, data: ContactData) -> Contact:
    """The contact with this exchange UID or, failing that, this email; else a new one.

    One query for both keys. An email alone never claims a contact that has a UID:
    anyone can type an address into a web form.
    """
    data = _clean(data)
    if data.exchange_uid is None and data.email is not None:
        # The inbound mail case, once per mail: a prebuilt statement.
        by_email = session.scalar(_BY_EMAIL, {"email": data.email})
        return by_email if by_email is not None else _insert_contact(session, actor, data)
    conditions = []
    if data.exchange_uid is not None:
        conditions.append(Contact.exchange_uid == data.exchange_uid)
    if data.email is not None:
        conditions.append(Contact.email == data.email)
    if conditions:
        found = {
            ("uid" if c.exchange_uid == data.exchange_uid and data.exchange_uid else "email"): c
            for c in session.scalars(select(Contact).where(or_(*conditions))).all()
        }
        if "uid" in found:
            return found["uid"]
        by_email = found.get("email")
        if by_email is not None and (data.exchange_uid is None or by_email.exchange_uid is None):
            return by_email
        if by_email is not None:
            # The email belongs to a different verified customer: do not merge; keep the
            # new contact without the email so the unique index holds.
            data = ContactData(exchange_uid=data.exchange_uid, name=data.name, phone=data.phone)
    # The query above was the uniqueness check: no contact has this UID, and the email
    # (if still set) is nobody's. ``data`` is clean already.
    return _insert_contact(session, actor, data)
