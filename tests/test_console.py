"""The agent console in-process, on every database backend: login, the inbox views and
their counts, the ticket page, replies and notes, fields, bulk actions, macros, and the
query counts that keep pages flat however long a ticket gets. (The journeys through it
run in a real browser in tests/browser/test_console.py.)"""

from __future__ import annotations

import base64
import contextlib
import re
from collections.abc import Iterator
from typing import Any

import pyotp
import pytest
from sqlalchemy import event as sa_event
from sqlalchemy import func, select
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session, sessionmaker
from starlette.testclient import TestClient

from kefu.actions.agents import do_enroll_totp, do_update_agent
from kefu.actions.articles import (
    ArticleData,
    do_log_search,
    do_record_feedback,
    do_save_article,
)
from kefu.actions.calls import CallLog, do_log_call
from kefu.actions.chat import ChatStart, do_request_human, do_start_chat
from kefu.actions.guard import display_text
from kefu.actions.macros import do_save_macro
from kefu.actions.messages import NewMessage, do_add_message
from kefu.actions.tickets import do_change_status, do_tag
from kefu.channels.email.inbound import Ingestor
from kefu.domain import dlp
from kefu.domain.access import SYSTEM, Role
from kefu.domain.calls import CallDirection, CallOutcome
from kefu.domain.chat import ChatTopic
from kefu.domain.errors import PermissionDenied, ValidationFailed
from kefu.domain.helpcenter import ArticleStatus
from kefu.domain.macros import render_macro, unknown_variables
from kefu.domain.tickets import Channel, Priority, TicketStatus
from kefu.models import ApiToken, Event, Job, Message, Ticket
from tests.factories import (
    PASSWORD,
    auth,
    contact_actor,
    make_agent,
    make_contact,
    make_team,
    make_ticket,
    make_token,
)

# A 1×1 PNG, as a browser would drop it on the composer.
PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
)
CSRF = re.compile(r'"X-CSRF-Token": "([^"]+)"')


def rows_of(html: str) -> str:
    """The inbox's rows only (the tbody's own attributes echo the query)."""
    body = html.split('id="inbox-rows"', 1)[1]
    return body.split(">", 1)[1].split("</tbody>", 1)[0]


def console_login(client: TestClient, email: str, totp: str = "") -> dict[str, str]:
    """Log in through the form; returns the headers an HTMX request sends."""
    r = client.post(
        "/agent/login",
        data={"email": email, "password": PASSWORD, "totp": totp, "next": "/agent/inbox/all"},
        follow_redirects=False,
    )
    assert r.status_code == 303, r.text
    assert r.headers["location"] == "/agent/inbox/all"
    page = client.get("/agent/inbox/all")
    match = CSRF.search(page.text)
    assert match is not None
    return {"X-CSRF-Token": match.group(1), "HX-Request": "true"}


@pytest.fixture
def world(db: Session) -> dict[str, Any]:
    general = make_team(db, "general")
    security = make_team(db, "security")
    me = make_agent(db, teams=[general], password=PASSWORD)
    other = make_agent(db, teams=[security], password=PASSWORD)
    contact = make_contact(db, name="王小明", phone="13800138000")
    mine = make_ticket(db, subject="我的工单", team=general, assignee=me, contact=contact)
    loose = make_ticket(db, subject="没人管", team=general, contact=contact)
    urgent = make_ticket(db, subject="紧急", team=general, priority=Priority.URGENT)
    theirs = make_ticket(db, subject="安全组的", team=security, assignee=other)
    email = make_ticket(
        db, subject="邮件工单", channel=Channel.EMAIL, team=general, assignee=me, contact=contact
    )
    db.commit()
    return {
        "me": me,
        "other": other,
        "general": general,
        "contact": contact,
        "mine": mine.number,
        "loose": loose.number,
        "urgent": urgent.number,
        "theirs": theirs.number,
        "email": email.number,
    }


# -- login ---------------------------------------------------------------------------


def test_login_form_is_ready_for_password_managers(client: TestClient) -> None:
    page = client.get("/agent/login")
    assert page.status_code == 200
    for value in ("username", "current-password", "one-time-code"):
        assert f'autocomplete="{value}"' in page.text
    assert "客服登录" in page.text  # zh-CN first
    assert "Agent login" in client.get("/agent/login?lang=en").text


def test_pages_need_a_session(client: TestClient) -> None:
    r = client.get("/agent/inbox/mine?status=open", follow_redirects=False)
    assert r.status_code == 303
    assert r.headers["location"] == "/agent/login?next=%2Fagent%2Finbox%2Fmine%3Fstatus%3Dopen"
    htmx = client.get("/agent/inbox/mine", headers={"HX-Request": "true"})
    assert htmx.status_code == 401 and htmx.headers["HX-Redirect"] == "/agent/login"
    # A bearer token is for the API, not for pages.
    assert client.get("/agent/counts", follow_redirects=False).status_code == 303


def test_wrong_password_and_missing_code_are_explained(client: TestClient, db: Session) -> None:
    admin = make_agent(db, role=Role.ADMIN, password=PASSWORD)
    secret = pyotp.parse_uri(do_enroll_totp(db, SYSTEM, admin)).secret
    db.commit()
    wrong = client.post("/agent/login", data={"email": admin.email, "password": "nope!"})
    assert wrong.status_code == 401
    assert "邮箱或密码错误" in wrong.text or "wrong email or password" not in wrong.text
    no_code = client.post("/agent/login", data={"email": admin.email, "password": PASSWORD})
    assert no_code.status_code == 401
    assert 'aria-invalid="true"' in no_code.text  # the code field is marked
    assert admin.email in no_code.text  # what was typed is kept (not the password)
    assert PASSWORD not in no_code.text
    console_login(client, admin.email, pyotp.TOTP(secret).now())


def test_login_never_redirects_off_site(client: TestClient, db: Session) -> None:
    agent = make_agent(db, password=PASSWORD)
    db.commit()
    for target in ("https://evil.example/", "//evil.example", "/agent/../x\\y", "/help"):
        r = client.post(
            "/agent/login",
            data={"email": agent.email, "password": PASSWORD, "next": target},
            follow_redirects=False,
        )
        assert r.headers["location"] == "/agent/inbox/mine", target


def test_logout_ends_the_session(client: TestClient, world: dict[str, Any]) -> None:
    headers = console_login(client, world["me"].email)
    assert client.post("/agent/logout", headers=headers, follow_redirects=False).status_code == 303
    assert client.get("/agent/inbox/mine", follow_redirects=False).status_code == 303


# -- inbox -----------------------------------------------------------------------------


def _counts(html: str) -> dict[str, int]:
    return {k: int(v) for k, v in re.findall(r'data-count="(\w+)">(\d+)<', html)}


def test_views_and_counts(client: TestClient, world: dict[str, Any]) -> None:
    console_login(client, world["me"].email)
    page = client.get("/agent/inbox/mine")
    assert page.status_code == 200
    # The agent sees the general team's tickets, not the security team's.
    assert _counts(page.text) == {
        "mine": 2,
        "unassigned": 2,
        "team": 4,
        "urgent": 1,
        "solved": 0,
        "all": 4,
    }
    assert world["mine"] in page.text and world["loose"] not in page.text
    unassigned = client.get("/agent/inbox/unassigned").text
    assert world["loose"] in unassigned and world["urgent"] in unassigned
    assert world["theirs"] not in client.get("/agent/inbox/all").text
    filtered = client.get("/agent/inbox/all?channel=email").text
    assert world["email"] in filtered and world["mine"] not in rows_of(filtered)
    # HTMX asks for the rows alone; the counts have their own fragment.
    rows = client.get("/agent/inbox/all", headers={"HX-Request": "true"}).text
    assert rows.lstrip().startswith("<tr") and "<html" not in rows
    assert _counts(client.get("/agent/counts?view=all").text)["all"] == 4


