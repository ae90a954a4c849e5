"""Calls on the ticket timeline, in Debian's headless Chromium against `kefu serve` with
the demo data: the demo's logged calls show as calls, and an agent logs a new one."""

from __future__ import annotations

import re
from typing import Any

from tests.browser.test_console_keyboard import UNLABELLED, open_console


def test_log_a_call_from_the_ticket_page(browser: Any, live_server: str) -> None:
    page = open_console(browser, live_server, "/agent/inbox/all?channel=phone")
    page.locator("#inbox-rows a.subject", has_text="来电：账户被盗").first.click()
    page.wait_for_url(re.compile(r"/agent/tickets/K\d+$"))

    # The demo's call: incoming, answered, 9:26, the contact's number masked.
    logged = page.locator("#timeline li.msg.call").first
    assert "来电" in logged.inner_text() and "已接通" in logged.inner_text()
    assert "通话 9:26" in logged.inner_text()
    assert "138****0007" in logged.inner_text()
    assert "13800130007" not in page.content()

    before = page.locator("#timeline li.msg.call").count()
    page.locator("#call-log summary").click()
    assert page.evaluate(UNLABELLED) == []
    page.get_by_label("去电").check()
    page.locator("#call-duration").fill("3:05")
    page.locator("#call-outcome").select_option("voicemail")
    page.locator("#call-summary").fill("回拨确认协查进度，用户未接，已留言请其回电。")
    page.locator("#call-save").click()

    page.wait_for_function(
        f"() => document.querySelectorAll('#timeline li.msg.call').length === {before + 1}"
    )
    newest = page.locator("#timeline li.msg.call").last
    text = newest.inner_text()
    assert "去电" in text and "留言" in text and "通话 3:05" in text and "138****0007" in text
    assert "内部备注" in text
    # The form is ready for the next call: empty and folded away.
    assert page.locator("#call-summary").input_value() == ""
    assert page.locator("#call-log").get_attribute("open") is None
    assert page.errors == []
