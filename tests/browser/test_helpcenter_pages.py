"""The public help center in a real browser: home, search as you type, an article with
feedback, and the contact form."""

from __future__ import annotations

from typing import Any

import pytest

from tests.browser.conftest import BACKENDS, SCREENSHOTS


def test_home_lists_the_six_categories(page: Any, live_server: str) -> None:
    page.goto(live_server + "/")
    assert page.url.endswith("/help")
    cards = page.locator(".category-card h2")
    assert cards.count() == 6
    names = cards.all_inner_texts()
    for name in ("账户注册", "身份认证", "充值提现", "交易规则", "安全设置", "客服与投诉"):
        assert any(name in n for n in names), names
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "help-home.png"), full_page=True)


def test_search_as_you_type_then_results_page(page: Any, live_server: str) -> None:
    page.goto(live_server + "/help")
    box = page.get_by_role("searchbox")
    box.press_sequentially("提币到错误", delay=30)
    suggestion = page.locator("#help-suggestions li a").first
    suggestion.wait_for(timeout=5000)
    assert suggestion.inner_text()
    box.press("Enter")
    page.wait_for_url("**/help/search?q=*")
    results = page.locator("ol.results li a")
    assert results.count() > 0
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "help-search.png"), full_page=True)


@pytest.mark.parametrize("live_server", BACKENDS, indirect=True)
def test_article_feedback_and_contact_path(page: Any, live_server: str) -> None:
    page.goto(live_server + "/help/search?q=账户被盗")
    page.locator("ol.results li a").first.click()
    page.wait_for_url("**/help/articles/*")
    assert page.locator("h1").inner_text()
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "help-article.png"), full_page=True)
    page.get_by_role("button", name="有帮助").click()
    page.locator(".feedback .thanks").wait_for()
    assert "感谢" in page.locator(".feedback").inner_text()
    page.get_by_role("link", name="联系客服").first.click()
    page.get_by_label("您的邮箱").fill("li.lei@example.com")
    page.get_by_label("问题类型").select_option("deposit_withdrawal")
    page.get_by_label("主题").fill("USDT 提币到错误网络")
    # Deflection: articles that may answer it show while the subject is typed, and open
    # in a new tab so the form keeps what was written.
    offered = page.locator("#help-suggestions li a").first
    offered.wait_for(timeout=5000)
    assert offered.get_attribute("target") == "_blank"
    assert "网络" in page.locator("#help-suggestions").inner_text()
    page.get_by_label("问题描述").fill("我把 USDT 提到了 BEP20 地址，TxID 见附件。")
    page.get_by_role("button", name="提交").click()
    ticket = page.locator("[data-ticket]")
    ticket.wait_for()
    assert ticket.get_attribute("data-ticket").startswith("K")


def test_mobile_layout_has_no_horizontal_scroll(page: Any, live_server: str) -> None:
    page.set_viewport_size({"width": 375, "height": 740})
    page.goto(live_server + "/help")
    overflow = page.evaluate(
        "document.documentElement.scrollWidth - document.documentElement.clientWidth"
    )
    assert overflow <= 0
