"""The public 防骗验证 page in a real browser."""

from __future__ import annotations

from typing import Any

import pytest

from tests.browser.conftest import BACKENDS, SCREENSHOTS


def check(page: Any, base: str, query: str) -> Any:
    page.goto(base + "/verify")
    page.get_by_label("网址、邮箱、电话或账号").fill(query)
    page.get_by_role("button", name="验证").click()
    verdict = page.locator("[data-verdict]")
    verdict.wait_for()
    return verdict


@pytest.mark.parametrize("live_server", BACKENDS, indirect=True)
def test_official_impersonation_and_unknown(page: Any, live_server: str) -> None:
    official = check(page, live_server, "https://www.kx-exchange.example/zh-CN")
    assert official.get_attribute("data-verdict") == "official"
    assert "官方渠道" in official.inner_text()

    fake = check(page, live_server, "t.me/KXExchange_0fficial")
    assert fake.get_attribute("data-verdict") == "impersonation"
    text = fake.inner_text()
    assert "仿冒" in text
    assert "冻结账户" in text  # tells the customer what to do
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "verify-impersonation.png"), full_page=True)

    unknown = check(page, live_server, "+1 555 010 9999")
    assert unknown.get_attribute("data-verdict") == "unknown"
    assert "诈骗" in unknown.inner_text()


def test_query_is_escaped_not_executed(page: Any, live_server: str) -> None:
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    verdict = check(page, live_server, "<img src=x onerror=alert(1)>")
    assert verdict.get_attribute("data-verdict") == "unknown"
    assert "<img src=x onerror=alert(1)>" in page.locator(".checked code").inner_text()
    assert dialogs == []


def test_english_switch(page: Any, live_server: str) -> None:
    page.goto(live_server + "/verify?lang=en")
    assert page.get_by_role("heading", level=1).inner_text() == "Is this channel official?"
    page.goto(live_server + "/verify")  # the choice is remembered
    assert page.locator("html").get_attribute("lang") == "en"