def test_inbox_filters_refuse_nonsense(client: TestClient, world: dict[str, Any]) -> None:
    console_login(client, world["me"].email)
    assert client.get("/agent/inbox/nope").status_code == 422
    assert client.get("/agent/inbox/all?status=exploded").status_code == 422
    assert client.get("/agent/inbox/all?cursor=!!!").status_code == 422
    assert client.get("/agent/inbox/all?tag=" + "x" * 500).status_code == 422
    htmx = client.get("/agent/inbox/all?status=exploded", headers={"HX-Request": "true"})
    assert htmx.status_code == 422 and htmx.headers["HX-Retarget"] == "#flash"
    assert 'role="alert"' in htmx.text


def test_bulk_actions_are_all_or_nothing(
    client: TestClient, world: dict[str, Any], db: Session
) -> None:
    headers = console_login(client, world["me"].email)
    numbers = [world["loose"], world["urgent"]]
    r = client.post(
        "/agent/tickets/bulk", data={"numbers": numbers, "action": "assign:me"}, headers=headers
    )
    assert r.status_code == 204 and r.headers["HX-Trigger"] == "inbox-changed"
    assigned = db.scalars(select(Ticket).where(Ticket.number.in_(numbers))).all()
    assert {t.assignee_id for t in assigned} == {world["me"].id}
    # One ticket the agent may not see: nothing happens to the others either.
    bad = client.post(
        "/agent/tickets/bulk",
        data={"numbers": [world["loose"], world["theirs"]], "action": "status:solved"},
        headers=headers,
    )
    assert bad.status_code == 404
    db.expire_all()
    loose = db.scalar(select(Ticket).where(Ticket.number == world["loose"]))
    assert loose is not None and loose.status is not TicketStatus.SOLVED
    tagged = client.post(
        "/agent/tickets/bulk", data={"numbers": numbers, "tag": "批量"}, headers=headers
    )
    assert tagged.status_code == 204
    db.expire_all()
    assert all(
        "批量" in t.tags for t in db.scalars(select(Ticket).where(Ticket.number.in_(numbers)))
    )
    merged = client.post(
        "/agent/tickets/bulk", data={"numbers": numbers, "action": "merge"}, headers=headers
    )
    assert merged.status_code == 204
    db.expire_all()
    newer = db.scalar(select(Ticket).where(Ticket.number == world["urgent"]))
    assert newer is not None and newer.merged_into_id is not None
    for data in ({"numbers": numbers, "action": "explode"}, {"numbers": numbers}):
        assert client.post("/agent/tickets/bulk", data=data, headers=headers).status_code == 422
    no_csrf = {"HX-Request": "true"}
    assert (
        client.post(
            "/agent/tickets/bulk", data={"numbers": numbers, "action": "unassign"}, headers=no_csrf
        ).status_code
        == 403
    )


# -- the ticket page -------------------------------------------------------------------


def test_ticket_page_shows_one_timeline_and_masks_pii(
    client: TestClient, world: dict[str, Any], db: Session
) -> None:
    console_login(client, world["me"].email)
    ticket = db.scalar(select(Ticket).where(Ticket.number == world["mine"]))
    assert ticket is not None
    do_add_message(
        db,
        contact_actor(world["contact"]),
        ticket,
        NewMessage(body="我的手机号是13800138000", channel=Channel.WEB),
    )
    db.commit()
    page = client.get(f"/agent/tickets/{world['mine']}")
    assert page.status_code == 200
    assert "我的工单" in page.text and "王小明" in page.text
    assert "13800138000" not in page.text  # masked by default
    assert "138****8000" in page.text
    # Without the permission there is no reveal; with it, the reveal is audited.
    assert client.get(f"/agent/tickets/{world['mine']}?reveal=1").status_code == 403
    do_update_agent(db, SYSTEM, world["me"], can_view_sensitive=True)
    db.commit()
    client.app.state.kefu.principals.clear()  # type: ignore[attr-defined]
    revealed = client.get(f"/agent/tickets/{world['mine']}?reveal=1")
    assert revealed.status_code == 200 and "13800138000" in revealed.text
    assert db.scalar(select(Event).where(Event.kind == "sensitive.revealed")) is not None
    assert client.get("/agent/tickets/K00000000").status_code == 404
    assert client.get(f"/agent/tickets/{world['theirs']}").status_code == 404


