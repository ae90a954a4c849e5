"""The help center through the API and the CLI: articles, search, feedback, analytics."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.orm import Session
from starlette.testclient import TestClient

from kefu.actions.articles import ArticleData, do_save_article
from kefu.domain.access import SYSTEM, Role
from kefu.domain.helpcenter import ArticleStatus
from tests.factories import auth, make_agent, make_team, make_ticket, make_token


def publish(db: Session, article_id: str, title: str, body: str = "", **kw: Any) -> None:
    do_save_article(
        db,
        SYSTEM,
        ArticleData(title=title, body_md=body, status=ArticleStatus.PUBLISHED, **kw),
        article_id=article_id,
    )


@pytest.fixture
def articles(db: Session) -> None:
    publish(
        db,
        "kb-1",
        "如何提现到银行卡",
        "进入**资产**页面，选择提现。",
        category="deposit_withdrawal",
    )
    publish(db, "kb-2", "充币未到账怎么办", "请提供 TxID 与网络。", category="deposit_withdrawal")
    publish(
        db, "kb-3", "账户被盗怎么办", "立即冻结账户，修改密码，重置谷歌验证。", category="security"
    )
    publish(db, "kb-4", "How to reset 2FA", "Contact support.", locale="en", category="security")
    do_save_article(
        db,
        SYSTEM,
        ArticleData(title="草稿：新上币规则", status=ArticleStatus.DRAFT),
        article_id="kb-draft",
    )
    db.commit()


def search(client: TestClient, q: str, **params: Any) -> list[dict[str, Any]]:
    r = client.get("/api/v1/helpcenter/search", params={"q": q, **params})
    assert r.status_code == 200, r.text
    results: list[dict[str, Any]] = r.json()["results"]
    return results


def test_search_finds_words_inside_chinese_text(client: TestClient, articles: None) -> None:
    hits = search(client, "提现")
    assert hits[0]["id"] == "kb-1"
    assert set(hits[0]) == {"id", "title", "score", "url"}
    assert hits[0]["url"] == "/help/articles/kb-1"
    assert search(client, "提幣到銀行卡")[0]["id"] == "kb-1"  # Traditional folds to Simplified
    assert search(client, "被盗了")[0]["id"] == "kb-3"
    assert [h["id"] for h in search(client, "2FA", locale="en")] == ["kb-4"]
    # Drafts are not searchable.
    assert "kb-draft" not in [h["id"] for h in search(client, "上币规则")]


@pytest.mark.parametrize(
    "q",
    [
        "",
        "   ",
        "x" * 10_000,
        "🚀🚀🚀",
        '" OR * NEAR(',
        "'; DROP TABLE articles; --",
        "提现 withdraw ٣ ñ",
    ],
)
def test_hostile_queries_answer_a_list(client: TestClient, articles: None, q: str) -> None:
    assert isinstance(search(client, q), list)


def test_article_pages_and_sanitised_html(client: TestClient, db: Session) -> None:
    publish(
        db,
        "kb-x",
        "危险文章",
        "<script>alert(1)</script>[点我](javascript:alert(1)) <img src=x onerror=alert(1)>\n\n| a | b |\n|---|---|\n| 1 | 2 |",
    )
    db.commit()
    article = client.get("/api/v1/helpcenter/articles/kb-x").json()
    html = article["body_html"]
    assert "<script" not in html
    assert 'href="javascript:' not in html
    assert "<img" not in html  # the raw tag is shown as text, never as markup
    assert "&lt;script&gt;" in html
    assert "<table>" in html
    page = client.get("/help/articles/kb-x")
    assert page.status_code == 200
    assert "<script>alert" not in page.text
    assert "default-src 'self'" in page.headers["content-security-policy"]


def test_drafts_are_for_agents_only(client: TestClient, articles: None, db: Session) -> None:
    assert client.get("/api/v1/helpcenter/articles/kb-draft").status_code == 404
    assert client.get("/help/articles/kb-draft").status_code == 404
    agent = make_agent(db)
    db.commit()
    h = auth(make_token(db, agent))
    assert client.get("/api/v1/helpcenter/admin/articles/kb-draft", headers=h).status_code == 200
    assert client.get("/api/v1/helpcenter/admin/articles/kb-draft").status_code == 401


def test_agents_write_with_history(client: TestClient, db: Session) -> None:
    agent = make_agent(db)
    db.commit()
    h = auth(make_token(db, agent))
    created = client.post(
        "/api/v1/helpcenter/admin/articles",
        json={
            "title": "提币地址白名单",
            "body": "开启后只能提币到白名单地址。",
            "category": "security",
        },
        headers=h,
    )
    assert created.status_code == 201, created.text
    art = created.json()
    assert art["status"] == "draft"
    url = f"/api/v1/helpcenter/admin/articles/{art['id']}"
    saved = client.put(
        url,
        json={
            "title": "提币地址白名单",
            "body": "开启后 24 小时内不能修改。",
            "category": "security",
            "status": "published",
        },
        headers=h,
    )
    assert saved.json()["revision"] == 2
    revisions = client.get(url + "/revisions", headers=h).json()["items"]
    assert [r["revision"] for r in revisions] == [2, 1]
    assert revisions[1]["body"] == "开启后只能提币到白名单地址。"
    assert client.get(f"/api/v1/helpcenter/articles/{art['id']}").status_code == 200
    assert search(client, "白名单")[0]["id"] == art["id"]
    bad = client.put(url, json={"title": "x", "category": "nope"}, headers=h)
    assert bad.status_code == 422


def test_agents_order_articles_within_a_category(client: TestClient, db: Session) -> None:
    for article_id, title, position in (
        ("kb-o1", "甲：最后看", 30),
        ("kb-o2", "乙：先看这篇", 10),
        ("kb-o3", "丙：其次", 20),
    ):
        publish(db, article_id, title, category="kyc", position=position)
    db.commit()
    listed = client.get("/api/v1/helpcenter/articles", params={"category": "kyc"}).json()
    assert [a["id"] for a in listed["items"]] == ["kb-o2", "kb-o3", "kb-o1"]
    page = client.get("/help/category/kyc").text
    assert page.index("乙：先看这篇") < page.index("丙：其次") < page.index("甲：最后看")


def test_translations_are_linked_one_per_language(client: TestClient, db: Session) -> None:
    agent = make_agent(db)
    db.commit()
    h = auth(make_token(db, agent))
    api = "/api/v1/helpcenter/admin/articles"

    def create(**body: Any) -> Any:
        return client.post(api, json={"status": "published", **body}, headers=h)

    zh = create(title="账户被盗怎么办", body="立即冻结账户。", category="security").json()
    en = create(
        title="My account was stolen", body="Freeze it now.", locale="en", translation_of=zh["id"]
    )
    assert en.status_code == 201, en.text
    en_id = en.json()["id"]
    assert en.json()["translations"] == {"zh-CN": zh["id"]}
    assert client.get(f"{api}/{zh['id']}", headers=h).json()["translations"] == {"en": en_id}
    # One article per language in a group; no article translates itself or a stranger.
    for body, field in (
        ({"title": "Stolen, again", "locale": "en", "translation_of": zh["id"]}, "translation_of"),
        ({"title": "Stolen", "locale": "en", "translation_of": "kb-nope"}, "translation_of"),
    ):
        r = create(**body)
        assert r.status_code == 422, r.text
        assert r.headers["content-type"].startswith("application/problem+json")
        assert r.json()["field"] == field
    itself = client.put(
        f"{api}/{en_id}",
        json={"title": "x", "locale": "en", "translation_of": en_id},
        headers=h,
    )
    assert itself.status_code == 422
    # Moving the English article to Chinese would give the group two Chinese versions.
    clash = client.put(f"{api}/{en_id}", json={"title": "x", "locale": "zh-CN"}, headers=h)
    assert clash.status_code == 422

    # The public page names the other language, and the language switch goes there.
    page = client.get(f"/help/articles/{zh['id']}")
    assert f'hreflang="en" href="/help/articles/{en_id}?lang=en"' in page.text
    assert "其他语言版本" in page.text
    switched = client.get(f"/help/articles/{zh['id']}?lang=en", follow_redirects=False)
    assert switched.status_code == 303
    assert switched.headers["location"] == f"/help/articles/{en_id}?lang=en"
    assert "Freeze it now." in client.get(switched.headers["location"]).text
    # A draft translation is not offered to readers.
    fr = client.put(
        f"{api}/{en_id}",
        json={"title": "My account was stolen", "locale": "en", "status": "draft"},
        headers=h,
    )
    assert fr.status_code == 200
    assert client.get(f"/api/v1/helpcenter/articles/{zh['id']}").json()["translations"] == {}
    assert client.get(f"/help/articles/{zh['id']}?lang=en").status_code == 200


def test_feedback_and_analytics(client: TestClient, articles: None, db: Session) -> None:
    for helpful in (True, False, False):
        r = client.post("/api/v1/helpcenter/articles/kb-2/feedback", json={"helpful": helpful})
        assert r.status_code == 204
    assert (
        client.post(
            "/api/v1/helpcenter/articles/kb-draft/feedback", json={"helpful": True}
        ).status_code
        == 404
    )
    search(client, "合约爆仓怎么赔偿")  # nothing matches
    search(client, "合约爆仓怎么赔偿")
    search(client, "提", suggest=True)  # typeahead is not logged
    supervisor = make_agent(db, role=Role.SUPERVISOR)
    agent = make_agent(db)
    db.commit()
    report = client.get(
        "/api/v1/helpcenter/admin/analytics", headers=auth(make_token(db, supervisor))
    )
    assert report.status_code == 200
    data = report.json()
    assert data["unhelpful_articles"][0]["id"] == "kb-2"
    gaps = {g["query"]: g["count"] for g in data["searches_without_results"]}
    assert gaps.get("合约爆仓怎么赔偿") == 2
    assert "提" not in gaps
    assert (
        client.get(
            "/api/v1/helpcenter/admin/analytics", headers=auth(make_token(db, agent))
        ).status_code
        == 403
    )


def test_agents_see_suggested_articles_beside_a_ticket(
    client: TestClient, articles: None, db: Session
) -> None:
    team = make_team(db)
    agent = make_agent(db, teams=[team])
    ticket = make_ticket(db, subject="我的USDT充币一直未到账", team=team)
    db.commit()
    r = client.get(
        f"/api/v1/tickets/{ticket.number}/suggested-articles", headers=auth(make_token(db, agent))
    )
    assert r.status_code == 200
    assert r.json()["results"][0]["id"] == "kb-2"


def test_contact_form_creates_a_ticket_for_the_contact(client: TestClient, db: Session) -> None:
    page = client.get("/help/contact")
    assert "联系客服" in page.text
    r = client.post(
        "/help/contact",
        data={
            "email": "ke.hu@example.com",
            "subject": "账户被盗了",
            "body": "有人登录了我的账户",
            "topic": "account_stolen",
        },
    )
    assert r.status_code == 200
    assert "工单号" in r.text
    admin = make_agent(db, role=Role.ADMIN)
    db.commit()
    tickets = client.get("/api/v1/tickets", headers=auth(make_token(db, admin))).json()["items"]
    assert tickets[0]["kind"] == "account_security"
    assert tickets[0]["priority"] == "urgent"
    assert tickets[0]["channel"] == "web"
    msgs = client.get(
        f"/api/v1/tickets/{tickets[0]['number']}/messages", headers=auth(make_token(db, admin))
    ).json()
    assert msgs["items"][0]["author"]["type"] == "contact"
    bad = client.post("/help/contact", data={"email": "not-an-email", "subject": "x", "body": "y"})
    assert bad.status_code == 422


def test_kb_import_is_idempotent_and_keeps_ids(tmp_path: Path) -> None:
    env = {"KEFU_DATA_DIR": str(tmp_path), "PATH": "/usr/bin:/bin"}

    def kefu(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "kefu.cli", *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )

    kb = tmp_path / "kb.jsonl"
    kb.write_text(
        "\n".join(
            json.dumps(x, ensure_ascii=False)
            for x in [
                # A translation may come before the article it translates.
                {
                    "id": "faq-1-en",
                    "question": "How long does a withdrawal take",
                    "locale": "en",
                    "translation_of": "faq-1",
                },
                {"id": "faq-1", "question": "提现多久到账", "answer": None},
                {
                    "id": "faq-2",
                    "title": "如何开启谷歌验证",
                    "body": "进入安全设置。",
                    "category": "security",
                    "locale": "zh-CN",
                },
                {
                    "id": 3,
                    "question": "Withdrawal fees",
                    "answer": "See the fee page.",
                    "locale": "en",
                },
            ]
        )
        + "\n",
        encoding="utf-8",
    )
    assert kefu("migrate").returncode == 0
    first = kefu("kb", "import", str(kb))
    assert first.returncode == 0, first.stderr
    assert "4 created, 0 updated, 0 unchanged" in first.stdout
    assert "4/4" in first.stderr  # the progress line counts against the file's total
    again = kefu("kb", "import", str(kb))
    assert "0 created, 0 updated, 4 unchanged" in again.stdout
    exported = [json.loads(line) for line in kefu("kb", "export").stdout.splitlines()]
    assert [e["id"] for e in exported] == ["3", "faq-1", "faq-1-en", "faq-2"]
    assert exported[3]["category"] == "security"
    assert exported[2]["translation_of"] == "faq-1"
    assert "translation_of" not in exported[1]
    broken = tmp_path / "broken.jsonl"
    broken.write_text('{"id": "x"}\nnot json\n', encoding="utf-8")
    failed = kefu("kb", "import", str(broken))
    assert failed.returncode == 2
    assert "line 1" in failed.stderr
