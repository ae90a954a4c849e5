"""The chat widget (one <script>, here on the help center) in a customer's browser, with
an agent answering from the console in another browser context."""

from __future__ import annotations

from typing import Any

from tests.browser.conftest import SCREENSHOTS
from tests.browser.test_console import log_in


def test_a_customer_chats_from_the_widget_and_an_agent_answers(
    browser: Any,
    live_server: str,
) -> None:
    customer = browser.new_context(
        locale="zh-CN", viewport={"width": 1100, "height": 800}
    ).new_page()
    errors: list[str] = []
    customer.on("pageerror", lambda e: errors.append(str(e)))
    customer.goto(live_server + "/help")
    customer.get_by_role("button", name="在线客服").click()
    customer.get_by_label("咨询类型").select_option("other")
    customer.get_by_label("请描述您的问题").fill("转人工，我的提币一直没到账")
    customer.get_by_role("button", name="开始咨询").click()
    # Queued for a person: the widget says where the customer stands.
    customer.locator(".status").filter(has_text="客服").or_(
        customer.locator(".status").filter(has_text="排队")
    ).wait_for()
    number = customer.evaluate(
        "() => JSON.parse(localStorage.getItem('kefu:' + location.origin + ':ticket'))"
    )
    assert number and number.startswith("K")

    agent = log_in(browser, live_server, "/agent/chats")
    agent.on("dialog", lambda d: d.accept())
    agent.get_by_label("状态").select_option("online")
    customer.locator(".status", has_text="王建国").wait_for()

    agent.goto(f"{live_server}/agent/tickets/{number}")
    agent.locator("#composer-body").fill("您好，我是王建国，马上为您查询。")
    agent.get_by_role("button", name="发送").click()
    customer.locator(".msg.agent", has_text="马上为您查询").wait_for()

    box = customer.get_by_label("输入消息…（Enter 发送）")
    box.fill("好的，TxID 是 0xabc")
    box.press("Enter")
    agent.locator(".timeline .msg.in", has_text="TxID 是 0xabc").wait_for()
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    customer.screenshot(path=str(SCREENSHOTS / "chat-widget.png"))

    # A reload brings the conversation back, each message once.
    customer.reload()
    customer.locator(".msg.agent", has_text="马上为您查询").wait_for()
    assert customer.locator(".msg", has_text="马上为您查询").count() == 1

    agent.get_by_role("button", name="结束会话").click()
    customer.get_by_text("请为本次服务评分").wait_for()
    customer.locator("fieldset.stars").first.get_by_label("5").check()
    customer.get_by_role("button", name="提交评价").click()
    customer.get_by_text("感谢您的评价！").wait_for()
    agent.goto(f"{live_server}/agent/tickets/{number}")
    agent.locator(".timeline .event", has_text="评价了本次服务 5/5").wait_for()
    assert errors == []