def test_the_ticket_page_masks_from_the_text_stored_with_each_message(
    client: TestClient, world: dict[str, Any], db: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A first view of a long ticket scans none of its messages again: each was masked
    once, when it was stored (Message.display_body)."""
    console_login(client, world["me"].email)
    ticket = db.scalar(select(Ticket).where(Ticket.number == world["mine"]))
    assert ticket is not None
    for i in range(30):
        do_add_message(
            db,
            contact_actor(world["contact"]),
            ticket,
            NewMessage(body=f"第{i}次：电话 139001390{i:02d}", channel=Channel.WEB),
        )
    db.commit()
    display_text.cache_clear()  # as for a ticket nobody opened since the process started
    scanned: list[str] = []
    scan = dlp.scan
    monkeypatch.setattr(dlp, "scan", lambda text, **kw: scanned.append(text) or scan(text, **kw))
    page = client.get(f"/agent/tickets/{world['mine']}")
    assert page.status_code == 200
    assert "139****9029" in page.text and "13900139029" not in page.text
    assert not [t for t in scanned if "电话" in t]


def test_reply_on_an_email_ticket_goes_out_by_email_and_a_note_does_not(
    client: TestClient, world: dict[str, Any], db: Session
) -> None:
    headers = console_login(client, world["me"].email)
    url = f"/agent/tickets/{world['email']}/messages"
    reply = client.post(
        url, data={"body": "您好，已为您处理", "client_msg_id": "r-1"}, headers=headers
    )
    assert reply.status_code == 200, reply.text
    assert "您好，已为您处理" in reply.text and reply.headers["HX-Trigger"] == "ticket-changed"
    again = client.post(
        url, data={"body": "您好，已为您处理", "client_msg_id": "r-1"}, headers=headers
    )
    assert again.status_code == 200
    note = client.post(url, data={"body": "内部：已核实", "internal": "true"}, headers=headers)
    assert note.status_code == 200 and "内部：已核实" in note.text
    ticket = db.scalar(select(Ticket).where(Ticket.number == world["email"]))
    assert ticket is not None
    bodies = {
        m.body: m.is_internal
        for m in db.scalars(select(Message).where(Message.ticket_id == ticket.id))
    }
    assert bodies["您好，已为您处理"] is False and bodies["内部：已核实"] is True
    assert len([b for b in bodies if b == "您好，已为您处理"]) == 1
    assert [j.kind for j in db.scalars(select(Job).where(Job.kind == "email.send"))] == [
        "email.send"
    ]
    # The customer's view of the ticket has the reply and not the note.
    contact_messages = [
        m.body
        for m in db.scalars(
            select(Message).where(Message.ticket_id == ticket.id, Message.is_internal.is_(False))
        )
    ]
    assert "内部：已核实" not in contact_messages
    empty = client.post(url, data={"body": "   "}, headers=headers)
    assert empty.status_code == 422 and 'role="alert"' in empty.text
    huge = client.post(url, data={"body": "字" * 100_001}, headers=headers)
    assert huge.status_code == 422


def test_a_pasted_seed_phrase_is_masked_in_a_console_reply(
    client: TestClient, world: dict[str, Any], db: Session
) -> None:
    headers = console_login(client, world["me"].email)
    words = "abandon ability able about above absent absorb abstract absurd abuse access accident"
    r = client.post(
        f"/agent/tickets/{world['mine']}/messages",
        data={"body": f"客户发来：{words}", "internal": "true"},
        headers=headers,
    )
    assert r.status_code == 200
    stored = db.scalars(select(Message.body)).all()
    assert not any("abandon ability" in b for b in stored)


def _article(db: Session, article_id: str, title: str, body: str) -> None:
    data = ArticleData(title=title, body_md=body, status=ArticleStatus.PUBLISHED)
    do_save_article(db, SYSTEM, data, article_id=article_id)


def test_suggested_articles_load_beside_the_ticket(
    client: TestClient, world: dict[str, Any], db: Session
) -> None:
    _article(db, "kb-deposit", "充币未到账怎么办", "请提供 TxID 与网络。")
    _article(db, "kb-stolen", "账户被盗怎么办", "立即冻结账户。")
    ticket = make_ticket(db, subject="我的USDT充币一直未到账", team=world["general"])
    db.commit()
    console_login(client, world["me"].email)
    page = client.get(f"/agent/tickets/{ticket.number}").text
    # The page only says where the panel comes from: the search runs in its own request.
    panel = page.split('id="suggested"', 1)[1].split("</div>", 1)[0]
    assert f'hx-get="/agent/tickets/{ticket.number}/suggested-articles"' in panel
    assert 'hx-trigger="load"' in panel and "充币未到账怎么办" not in panel
    fragment = client.get(f"/agent/tickets/{ticket.number}/suggested-articles")
    assert fragment.status_code == 200 and "<html" not in fragment.text
    links = re.findall(r'<a href="([^"]+)"[^>]*>([^<]+)</a>', fragment.text)
    assert links[0] == ("/help/articles/kb-deposit", "充币未到账怎么办")
    base = client.app.state.kefu.settings.base_url.rstrip("/")  # type: ignore[attr-defined]
    assert f'data-insert="充币未到账怎么办 {base}/help/articles/kb-deposit"' in fragment.text
    # Nothing found is said so; a ticket the agent may not see is not found.
    nothing = client.get(f"/agent/tickets/{world['mine']}/suggested-articles").text
    assert "没有与该工单相关的文章" in nothing and "insert-link" not in nothing
    assert client.get(f"/agent/tickets/{world['theirs']}/suggested-articles").status_code == 404


QUOTED_REPLY = """\
From: =?utf-8?B?546L5bCP5piO?= <wang.xm@example.com>
To: support@kefu.example
Subject: =?utf-8?B?UmU6IOaPkOW4geacquWIsOi0pg==?=
Message-ID: <quoted-1@example.com>
MIME-Version: 1.0
Content-Type: text/plain; charset=utf-8
Content-Transfer-Encoding: 8bit

好的，我再等等。

在 2026年11月25日 10:00，客服 <support@kefu.example> 写道：
> 您好，请提供 TxID。<script>alert(1)</script>
> 回电号码 13800138000
""".encode()


def test_quoted_email_history_folds_out_in_the_timeline(
    client: TestClient, world: dict[str, Any], sessions: sessionmaker[Session]
) -> None:
    state = client.app.state.kefu  # type: ignore[attr-defined]
    received = Ingestor(sessions, state.files, 1_000_000).ingest(QUOTED_REPLY)
    assert received.ticket is not None and received.message is not None
    number, seq = received.ticket.number, received.message.seq
    console_login(client, world["me"].email)
    page = client.get(f"/agent/tickets/{number}").text
    message = page.split(f'id="m{seq}"', 1)[1].split("</li>", 1)[0]
    assert "好的，我再等等。" in message and "请提供 TxID" not in message
    fold = re.search(r"<details class=\"quoted\"([^>]*)>", message)
    assert fold is not None and " open" not in fold.group(1)  # closed until asked for
    assert f'hx-get="/agent/tickets/{number}/messages/{seq}/quoted"' in fold.group(1)
    quoted = client.get(f"/agent/tickets/{number}/messages/{seq}/quoted")
    assert quoted.status_code == 200
    assert "您好，请提供 TxID。" in quoted.text and "好的，我再等等" not in quoted.text
    assert "<script>" not in quoted.text and "&lt;script&gt;" in quoted.text
    assert "13800138000" not in quoted.text and "138****8000" in quoted.text  # PII masked
    assert client.get(f"/agent/tickets/{number}/messages/999/quoted").status_code == 404
    assert client.get(f"/agent/tickets/{world['theirs']}/messages/1/quoted").status_code == 404
    assert client.get(f"/agent/tickets/{number}/messages/0/quoted").status_code == 422


def test_a_mail_whose_original_was_not_kept_says_so(
    client: TestClient, world: dict[str, Any], sessions: sessionmaker[Session]
) -> None:
    words = "abandon ability able about above absent absorb abstract absurd abuse access accident"
    raw = QUOTED_REPLY.replace(b"quoted-1@", b"quoted-2@").replace(
        "好的，我再等等。".encode(), f"助记词是 {words}".encode()
    )
    state = client.app.state.kefu  # type: ignore[attr-defined]
    received = Ingestor(sessions, state.files, 1_000_000).ingest(raw)
    assert received.ticket is not None and received.message is not None
    console_login(client, world["me"].email)
    page = client.get(f"/agent/tickets/{received.ticket.number}").text
    assert "原始邮件未保存" in page and '<details class="quoted"' not in page
    assert "abandon ability" not in page


def test_the_sidebar_lists_the_contacts_other_tickets_the_agent_may_see(
    client: TestClient, world: dict[str, Any], db: Session
) -> None:
    hidden = make_ticket(
        db, subject="安全组处理中", team=make_team(db, "vip"), contact=world["contact"]
    )
    stranger = make_ticket(db, subject="别人的工单", team=world["general"])
    db.commit()
    console_login(client, world["me"].email)
    page = client.get(f"/agent/tickets/{world['mine']}").text
    others = page.split("其他工单", 1)[1].split("</ul>", 1)[0]
    listed = re.findall(r'href="/agent/tickets/(K\d+)"', others)
    assert sorted(listed) == sorted([world["loose"], world["email"]])  # not itself
    assert "没人管" in others and "邮件工单" in others
    assert hidden.number not in page and stranger.number not in others
    # A ticket without a contact has no such list.
    assert "其他工单" not in client.get(f"/agent/tickets/{world['urgent']}").text


def test_the_timeline_warns_when_a_secret_was_masked(
    client: TestClient, world: dict[str, Any], db: Session
) -> None:
    ticket = db.scalar(select(Ticket).where(Ticket.number == world["mine"]))
    assert ticket is not None
    words = "abandon ability able about above absent absorb abstract absurd abuse access accident"
    do_add_message(
        db,
        contact_actor(world["contact"]),
        ticket,
        NewMessage(body=f"我的助记词是 {words}", channel=Channel.WEB),
    )
    db.commit()
    console_login(client, world["me"].email)
    page = client.get(f"/agent/tickets/{world['mine']}").text
    assert "abandon ability" not in page
    items = page.split('<ol class="items"', 1)[1].split("</ol>", 1)[0].split("<li")
    warned = [i for i in items if 'class="badge dlp"' in i]
    assert len(warned) == 1 and "author-system" in warned[0]  # the warning to the customer
    event = [i for i in items if "ev-secret-masked" in i]
    assert len(event) == 1 and "在保存前屏蔽了敏感信息（seed_phrase）" in event[0]
    # An ordinary message carries no badge.
    assert not any('class="badge dlp"' in i for i in items if "我充值的USDT" in i)


def test_files_attached_in_the_composer_are_sent_with_the_reply(
    client: TestClient, world: dict[str, Any], db: Session
) -> None:
    headers = console_login(client, world["me"].email)
    csrf = {"X-CSRF-Token": headers["X-CSRF-Token"]}
    # What console.js does on a drop: upload with the session, then send the ids.
    uploaded = client.post(
        "/api/v1/attachments",
        files={"file": ("转账截图.png", PNG, "image/png")},
        headers=csrf,
    )
    assert uploaded.status_code == 201, uploaded.text
    att_id = uploaded.json()["id"]
    url = f"/agent/tickets/{world['email']}/messages"
    r = client.post(url, data={"body": "", "attachment_ids": [att_id]}, headers=headers)
    assert r.status_code == 200, r.text
    assert f'href="/api/v1/attachments/{att_id}">转账截图.png</a>' in r.text
    message = db.scalar(
        select(Message)
        .join(Ticket)
        .where(Ticket.number == world["email"])
        .order_by(Message.seq.desc())
    )
    assert message is not None and [a.id for a in message.attachments] == [att_id]
    assert client.get(f"/api/v1/attachments/{att_id}").content == PNG
    # Sent once: the same file cannot ride on a second message, nor someone else's upload.
    again = client.post(url, data={"body": "再发一次", "attachment_ids": [att_id]}, headers=headers)
    assert again.status_code == 422
    bogus = client.post(url, data={"body": "x", "attachment_ids": ["abc"]}, headers=headers)
    assert bogus.status_code == 422


def test_fields_assign_and_solve(client: TestClient, world: dict[str, Any], db: Session) -> None:
    headers = console_login(client, world["me"].email)
    url = f"/agent/tickets/{world['loose']}/fields"
    r = client.post(
        url,
        data={
            "assignee": str(world["other"].id),
            "priority": "high",
            "tags": "提币， 延迟",
            "coin": "USDT",
            "network": "TRC20",
        },
        headers=headers,
    )
    assert r.status_code == 200, r.text
    ticket = db.scalar(select(Ticket).where(Ticket.number == world["loose"]))
    assert ticket is not None
    db.refresh(ticket)
    assert ticket.assignee_id == world["other"].id and ticket.priority is Priority.HIGH
    assert set(ticket.tags) == {"提币", "延迟"} and ticket.coin == "USDT"
    assert "将工单分配给" in r.text  # the history shows in the timeline
    solved = client.post(url, data={"status": "solved"}, headers=headers)
    assert solved.status_code == 200
    db.refresh(ticket)
    assert ticket.status is TicketStatus.SOLVED
    for bad in ({"status": "exploded"}, {"assignee": "x"}, {"assignee": "99999999999"}):
        assert client.post(url, data=bad, headers=headers).status_code in (400, 422), bad


# -- macros ----------------------------------------------------------------------------


def test_macro_placeholders() -> None:
    body = "{{contact.name}}您好，工单 {{ ticket.number }}。{{contact.wallet}}"
    assert unknown_variables(body) == ["contact.wallet"]
    assert (
        render_macro(body, {"contact.name": "小明", "ticket.number": "K1"}) == "小明您好，工单 K1。"
    )


def test_macros_fill_the_composer_and_only_supervisors_keep_them(
    client: TestClient, world: dict[str, Any], db: Session
) -> None:
    boss = make_agent(db, role=Role.SUPERVISOR, teams=[world["general"]], password=PASSWORD)
    db.commit()
    headers = console_login(client, boss.email)
    bad = client.post(
        "/agent/admin/macros",
        data={"slug": "hi", "title": "问候", "body": "{{contact.wallet}}"},
        headers=headers,
    )
    assert bad.status_code == 422 and "contact.wallet" in bad.text
    ok = client.post(
        "/agent/admin/macros",
        data={
            "slug": "hi",
            "title": "问候",
            "body": "{{contact.name}}您好，工单 {{ticket.number}}",
        },
        headers=headers,
        follow_redirects=False,
    )
    assert ok.status_code == 303
    dup = client.post(
        "/agent/admin/macros", data={"slug": "hi", "title": "x", "body": "y"}, headers=headers
    )
    assert dup.status_code == 409
    page = client.get("/agent/admin/macros")
    macro_id = re.search(r"/agent/admin/macros/(\d+)/delete", page.text)
    assert macro_id is not None
    filled = client.get(
        f"/agent/tickets/{world['mine']}/macro",
        params={"macro": macro_id.group(1), "body": "先说一句"},
    )
    assert filled.status_code == 200
    assert f"先说一句\n\n王小明您好，工单 {world['mine']}" in filled.text.replace("&#10;", "\n")

    client.post("/agent/logout", headers=headers)
    agent_headers = console_login(client, world["me"].email)
    refused = client.post(
        "/agent/admin/macros",
        data={"slug": "mine", "title": "我的", "body": "正文"},
        headers=agent_headers,
    )
    assert refused.status_code == 403
    with pytest.raises(ValidationFailed):
        do_save_macro(db, SYSTEM, slug="../x", title="t", body="b")


# -- query counts ----------------------------------------------------------------------


@contextlib.contextmanager
def count_queries(connection: Connection) -> Iterator[list[str]]:
    seen: list[str] = []

    def before(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if not statement.lstrip().upper().startswith(("SAVEPOINT", "RELEASE", "ROLLBACK")):
            seen.append(statement)

    sa_event.listen(connection, "before_cursor_execute", before)
    try:
        yield seen
    finally:
        sa_event.remove(connection, "before_cursor_execute", before)


def test_pages_cost_the_same_queries_however_long_the_ticket(
    client: TestClient, world: dict[str, Any], db: Session, connection: Connection
) -> None:
    console_login(client, world["me"].email)
    short = db.scalar(select(Ticket).where(Ticket.number == world["loose"]))
    long = db.scalar(select(Ticket).where(Ticket.number == world["mine"]))
    assert short is not None and long is not None
    for i in range(60):
        author = contact_actor(world["contact"]) if i % 2 else SYSTEM
        do_add_message(
            db,
            author,
            long,
            NewMessage(body=f"第{i}条", channel=Channel.WEB, is_internal=not i % 2),
        )
    db.commit()
    client.get(f"/agent/tickets/{short.number}")  # warm the session cache
    with count_queries(connection) as few:
        assert client.get(f"/agent/tickets/{short.number}").status_code == 200
    with count_queries(connection) as many:
        assert client.get(f"/agent/tickets/{long.number}").status_code == 200
    assert len(many) == len(few) <= 14, many
    with count_queries(connection) as inbox_small:
        client.get("/agent/inbox/all?channel=email")
    with count_queries(connection) as inbox_all:
        client.get("/agent/inbox/all")
    assert len(inbox_small) == len(inbox_all) <= 8, inbox_all


def test_the_inbox_costs_the_same_queries_with_fifty_rows_as_with_three(
    client: TestClient, world: dict[str, Any], db: Session, connection: Connection
) -> None:
    """The N+1 guard at the page's real size: every row with its own contact, assignee,
    team and tags, so a per-row lookup of any of them would show."""
    agents = [make_agent(db, teams=[world["general"]]) for _ in range(3)]
    for i in range(55):
        make_ticket(
            db,
            subject=f"批量工单{i}",
            team=world["general"],
            contact=make_contact(db, name=f"客户{i}"),
            assignee=agents[i % 3],
            tags=["提币", f"t{i % 7}"] + (["few"] if i < 3 else []),
        )
    db.commit()
    console_login(client, world["me"].email)
    client.get("/agent/inbox/all")  # warm the session cache
    with count_queries(connection) as few:
        page = client.get("/agent/inbox/all?tag=few")
    assert rows_of(page.text).count('<tr class="row') == 3
    with count_queries(connection) as full:
        page = client.get("/agent/inbox/all")
    assert rows_of(page.text).count('<tr class="row') == 50 and 'class="more"' in page.text
    assert len(full) == len(few), full
    with count_queries(connection) as more:
        rows = client.get("/agent/inbox/all", headers={"HX-Request": "true"})
    assert rows.text.count('<tr class="row') == 50
    with count_queries(connection) as fewer:
        client.get("/agent/inbox/all?tag=few", headers={"HX-Request": "true"})
    assert len(more) == len(fewer), more


# -- two-factor enrolment --------------------------------------------------------------


def test_enrolling_an_authenticator_with_the_qr_code(
    client: TestClient, world: dict[str, Any], db: Session
) -> None:
    me = world["me"]
    headers = console_login(client, me.email)
    page = client.get("/agent/account")
    assert page.status_code == 200 and "<svg" in page.text and "两步验证未开启" in page.text
    secret = re.search(r'name="secret" value="([A-Z2-7]+)"', page.text)
    signature = re.search(r'name="signature" value="([0-9a-f]+)"', page.text)
    assert secret is not None and signature is not None
    form = {"secret": secret.group(1), "signature": signature.group(1)}
    totp = pyotp.TOTP(secret.group(1))
    bad_code = next(
        c for c in ("000000", "111111", "222222", "333333") if not totp.verify(c, valid_window=1)
    )
    wrong = client.post("/agent/account/totp", data=form | {"code": bad_code}, headers=headers)
    assert wrong.status_code == 422 and "动态验证码错误" in wrong.text
    forged = form | {"secret": "JBSWY3DPEHPK3PXPJBSWY3DP", "code": "123456"}
    assert client.post("/agent/account/totp", data=forged, headers=headers).status_code == 422
    db.refresh(me)
    assert me.totp_secret is None  # nothing changed until a code matched
    code = totp.now()
    ok = client.post(
        "/agent/account/totp", data=form | {"code": code}, headers=headers, follow_redirects=False
    )
    assert ok.status_code == 303
    db.refresh(me)
    assert me.totp_secret == secret.group(1)
    client.post("/agent/logout", headers=headers)
    again = client.post("/agent/login", data={"email": me.email, "password": PASSWORD})
    assert again.status_code == 401 and 'aria-invalid="true"' in again.text


@pytest.mark.parametrize(
    ("method", "path", "data"),
    [
        ("GET", "/agent/tickets/" + "9" * 5000, None),
        ("GET", "/agent/tickets/%00%ff", None),
        ("GET", "/agent/tickets/K00000000/macro?macro=99999999999999999999", None),
        ("GET", "/agent/tickets/K00000000/macro?macro=-1", None),
        ("POST", "/agent/tickets/K00000000/messages", {"body": "\x00" * 10}),
        ("POST", "/agent/tickets/K00000000/fields", {"priority": "😀"}),
        ("POST", "/agent/tickets/bulk", {"numbers": ["x" * 300], "action": "assign:me"}),
        ("POST", "/agent/tickets/bulk", {"numbers": ["K1"], "action": "assign:99999999999"}),
        ("POST", "/agent/admin/macros/99999999999999999999/delete", {}),
        ("POST", "/agent/account/totp", {"secret": "x", "signature": "y", "code": "z"}),
        ("GET", "/agent/inbox/all?sort=%27;drop", None),
    ],
)
def test_hostile_console_input_gets_a_clear_4xx(
    client: TestClient, world: dict[str, Any], method: str, path: str, data: Any
) -> None:
    headers = console_login(client, world["me"].email)
    r = client.request(method, path, data=data, headers=headers)
    assert 400 <= r.status_code < 500 or (r.status_code == 200 and "sort" in path), r.text
    assert "Traceback" not in r.text


# -- official channels (防骗验证 registry) ---------------------------------------------


def test_admins_keep_the_official_channel_registry_and_see_the_fakes(
    client: TestClient, db: Session
) -> None:
    admin = make_agent(db, role=Role.ADMIN, password=PASSWORD)
    secret = pyotp.parse_uri(do_enroll_totp(db, SYSTEM, admin)).secret
    agent = make_agent(db, password=PASSWORD)
    db.commit()
    headers = console_login(client, admin.email, pyotp.TOTP(secret).now())
    added = client.post(
        "/agent/admin/channels",
        data={"kind": "domain", "value": "https://KX-Exchange.example/", "label": "官网"},
        headers=headers,
        follow_redirects=False,
    )
    assert added.status_code == 303
    page = client.get("/agent/admin/channels")
    assert "kx-exchange.example" in page.text and "官网" in page.text
    dup = client.post(
        "/agent/admin/channels",
        data={"kind": "domain", "value": "kx-exchange.example"},
        headers=headers,
    )
    assert dup.status_code == 409 and 'role="alert"' in dup.text
    bad = client.post(
        "/agent/admin/channels", data={"kind": "phone", "value": "not a phone"}, headers=headers
    )
    assert bad.status_code == 422
    # The public check now knows the domain, and a look-alike shows up as a fake.
    assert (
        client.get("/api/v1/verify", params={"q": "kx-exchange.example"}).json()["verdict"]
        == "official"
    )
    fake = client.get("/api/v1/verify", params={"q": "kx-exchange-support.example"}).json()
    assert fake["verdict"] == "impersonation"
    fakes = client.get("/agent/admin/channels").text.split('id="fakes"')[1]
    assert "kx-exchange-support.example" in fakes
    channel_id = re.search(r"/agent/admin/channels/(\d+)/delete", page.text)
    assert channel_id is not None

    client.post("/agent/logout", headers=headers)
    agent_headers = console_login(client, agent.email)
    assert "kx-exchange.example" in client.get("/agent/admin/channels").text  # agents may look
    refused = client.post(
        f"/agent/admin/channels/{channel_id.group(1)}/delete", headers=agent_headers
    )
    assert refused.status_code == 403


def test_saved_filters_are_the_agents_own(
    client: TestClient, world: dict[str, Any], db: Session
) -> None:
    headers = console_login(client, world["me"].email)
    r = client.post(
        "/agent/views",
        data={"name": " 邮件 工单 ", "view": "all", "query": "channel=email&evil=1&tag=vip"},
        headers=headers,
        follow_redirects=False,
    )
    assert r.status_code == 303
    assert r.headers["location"] == "/agent/inbox/all?channel=email&tag=vip"
    page = client.get("/agent/inbox/mine").text
    assert "邮件 工单" in page and "/agent/inbox/all?channel=email&amp;tag=vip" in page
    for bad in (
        {"name": "x", "view": "nope", "query": ""},
        {"name": "x", "view": "all", "query": "status=exploded"},
        {"name": "", "view": "all", "query": ""},
    ):
        assert client.post("/agent/views", data=bad, headers=headers).status_code == 422
    view_id = re.search(r"/agent/views/(\d+)/delete", page)
    assert view_id is not None
    # Another agent cannot delete it (and cannot tell it exists).
    client.post("/agent/logout", headers=headers)
    other = console_login(client, world["other"].email)
    assert "邮件 工单" not in client.get("/agent/inbox/mine").text
    assert client.post(f"/agent/views/{view_id.group(1)}/delete", headers=other).status_code == 404


def test_api_tokens_from_the_account_page(
    client: TestClient, world: dict[str, Any], db: Session
) -> None:
    headers = console_login(client, world["me"].email)
    made = client.post(
        "/agent/account/tokens", data={"name": "报表脚本", "scopes": ["read"]}, headers=headers
    )
    assert made.status_code == 200 and made.headers["Cache-Control"] == "no-store"
    raw = re.search(r'id="new-token">([^<]+)<', made.text)
    assert raw is not None and made.text.count('id="new-token"') == 1
    assert "<title>我的账户 · kefu</title>" in made.text
    bearer = {"Authorization": f"Bearer {raw.group(1)}"}
    assert client.get("/api/v1/tickets", headers=bearer).status_code == 200
    # Shown once: the page afterwards has only the prefix.
    assert raw.group(1) not in client.get("/agent/account").text
    assert (
        client.post(
            "/agent/account/tokens", data={"name": "x", "scopes": ["admin"]}, headers=headers
        ).status_code
        == 422
    )  # an agent cannot mint admin tokens
    token_id = re.search(r"/agent/account/tokens/(\d+)/revoke", made.text)
    assert token_id is not None
    client.post(f"/agent/account/tokens/{token_id.group(1)}/revoke", headers=headers)
    assert client.get("/api/v1/tickets", headers=bearer).status_code == 401


def test_the_desk_overview(client: TestClient, world: dict[str, Any], db: Session) -> None:
    for number in (world["mine"], world["loose"]):
        ticket = db.scalar(select(Ticket).where(Ticket.number == number))
        assert ticket is not None
        do_tag(db, SYSTEM, ticket, add=["提币延迟"])
    db.commit()
    console_login(client, world["me"].email)
    page = client.get("/agent/admin/agents")
    assert page.status_code == 200
    assert world["me"].name in page.text and world["general"].name in page.text
    tags = page.text.split("使用中的标签")[1]
    assert re.search(r'提币延迟 <span class="meta-inline">2</span>', tags)


def test_the_search_box(client: TestClient, world: dict[str, Any], db: Session) -> None:
    console_login(client, world["me"].email)
    by_subject = rows_of(client.get("/agent/inbox/all", params={"q": "没人"}).text)
    assert world["loose"] in by_subject and world["mine"] not in by_subject
    by_email = client.get("/agent/inbox/all", params={"q": world["contact"].email.upper()})
    rows = rows_of(by_email.text)
    assert world["mine"] in rows and world["loose"] in rows and world["urgent"] not in rows
    # A ticket number goes straight to the ticket; one the agent may not see finds nothing.
    jump = client.get("/agent/inbox/all", params={"q": f"#{world['mine']}"}, follow_redirects=False)
    assert jump.status_code == 303 and jump.headers["location"] == f"/agent/tickets/{world['mine']}"
    hidden = client.get("/agent/inbox/all", params={"q": world["theirs"]})
    assert hidden.status_code == 200 and world["theirs"] not in rows_of(hidden.text)
    # LIKE wildcards are text, not patterns.
    assert world["mine"] not in rows_of(client.get("/agent/inbox/all", params={"q": "%"}).text)


def test_admins_add_agents_teams_and_inboxes(client: TestClient, db: Session) -> None:
    admin = make_agent(db, role=Role.ADMIN, password=PASSWORD)
    secret = pyotp.parse_uri(do_enroll_totp(db, SYSTEM, admin)).secret
    db.commit()
    headers = console_login(client, admin.email, pyotp.TOTP(secret).now())

    team = client.post(
        "/agent/admin/teams",
        data={"slug": "vip", "name": "大客户组"},
        headers=headers,
        follow_redirects=False,
    )
    assert team.status_code == 303
    page = client.get("/agent/admin/agents").text
    team_id = re.search(r'name="team_ids" value="(\d+)"> 大客户组', page)
    assert team_id is not None
    added = client.post(
        "/agent/admin/agents",
        data={
            "name": "周新",
            "email": "Zhou.Xin@KX-Exchange.example",
            "role": "agent",
            "team_ids": [team_id.group(1)],
            "password": "a long first password 2026",
        },
        headers=headers,
        follow_redirects=False,
    )
    assert added.status_code == 303, added.text
    weak = client.post(
        "/agent/admin/agents",
        data={"name": "弱", "email": "weak@kx-exchange.example", "password": "123"},
        headers=headers,
    )
    assert weak.status_code == 422 and 'role="alert"' in weak.text
    assert 'value="weak@kx-exchange.example"' in weak.text  # what was typed stays
    inbox = client.post(
        "/agent/admin/inboxes",
        data={
            "name": "大客户邮箱",
            "channel": "email",
            "address": "VIP@kx-exchange.example",
            "team": team_id.group(1),
        },
        headers=headers,
        follow_redirects=False,
    )
    assert inbox.status_code == 303
    dup = client.post(
        "/agent/admin/inboxes",
        data={"name": "重复", "channel": "email", "address": "vip@kx-exchange.example"},
        headers=headers,
    )
    assert dup.status_code == 409
    page = client.get("/agent/admin/agents").text
    assert "zhou.xin@kx-exchange.example" in page and "vip@kx-exchange.example" in page

    # The new agent can log in and lands in their team's view.
    client.post("/agent/logout", headers=headers)
    zhou = client.post(
        "/agent/login",
        data={"email": "zhou.xin@kx-exchange.example", "password": "a long first password 2026"},
        follow_redirects=False,
    )
    assert zhou.status_code == 303
    assert "周新" in client.get("/agent/inbox/team").text
    csrf = CSRF.search(client.get("/agent/inbox/team").text)
    assert csrf is not None
    client.post("/agent/logout", headers={"X-CSRF-Token": csrf.group(1)})

    # Deactivated: the login stops working; the inbox can be switched off.
    headers = console_login(client, admin.email, pyotp.TOTP(secret).now())
    agent_id = re.search(
        r'data-agent="zhou.xin@kx-exchange.example">.*?/agent/admin/agents/(\d+)"', page, re.S
    )
    assert agent_id is not None
    off = client.post(
        f"/agent/admin/agents/{agent_id.group(1)}", data={"is_active": "false"}, headers=headers
    )
    assert off.status_code == 200  # followed the redirect back to the page
    inbox_id = re.search(r'/agent/admin/inboxes/(\d+)"', page)
    assert inbox_id is not None
    client.post(
        f"/agent/admin/inboxes/{inbox_id.group(1)}", data={"active": "false"}, headers=headers
    )
    page = client.get("/agent/admin/agents").text
    assert "启用" in page.split('id="inboxes"')[1]
    client.post("/agent/logout", headers=headers)
    refused = client.post(
        "/agent/login",
        data={"email": "zhou.xin@kx-exchange.example", "password": "a long first password 2026"},
    )
    assert refused.status_code == 401


def test_agents_see_the_desk_but_cannot_change_it(
    client: TestClient, world: dict[str, Any]
) -> None:
    headers = console_login(client, world["me"].email)
    page = client.get("/agent/admin/agents").text
    assert "添加客服" not in page
    for path, data in (
        ("/agent/admin/teams", {"slug": "x", "name": "x"}),
        ("/agent/admin/inboxes", {"name": "x", "channel": "chat"}),
        (
            "/agent/admin/agents",
            {"name": "x", "email": "x@x.example", "password": "long enough pw 1"},
        ),
        (f"/agent/admin/agents/{world['other'].id}", {"is_active": "false"}),
    ):
        assert client.post(path, data=data, headers=headers).status_code == 403, path


# -- PII in subjects -------------------------------------------------------------------

CARD = "6222021234567890128"
CARD_MASKED = "6222 **** **** 0128"


def test_subjects_are_masked_like_message_bodies(
    client: TestClient, world: dict[str, Any], db: Session
) -> None:
    """A subject is customer text too: the inbox, the ticket page (title, heading, the
    contact's other tickets) and the chat queue show its PII masked; the ticket page's
    audited reveal shows it whole."""
    card = make_ticket(
        db,
        subject=f"银行卡{CARD}被冻结",
        team=world["general"],
        assignee=world["me"],
        contact=world["contact"],
    )
    chat = do_start_chat(
        db,
        contact_actor(world["contact"]),
        ChatStart(topic=ChatTopic.OTHER, text=f"卡号{CARD}收不到退款"),
    )
    do_request_human(db, contact_actor(world["contact"]), chat)
    db.commit()
    console_login(client, world["me"].email)

    inbox = client.get("/agent/inbox/all")
    assert inbox.status_code == 200
    assert CARD not in inbox.text
    assert f"银行卡{CARD_MASKED}被冻结" in rows_of(inbox.text)
    fragment = client.get("/agent/inbox/mine", headers={"HX-Request": "true"})
    assert CARD not in fragment.text and CARD_MASKED in fragment.text

    page = client.get(f"/agent/tickets/{card.number}")
    assert page.status_code == 200 and CARD not in page.text
    assert f"<title>#{card.number} 银行卡{CARD_MASKED}被冻结" in page.text
    assert re.search(rf'<h1 id="ticket-title">银行卡{re.escape(CARD_MASKED)}被冻结</h1>', page.text)
    other = client.get(f"/agent/tickets/{world['mine']}")  # the same contact's ticket
    assert CARD not in other.text and f"银行卡{CARD_MASKED}被冻结" in other.text

    chats = client.get("/agent/chats")
    assert chat.number in chats.text and CARD not in chats.text and CARD_MASKED in chats.text

    # The reveal (with the permission) shows the subject too, and says so in the audit.
    do_update_agent(db, SYSTEM, world["me"], can_view_sensitive=True)
    db.commit()
    client.app.state.kefu.principals.clear()  # type: ignore[attr-defined]
    assert CARD not in client.get(f"/agent/tickets/{card.number}").text  # masked by default
    revealed = client.get(f"/agent/tickets/{card.number}?reveal=1")
    assert revealed.status_code == 200
    assert f'<h1 id="ticket-title">银行卡{CARD}被冻结</h1>' in revealed.text
    audit = db.scalars(
        select(Event).where(Event.kind == "sensitive.revealed", Event.ticket_id == card.id)
    ).all()
    assert {tuple(e.data.get("fields", ())) for e in audit} >= {
        ("subject", "contact.name", "contact.email", "contact.phone")
    }
    assert any(e.data.get("contact_ids") == [world["contact"].id] for e in audit)
    assert all(e.actor_id == world["me"].id for e in audit)


# -- calls -----------------------------------------------------------------------------


def test_agents_log_calls_on_the_timeline(
    client: TestClient, world: dict[str, Any], db: Session
) -> None:
    headers = console_login(client, world["me"].email)
    url = f"/agent/tickets/{world['mine']}/calls"
    page = client.get(f"/agent/tickets/{world['mine']}")
    assert 'id="call-form"' in page.text and "记录通话" in page.text
    assert 'placeholder="138****8000"' in page.text  # the contact's phone, masked
    called = client.post(
        url,
        data={
            "direction": "outbound",
            "phone": "139 1234 5678",
            "duration": "9:26",
            "outcome": "answered",
            "summary": "已回拨：用户确认提币是本人操作，建议开启地址白名单。",
            "client_msg_id": "call-1",
        },
        headers=headers,
    )
    assert called.status_code == 200, called.text
    assert called.headers["HX-Trigger"] == "ticket-changed"
    call_item = called.text.split('class="msg note author-agent call"', 1)[1].split("</li>", 1)[0]
    assert "去电" in call_item and "已接通" in call_item and "通话 9:26" in call_item
    assert "139****5678" in call_item and "13912345678" not in called.text
    assert "已回拨：用户确认提币是本人操作" in call_item and "内部备注" in call_item
    again = client.post(
        url,
        data={
            "direction": "outbound",
            "outcome": "answered",
            "summary": "x",
            "client_msg_id": "call-1",
        },
        headers=headers,
    )
    assert again.status_code == 200
    # Missed, with nothing typed for the number: the contact's phone; secrets masked.
    words = "abandon ability able about above absent absorb abstract absurd abuse access accident"
    missed = client.post(
        url,
        data={"direction": "inbound", "outcome": "no_answer", "summary": f"用户念了：{words}"},
        headers=headers,
    )
    assert missed.status_code == 200
    assert "来电" in missed.text and "未接通" in missed.text and "138****8000" in missed.text

    ticket = db.scalar(select(Ticket).where(Ticket.number == world["mine"]))
    assert ticket is not None
    calls = db.scalars(
        select(Message).where(Message.ticket_id == ticket.id, Message.channel == Channel.PHONE)
    ).all()
    assert len(calls) == 2  # the resend was stored once
    first, second = sorted(calls, key=lambda m: m.seq)
    assert first.is_internal and second.is_internal  # a summary is for agents
    assert first.meta == {
        "kind": "call",
        "call": {
            "direction": "outbound",
            "outcome": "answered",
            "duration_seconds": 566,
            "phone": "13912345678",
        },
    }
    assert second.meta["call"]["phone"] == "13800138000"
    assert second.meta["call"]["duration_seconds"] == 0
    assert "abandon ability" not in second.body

    # Through the API the call is an internal phone message (the contact never gets it).
    token = make_token(db, world["me"])
    db.commit()
    api = client.get(f"/api/v1/tickets/{world['mine']}/messages", headers=auth(token))
    phone = [m for m in api.json()["items"] if m["channel"] == "phone"]
    assert [m["is_internal"] for m in phone] == [True, True]
    assert "13912345678" not in api.text

    # A reveal shows the number whole.
    do_update_agent(db, SYSTEM, world["me"], can_view_sensitive=True)
    db.commit()
    client.app.state.kefu.principals.clear()  # type: ignore[attr-defined]
    assert "13912345678" in client.get(f"/agent/tickets/{world['mine']}?reveal=1").text


def test_a_call_log_refuses_nonsense(
    client: TestClient, world: dict[str, Any], db: Session
) -> None:
    headers = console_login(client, world["me"].email)
    url = f"/agent/tickets/{world['mine']}/calls"
    good = {"direction": "inbound", "outcome": "answered", "summary": "用户咨询提币"}
    for bad in (
        {"duration": "abc"},
        {"duration": "25:00:00"},
        {"duration": "-5"},
        {"direction": "sideways"},
        {"outcome": "maybe"},
        {"summary": "   "},
        {"phone": "12"},
        {"phone": "电话"},
        {"summary": "字" * 100_001},
    ):
        r = client.post(url, data=good | bad, headers=headers)
        assert r.status_code == 422, (bad, r.status_code)
        assert 'role="alert"' in r.text
    assert (
        client.post(
            f"/agent/tickets/{world['theirs']}/calls", data=good, headers=headers
        ).status_code
        == 404
    )
    ticket = db.scalar(select(Ticket).where(Ticket.number == world["mine"]))
    assert ticket is not None
    assert not db.scalars(
        select(Message).where(Message.ticket_id == ticket.id, Message.channel == Channel.PHONE)
    ).all()
    with pytest.raises(PermissionDenied):
        do_log_call(
            db,
            contact_actor(world["contact"]),
            ticket,
            CallLog(direction=CallDirection.INBOUND, outcome=CallOutcome.ANSWERED, summary="x"),
        )
    # A closed ticket takes no more calls, like any message.
    do_change_status(db, SYSTEM, ticket, TicketStatus.SOLVED)
    do_change_status(db, SYSTEM, ticket, TicketStatus.CLOSED)
    db.commit()
    assert 'id="call-form"' not in client.get(f"/agent/tickets/{world['mine']}").text
    assert client.post(url, data=good, headers=headers).status_code == 409


# -- tags and tokens for admins ----------------------------------------------------------


def _admin_login(client: TestClient, db: Session) -> tuple[Any, dict[str, str]]:
    admin = make_agent(db, role=Role.ADMIN, password=PASSWORD)
    secret = pyotp.parse_uri(do_enroll_totp(db, SYSTEM, admin)).secret
    db.commit()
    return admin, console_login(client, admin.email, pyotp.TOTP(secret).now())


def _tags_of(db: Session, number: str) -> list[str]:
    db.expire_all()
    ticket = db.scalar(select(Ticket).where(Ticket.number == number))
    assert ticket is not None
    return ticket.tags


def test_admins_rename_and_delete_tags(
    client: TestClient, world: dict[str, Any], db: Session
) -> None:
    for number, tags in (
        (world["mine"], ["提币延迟", "提现"]),
        (world["loose"], ["提币延迟"]),
        (world["urgent"], ["提现", "vip"]),
    ):
        ticket = db.scalar(select(Ticket).where(Ticket.number == number))
        assert ticket is not None
        do_tag(db, SYSTEM, ticket, add=tags)
    supervisor = make_agent(db, role=Role.SUPERVISOR, password=PASSWORD)
    db.commit()
    admin, headers = _admin_login(client, db)
    page = client.get("/agent/admin/agents").text
    assert 'id="tags-admin"' in page and 'data-tag="提币延迟"' in page

    tagged = select(func.count()).select_from(Event).where(Event.kind == "ticket.tagged")
    before = db.scalar(tagged) or 0
    renamed = client.post(
        "/agent/admin/tags/rename",
        data={"tag": "提币延迟", "new_name": "  提现 "},  # into a tag in use: they merge
        headers=headers,
        follow_redirects=False,
    )
    assert renamed.status_code == 303, renamed.text
    assert _tags_of(db, world["mine"]) == ["提现"]
    assert _tags_of(db, world["loose"]) == ["提现"]
    assert _tags_of(db, world["urgent"]) == ["vip", "提现"]
    events = db.scalars(
        select(Event).where(Event.kind == "ticket.tagged").order_by(Event.id).offset(before)
    ).all()
    assert [(e.actor_id, e.data["added"], e.data["removed"]) for e in events] == [
        (admin.id, [], ["提币延迟"]),
        (admin.id, ["提现"], ["提币延迟"]),
    ]
    timeline = client.get(f"/agent/tickets/{world['loose']}").text
    assert "+提现" in timeline and "−提币延迟" in timeline

    client.post(
        "/agent/admin/tags/rename", data={"tag": "vip", "new_name": "VIP 客户"}, headers=headers
    )
    assert _tags_of(db, world["urgent"]) == ["vip 客户", "提现"]
    deleted = client.post(
        "/agent/admin/tags/delete", data={"tag": "提现"}, headers=headers, follow_redirects=False
    )
    assert deleted.status_code == 303
    assert [_tags_of(db, world[k]) for k in ("mine", "loose", "urgent")] == [[], [], ["vip 客户"]]
    assert "提现" not in client.get("/agent/admin/agents").text.split("使用中的标签")[1]
    assert db.scalar(tagged) == before + 6  # 2 + 1 renamed, 3 deleted
    for bad in ({"tag": "   ", "new_name": "x"}, {"tag": "vip 客户", "new_name": "字" * 65}):
        refused = client.post("/agent/admin/tags/rename", data=bad, headers=headers)
        assert refused.status_code == 422 and 'role="alert"' in refused.text

    # Supervisors and agents see the tags, not the controls, and are refused.
    client.post("/agent/logout", headers=headers)
    for who in (supervisor, world["me"]):
        other = console_login(client, who.email)
        assert 'id="tags-admin"' not in client.get("/agent/admin/agents").text
        for path, data in (
            ("/agent/admin/tags/rename", {"tag": "vip 客户", "new_name": "x"}),
            ("/agent/admin/tags/delete", {"tag": "vip 客户"}),
        ):
            assert client.post(path, data=data, headers=other).status_code == 403, (who, path)
        client.post("/agent/logout", headers=other)
    assert _tags_of(db, world["urgent"]) == ["vip 客户"]


def test_admins_see_and_revoke_every_agents_api_token(
    client: TestClient, world: dict[str, Any], db: Session
) -> None:
    mine = make_token(db, world["me"])
    theirs = make_token(db, world["other"], scopes=["read"])
    db.commit()
    admin, headers = _admin_login(client, db)
    page = client.get("/agent/admin/agents").text
    tokens = page.split('id="tokens-admin"', 1)[1].split("</table>", 1)[0]
    for agent, raw in ((world["me"], mine), (world["other"], theirs)):
        assert agent.name in tokens and agent.email in tokens
        assert raw[:11] in tokens and raw not in page  # the prefix, never the secret
    stored = db.scalars(select(ApiToken).order_by(ApiToken.id)).all()
    assert all(t.token_hash not in page for t in stored)
    theirs_id = next(t.id for t in stored if t.agent_id == world["other"].id)

    # An agent sees no one else's tokens and cannot revoke them, here or on their page.
    client.post("/agent/logout", headers=headers)
    agent_headers = console_login(client, world["me"].email)
    assert 'id="tokens-admin"' not in client.get("/agent/admin/agents").text
    assert (
        client.post(f"/agent/admin/tokens/{theirs_id}/revoke", headers=agent_headers).status_code
        == 403
    )
    assert (
        client.post(f"/agent/account/tokens/{theirs_id}/revoke", headers=agent_headers).status_code
        == 404
    )
    assert client.get("/api/v1/tickets", headers=auth(theirs)).status_code == 200
    client.post("/agent/logout", headers=agent_headers)

    headers = console_login(client, admin.email, pyotp.TOTP(admin.totp_secret).now())
    revoked = client.post(
        f"/agent/admin/tokens/{theirs_id}/revoke", headers=headers, follow_redirects=False
    )
    assert revoked.status_code == 303
    assert client.get("/api/v1/tickets", headers=auth(theirs)).status_code == 401
    assert client.get("/api/v1/tickets", headers=auth(mine)).status_code == 200
    audit = db.scalars(select(Event).where(Event.kind == "token.revoked")).one()
    assert audit.actor_id == admin.id
    assert audit.data == {"token_id": theirs_id, "agent_id": world["other"].id}
    row = client.get("/agent/admin/agents").text.split(f'data-token="{theirs_id}"', 1)[1]
    assert "已吊销" in row.split("</tr>", 1)[0]
    assert client.post("/agent/admin/tokens/99999999/revoke", headers=headers).status_code == 404
    assert client.post("/agent/admin/tokens/0/revoke", headers=headers).status_code == 422


def test_the_desk_page_costs_the_same_queries_with_many_tokens_and_tags(
    client: TestClient, world: dict[str, Any], db: Session, connection: Connection
) -> None:
    _admin_login(client, db)
    client.get("/agent/admin/agents")  # warm the session cache
    with count_queries(connection) as few:
        client.get("/agent/admin/agents")
    for i in range(12):
        agent = make_agent(db, teams=[world["general"]])
        make_token(db, agent)
        make_token(db, agent, scopes=["read"])
        make_ticket(db, subject=f"工单{i}", team=world["general"], tags=[f"标签{i}", "共用"])
    db.commit()
    with count_queries(connection) as many:
        page = client.get("/agent/admin/agents")
    rows = page.text.split('id="tokens-admin"', 1)[1].split("</table>", 1)[0]
    assert rows.count("data-token=") == 24
    assert len(many) == len(few), many


def test_supervisors_see_what_the_help_center_did_not_answer(
    client: TestClient, world: dict[str, Any], db: Session
) -> None:
    do_save_article(
        db, SYSTEM, ArticleData(title="提币手续费说明", body_md="按网络收取。"), article_id="kb-fee"
    )
    do_record_feedback(db, "kb-fee", helpful=False)
    do_log_search(db, "合约穿仓怎么赔付", "zh-CN", [])
    do_log_search(db, "合约穿仓怎么赔付", "zh-CN", [])
    do_log_search(db, "提币手续费", "zh-CN", ["kb-fee"])
    boss = make_agent(db, role=Role.SUPERVISOR, password=PASSWORD)
    db.commit()
    # Agents neither see the page nor its link.
    console_login(client, world["me"].email)
    assert "/agent/admin/helpcenter" not in client.get("/agent/inbox/mine").text
    assert client.get("/agent/admin/helpcenter").status_code == 403
    client.cookies.clear()
    console_login(client, boss.email)
    assert "/agent/admin/helpcenter" in client.get("/agent/inbox/mine").text
    page = client.get("/agent/admin/helpcenter")
    assert page.status_code == 200
    gaps = page.text.split('id="search-gaps"')[1].split("</table>")[0]
    assert "合约穿仓怎么赔付" in gaps and "<td>2</td>" in gaps
    assert "提币手续费" not in gaps  # it found something
    unhelpful = page.text.split('id="unhelpful"')[1].split("</table>")[0]
    assert 'href="/help/articles/kb-fee"' in unhelpful
