"""The demo world loads through the actions, once, and matches the docs' personas."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from kefu.demo.load import SEED, load_seed
from kefu.domain.helpcenter import CATEGORIES
from kefu.domain.tickets import Priority, TicketKind
from kefu.models import Agent, Article, Contact, Message, Ticket
from kefu.queries.articles import article_translations


def test_seed_loads_with_consistent_rules(db: Session) -> None:
    seed = json.loads(SEED.read_text(encoding="utf-8"))
    logins = load_seed(db, seed)
    assert len(logins) == len(seed["agents"])
    tickets = db.scalars(select(Ticket)).all()
    assert len(tickets) == len(seed["tickets"]) >= 30
    assert {t.channel.value for t in tickets} >= {"chat", "email", "phone", "social", "web", "api"}
    assert {t.kind for t in tickets} == set(TicketKind)
    for t in tickets:
        if t.kind is TicketKind.ACCOUNT_SECURITY:
            assert t.priority is Priority.URGENT
    statuses = {t.status.value for t in tickets}
    assert statuses == {"new", "open", "pending", "on_hold", "solved", "closed"}
    assert db.scalar(select(func.count()).select_from(Message)) >= len(tickets)
    assert db.scalar(select(func.count()).select_from(Contact)) == len(seed["contacts"])
    admin = db.scalars(select(Agent).where(Agent.role == "admin")).one()
    assert admin.totp_secret is not None
    # The help center: 60+ Chinese articles over all six categories, and the English
    # ones linked to the Chinese article they translate.
    articles = db.scalars(select(Article)).all()
    chinese = [a for a in articles if a.locale == "zh-CN"]
    assert len(chinese) >= 60
    assert {a.category for a in chinese} == {c.slug for c in CATEGORIES}
    english = [a for a in articles if a.locale == "en"]
    assert english
    for a in english:
        assert a.translation_group is not None
        assert article_translations(db, a).keys() == {"zh-CN"}
    # Phone tickets carry the calls agents logged (the console's timeline shows them).
    calls = [m for m in db.scalars(select(Message)).all() if (m.meta or {}).get("kind") == "call"]
    assert {c["call"]["outcome"] for c in (m.meta for m in calls)} >= {"answered", "no_answer"}
    for m in calls:
        ticket = db.get(Ticket, m.ticket_id)
        assert ticket is not None and ticket.channel.value == "phone"
        assert m.channel.value == "phone" and m.is_internal and m.author_type.value == "agent"
        contact = db.get(Contact, ticket.contact_id)
        assert contact is not None and m.meta["call"]["phone"] == contact.phone


def test_kefu_demo_runs_once_and_keeps_data(tmp_path: Path) -> None:
    env = {"KEFU_DATA_DIR": str(tmp_path), "PATH": "/usr/bin:/bin"}

    def kefu(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "kefu.cli", *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=180,
        )

    assert kefu("migrate").returncode == 0
    first = kefu("demo")
    assert first.returncode == 0, first.stderr
    assert "demo data loaded" in first.stdout
    assert "admin@kx-exchange.example" in first.stdout
    assert "otpauth://totp/" in first.stdout
    second = kefu("demo")
    assert "already present" in second.stdout
