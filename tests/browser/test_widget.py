"""The chat widget (one <script>, here on the help center) in a customer's browser, with
an agent answering from the console in another browser context."""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

import pytest

from tests.browser.conftest import BACKENDS, HOST_PAGE, HOST_PAGE_PORT, SCREENSHOTS
from tests.browser.test_console import log_in


def start_chat(browser: Any, live_server: str, text: str) -> tuple[Any, list[str], str]:
    """A customer opens the widget on the help center and asks for a person: their
    page, the page errors seen so far (a list that keeps filling) and the ticket."""
    customer = browser.new_context(
        locale="zh-CN", viewport={"width": 1100, "height": 800}
    ).new_page()
    errors: list[str] = []
    customer.on("pageerror", lambda e: errors.append(str(e)))
    customer.goto(live_server + "/help")
    customer.get_by_role("button", name="在线客服").click()
    customer.get_by_label("咨询类型").select_option("other")
    customer.get_by_label("请描述您的问题").fill(text)
    customer.get_by_role("button", name="开始咨询").click()
    # Queued for a person: the widget says where the customer stands.
    customer.locator(".status").filter(has_text="客服").or_(
        customer.locator(".status").filter(has_text="排队")
    ).wait_for()
    number = customer.evaluate(
        "() => JSON.parse(localStorage.getItem('kefu:' + location.origin + ':ticket'))"
    )
    return customer, errors, number


@pytest.mark.parametrize("live_server", BACKENDS, indirect=True)
def test_a_customer_chats_from_the_widget_and_an_agent_answers(
    browser: Any,
    live_server: str,
) -> None:
    customer, errors, number = start_chat(browser, live_server, "转人工，我的提币一直没到账")
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


def test_the_widget_on_another_site_suggests_articles_and_sends_a_screenshot(
    browser: Any, live_server: str
) -> None:
    """The widget on the exchange's own page (another origin than kefu's) offers help-center
    articles while the question is typed, before any chat is opened; in the chat, a
    screenshot goes up and comes back across origins (KEFU_WIDGET_ORIGINS)."""
    page_html = (
        "<!doctype html><html lang='zh-CN'><head><meta charset='utf-8'><title>KX</title>"
        f"<script src='{live_server}/static/widget.js' defer></script></head>"
        "<body><h1>KX 交易所</h1></body></html>"
    ).encode()

    class Host(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.end_headers()
            self.wfile.write(page_html)

        def log_message(self, *args: Any) -> None:
            pass

    host = HTTPServer(("127.0.0.1", HOST_PAGE_PORT), Host)
    threading.Thread(target=host.serve_forever, daemon=True).start()
    try:
        customer = browser.new_context(locale="zh-CN").new_page()
        errors: list[str] = []
        customer.on("pageerror", lambda e: errors.append(str(e)))
        # localhost is another origin than kefu's 127.0.0.1.
        customer.goto(HOST_PAGE + "/")
        customer.get_by_role("button", name="在线客服").click()
        customer.get_by_label("请描述您的问题").fill("我的账户被盗了怎么办")
        suggestion = customer.locator(".suggest a", has_text="账户被盗怎么办")
        suggestion.wait_for()
        assert suggestion.get_attribute("href") == f"{live_server}/help/articles/kb-0047"
        assert customer.locator(".suggest a").count() <= 3
        # Clearing the question clears the suggestions; nothing was sent as a chat.
        customer.get_by_label("请描述您的问题").fill("")
        customer.locator(".suggest").wait_for(state="hidden")
        assert customer.locator(".msg").count() == 0

        customer.get_by_label("咨询类型").select_option("other")
        customer.get_by_label("请描述您的问题").fill("转人工，截图见下")
        customer.get_by_role("button", name="开始咨询").click()
        customer.locator(".msg.mine:not(.pending)", has_text="截图见下").wait_for()
        customer.locator("input[type=file]").set_input_files(
            {"name": "充值记录.png", "mimeType": "image/png", "buffer": _png(60)}
        )
        shown = customer.locator(".msg.mine:not(.pending) img.thumb")
        shown.wait_for()  # uploaded across origins, sent by its id, fetched back
        deadline = time.monotonic() + 10
        while not shown.evaluate("img => img.complete && img.naturalWidth > 0"):
            assert time.monotonic() < deadline, "the thumbnail did not load"
            customer.wait_for_timeout(100)
        assert errors == []
    finally:
        host.shutdown()
        host.server_close()


def _png(shade: int) -> bytes:
    """A small real PNG (the server sniffs the type from the bytes)."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    raw = b"".join(b"\x00" + bytes([shade, 90, 200]) * 24 for _ in range(16))
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", 24, 16, 8, 2, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(raw))
        + chunk(b"IEND", b"")
    )


@pytest.mark.parametrize("live_server", BACKENDS, indirect=True)
def test_a_customer_sends_a_screenshot_the_agent_sees_it_and_asks_for_the_transcript(
    browser: Any,
    live_server: str,
) -> None:
    customer, errors, number = start_chat(browser, live_server, "转人工，充值截图如下")
    agent = log_in(browser, live_server, "/agent/chats")
    agent.on("dialog", lambda d: d.accept())
    agent.get_by_label("状态").select_option("online")
    customer.locator(".status", has_text="王建国").wait_for()
    agent.goto(f"{live_server}/agent/tickets/{number}")
    agent.locator(".timeline .msg.in", has_text="充值截图如下").wait_for()

    # The anonymous customer picks a screenshot: uploaded with the visitor token, sent
    # by its id, shown as a thumbnail.
    customer.get_by_label("输入消息…（Enter 发送）").fill("这是充值记录")
    customer.locator("input[type=file]").set_input_files(
        {"name": "充值记录.png", "mimeType": "image/png", "buffer": _png(30)}
    )
    thumb = customer.locator(".msg.mine img.thumb")
    thumb.wait_for()
    shown = customer.locator(".msg.mine:not(.pending) img.thumb")
    shown.wait_for()
    # It really renders (the page's CSP must allow the blob: the widget shows it from).
    deadline = time.monotonic() + 10
    while not shown.evaluate("img => img.complete && img.naturalWidth > 0"):
        assert time.monotonic() < deadline, "the thumbnail did not load"
        customer.wait_for_timeout(100)

    # The agent's open ticket shows it as it arrives, and it downloads for the agent.
    link = agent.locator(".timeline .msg.in .files a", has_text="充值记录.png")
    link.wait_for()
    href = link.get_attribute("href")
    assert href is not None
    fetched = agent.evaluate(
        "async (u) => { const r = await fetch(u); return [r.status, r.headers.get('content-type')]; }",
        href,
    )
    assert fetched == [200, "image/png"]

    # A file the chat does not take is turned down, with the reason on screen.
    customer.locator("input[type=file]").set_input_files(
        {"name": "logs.zip", "mimeType": "application/zip", "buffer": b"PK\x05\x06" + b"\x00" * 18}
    )
    customer.locator(".status", has_text="仅支持图片").wait_for()

    # The transcript, asked for while the chat is live.
    customer.get_by_text("发送聊天记录到邮箱").click()
    customer.get_by_label("接收邮箱（已登录可留空）").fill("zhang.wei@example.com")
    customer.locator(".transcript-form button").click()
    customer.locator(".status", has_text="聊天记录将发送至").wait_for()
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    customer.screenshot(path=str(SCREENSHOTS / "chat-widget-screenshot.png"))
    assert errors == []
