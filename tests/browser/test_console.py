"""The agent console's main journeys in Debian's headless Chromium against `kefu serve`
with the demo data: log in with TOTP, work an email ticket (reply, macro, note, assign,
solve), and answer a chat while the customer's own browser receives it live."""

from __future__ import annotations

import re
from typing import Any

import pyotp
import pytest

from kefu.demo.load import DEMO_ADMIN_TOTP
from tests.browser.conftest import BACKENDS, SCREENSHOTS

ADMIN = "admin@kx-exchange.example"
ADMIN_PASSWORD = "kefu-demo-admin"  # the demo's published login


def log_in(browser: Any, base: str, path: str) -> Any:
    context = browser.new_context(locale="zh-CN", viewport={"width": 1280, "height": 860})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.errors = errors
    page.goto(base + path)
    assert "/agent/login" in page.url
    page.locator("[autocomplete=username]").fill(ADMIN)
    page.locator("[autocomplete=current-password]").fill(ADMIN_PASSWORD)
    page.locator("[autocomplete=one-time-code]").fill(pyotp.TOTP(DEMO_ADMIN_TOTP).now())
    page.get_by_role("button", name="登录").click()
    page.wait_for_url(re.compile(re.escape(path) + "$"))
    return page


@pytest.mark.parametrize("live_server", BACKENDS, indirect=True)
def test_work_an_email_ticket(browser: Any, live_server: str) -> None:
    page = log_in(browser, live_server, "/agent/inbox/all")
    page.get_by_role("heading", name="全部工单").wait_for()
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "console-inbox.png"))

    # The open email tickets, by the filters; open the first.
    page.get_by_label("状态").nth(1).select_option("open")
    page.get_by_label("渠道").select_option("email")
    page.get_by_role("button", name="筛选").click()
    page.wait_for_url(re.compile(r"status=open.*channel=email"))
    first = page.locator("#inbox-rows a.subject").first
    number = first.inner_text().split()[0].lstrip("#")
    first.click()
    page.wait_for_url(re.compile(rf"/agent/tickets/{number}$"))
    assert "通过邮件" in page.locator("#tab-reply").inner_text()

    # A reply, sent by email (through the outbox), appears in the timeline.
    page.locator("#composer-body").fill("您好，我们已经收到您的邮件，正在核实。")
    page.get_by_role("button", name="发送").click()
    page.locator(".timeline .msg.out", has_text="正在核实").wait_for()
    assert page.locator("#composer-body").input_value() == ""

    # A macro fills the composer with this ticket's number.
    page.get_by_label("快捷回复").select_option(label="结束语")
    page.wait_for_function(
        "n => document.getElementById('composer-body').value.includes(n)", arg=number
    )
    assert "感谢您的耐心与配合" in page.locator("#composer-body").input_value()
    page.get_by_role("button", name="发送").click()
    page.locator(".timeline .msg.out", has_text="感谢您的耐心与配合").wait_for()

    # An internal note, marked as such.
    page.keyboard.press("Escape")
    page.keyboard.press("n")
    assert page.locator("#composer").get_attribute("data-mode") == "note"
    page.locator("#composer-body").fill("内部：已核对链上记录")
    page.keyboard.press("Control+Enter")
    page.locator(".timeline .msg.note", has_text="已核对链上记录").wait_for()

    # Assign to 李娜, then solve; both show in the history.
    page.locator("#field-assignee").select_option(label="李娜")
    page.get_by_role("button", name="保存").click()
    page.locator(".timeline .event", has_text="将工单分配给 李娜").wait_for()
    page.evaluate("window.scrollTo(0, 0)")
    page.screenshot(path=str(SCREENSHOTS / "console-ticket.png"))
    page.get_by_role("button", name="解决").click()
    page.locator(".timeline .event", has_text="已解决").wait_for()
    assert page.errors == []


# The customer's side: the chat protocol spoken from a page in their own browser.
CUSTOMER_JS = """
() => new Promise((resolve, reject) => {
  const ws = new WebSocket(location.origin.replace('http', 'ws') + '/api/v1/chat/ws');
  window.kefuFrames = [];
  window.kefuSocket = ws;
  ws.onopen = () => ws.send(JSON.stringify({type: 'hello', locale: 'zh-CN'}));
  ws.onmessage = (ev) => {
    const f = JSON.parse(ev.data);
    window.kefuFrames.push(f);
    if (f.type === 'welcome') {
      ws.send(JSON.stringify({type: 'start', topic: 'other', text: '转人工，我要找客服', id: 'c1'}));
    }
    if (f.type === 'started') resolve(f.ticket);
    if (f.type === 'error') reject(new Error(f.message));
  };
})
"""


def frames(page: Any) -> list[dict[str, Any]]:
    result: list[dict[str, Any]] = page.evaluate("() => window.kefuFrames")
    return result


@pytest.mark.parametrize("live_server", BACKENDS, indirect=True)
def test_answer_a_chat_while_the_customer_watches(browser: Any, live_server: str) -> None:
    customer = browser.new_context(locale="zh-CN").new_page()
    customer.goto(live_server + "/help")
    number = customer.evaluate(CUSTOMER_JS)

    agent = log_in(browser, live_server, "/agent/chats")
    agent.on("dialog", lambda d: d.accept())  # "end this chat?"
    agent.locator("#chat-lists").get_by_text(number).wait_for()
    agent.get_by_label("状态").select_option("online")  # routing gives the chat to the admin
    customer.wait_for_function(
        "() => window.kefuFrames.some(f => f.type === 'state' && f.chat_state === 'active')"
    )
    agent.goto(f"{live_server}/agent/tickets/{number}")
    assert "在会话中" in agent.locator("#tab-reply").inner_text()

    agent.locator("#composer-body").fill("您好，我是客服王建国，请问有什么可以帮您？")
    agent.get_by_role("button", name="发送").click()
    customer.wait_for_function(
        "() => window.kefuFrames.some(f => f.type === 'message' && f.body.includes('王建国'))"
    )

    agent.get_by_role("tab", name="内部备注").click()
    agent.locator("#composer-body").fill("备注：客户情绪稳定")
    agent.get_by_role("button", name="发送").click()
    agent.locator(".timeline .msg.note", has_text="客户情绪稳定").wait_for()

    # The customer types and writes: the console shows both without a reload.
    customer.evaluate(
        "n => window.kefuSocket.send(JSON.stringify({type: 'typing', ticket: n}))", number
    )
    agent.locator("#typing", has_text="客户正在输入").wait_for()
    customer.evaluate(
        "n => window.kefuSocket.send(JSON.stringify("
        "{type: 'msg', ticket: n, text: '我的提币还没到账', id: 'c2'}))",
        number,
    )
    agent.locator(".timeline .msg.in", has_text="我的提币还没到账").wait_for()

    # The note never reached the customer's browser.
    assert not [f for f in frames(customer) if "客户情绪稳定" in str(f.get("body", ""))]
    agent.get_by_role("button", name="结束会话").click()
    customer.wait_for_function(
        "() => window.kefuFrames.some(f => f.type === 'state' && f.chat_state === 'ended')"
    )
    assert agent.errors == []
