"""Server-rendered pages in-process: status codes, language, escaping, limits. (The
journeys through them run in a real browser in tests/browser.)"""

from __future__ import annotations

import pytest
from sqlalchemy.orm import Session
from starlette.testclient import TestClient

from kefu.actions.articles import ArticleData, do_save_article
from kefu.actions.official_channels import do_add_official_channel
from kefu.domain.access import SYSTEM
from kefu.domain.helpcenter import ArticleStatus
from kefu.domain.verify import ChannelKind


@pytest.fixture
def content(db: Session) -> None:
    for i, (cat, title) in enumerate(
        [
            ("security", "账户被盗怎么办"),
            ("deposit_withdrawal", "充币未到账怎么办"),
            ("security", "如何绑定谷歌验证"),
        ]
    ):
        do_save_article(
            db,
            SYSTEM,
            ArticleData(
                title=title, body_md=f"第{i}篇正文。", category=cat, status=ArticleStatus.PUBLISHED
            ),
            article_id=f"p-{i}",
        )
    do_save_article(
        db,
        SYSTEM,
        ArticleData(title="related", body_md="x", related_ids=["p-0"]),
        article_id="p-rel",
    )
    do_add_official_channel(db, SYSTEM, kind=ChannelKind.DOMAIN, value="kx-exchange.example")
    db.commit()


def test_help_pages_render(client: TestClient, content: None) -> None:
    assert client.get("/", follow_redirects=False).headers["location"] == "/help"
    home = client.get("/help")
    assert home.status_code == 200
    assert "账户被盗怎么办" in home.text
    assert client.get("/help/category/security").status_code == 200
    assert client.get("/help/category/nope").status_code == 404
    faq = client.get("/help/faq")
    assert "<details>" in faq.text
    assert client.get("/help/articles/p-0").status_code == 200
    related = client.get("/help/articles/p-rel")
    assert "/help/articles/p-0" in related.text
    assert client.get("/help/articles/missing").status_code == 404
    results = client.get("/help/search", params={"q": "被盗"})
    assert "账户被盗怎么办" in results.text
    empty = client.get("/help/search", params={"q": "<b>不存在的问题xyz</b>"})
    assert "&lt;b&gt;" in empty.text
    assert "<b>不存在" not in empty.text


def test_language_switch_and_security_headers(client: TestClient, content: None) -> None:
    en = client.get("/help?lang=en")
    assert "How can we help?" in en.text
    assert en.cookies.get("kefu_lang") == "en"
    assert "How can we help?" in client.get("/help").text
    client.cookies.clear()
    client.cookies.set("kefu_lang", "zh-CN")
    zh = client.get("/help", headers={"Accept-Language": "en"})
    assert "有什么可以帮您" in zh.text
    assert zh.headers["x-content-type-options"] == "nosniff"
    assert "frame-ancestors 'none'" in zh.headers["content-security-policy"]


def test_feedback_form_posts_and_redirects(client: TestClient, content: None) -> None:
    r = client.post("/help/articles/p-1/feedback", data={"helpful": "no"}, follow_redirects=False)
    assert r.status_code == 303
    assert r.headers["location"].endswith("?thanks=no")
    assert "抱歉" in client.get(r.headers["location"]).text
    assert (
        client.post("/help/articles/missing/feedback", data={"helpful": "yes"}).status_code == 404
    )
    assert client.post("/help/articles/p-1/feedback", data={"helpful": "maybe"}).status_code == 422


def test_verify_page(client: TestClient, content: None) -> None:
    assert "这是官方渠道吗" in client.get("/verify").text
    ok = client.get("/verify", params={"q": "https://kx-exchange.example/"})
    assert 'data-verdict="official"' in ok.text
    codes = [client.get("/verify", params={"q": f"a{i}.example"}).status_code for i in range(30)]
    assert codes[-1] == 429


def test_contact_form_is_rate_limited(client: TestClient) -> None:
    data = {"email": "a@example.com", "subject": "问题", "body": "描述"}
    codes = [client.post("/help/contact", data=data).status_code for _ in range(11)]
    assert codes[:10] == [200] * 10
    assert codes[10] == 429
