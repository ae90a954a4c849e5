"""The console by keyboard, the collision banner, the suggested articles and the tablet
layout, in Debian's headless Chromium against `kefu serve` with the demo data."""

from __future__ import annotations

import re
from typing import Any

import pyotp

from kefu.demo.load import DEMO_ADMIN_TOTP
from tests.browser.test_console import ADMIN, ADMIN_PASSWORD

SUPERVISOR = ("chen.jing@kx-exchange.example", "kefu-demo-chenjing")  # 陈静, no 2FA


def open_console(
    browser: Any,
    base: str,
    path: str,
    *,
    who: tuple[str, str] = (ADMIN, ADMIN_PASSWORD),
    width: int = 1280,
) -> Any:
    context = browser.new_context(locale="zh-CN", viewport={"width": width, "height": 860})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.errors = errors
    page.goto(base + path)
    page.locator("#email").fill(who[0])
    page.locator("#password").fill(who[1])
    if who[0] == ADMIN:
        page.locator("#totp").fill(pyotp.TOTP(DEMO_ADMIN_TOTP).now())
    page.get_by_role("button", name="登录").click()
    page.wait_for_url(re.compile(re.escape(path) + "$"))
    return page


def focused_id(page: Any) -> str:
    result: str = page.evaluate("() => document.activeElement.id")
    return result


def cursor_number(page: Any) -> str:
    result: str = page.locator("#inbox-rows tr.row.cursor").get_attribute("data-ticket")
    return result


def test_the_keyboard_drives_the_inbox_and_the_ticket(browser: Any, live_server: str) -> None:
    page = open_console(browser, live_server, "/agent/inbox/all?status=open")
    numbers = page.locator("#inbox-rows tr.row").evaluate_all(
        "rows => rows.map(r => r.dataset.ticket)"
    )
    assert len(numbers) >= 3

    # j/k move the selection, and the focus with it.
    page.keyboard.press("j")
    assert cursor_number(page) == numbers[0]
    page.keyboard.press("j")
    page.keyboard.press("j")
    assert cursor_number(page) == numbers[2]
    page.keyboard.press("k")
    assert cursor_number(page) == numbers[1]
    assert page.evaluate("() => document.activeElement.closest('tr').dataset.ticket") == numbers[1]

    # ? opens the help; while it is open the inbox keys do nothing.
    page.keyboard.press("?")
    help_dialog = page.locator("#help")
    help_dialog.wait_for(state="visible")
    assert "键盘快捷键" in help_dialog.inner_text()
    page.keyboard.press("j")
    assert cursor_number(page) == numbers[1]
    page.keyboard.press("Escape")
    help_dialog.wait_for(state="hidden")

    # / goes to the search box; Escape leaves it, and the keys work again.
    page.keyboard.press("/")
    assert focused_id(page) == "filter-q"
    page.keyboard.press("Escape")
    assert focused_id(page) != "filter-q"
    page.keyboard.press("j")
    assert cursor_number(page) == numbers[2]

    # Enter opens the selected ticket.
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(rf"/agent/tickets/{numbers[2]}$"))

    # r and n focus the composer as a reply or an internal note.
    page.keyboard.press("n")
    assert focused_id(page) == "composer-body"
    assert page.locator("#composer").get_attribute("data-mode") == "note"
    assert page.locator("#composer-internal").input_value() == "true"
    assert page.locator("#composer-body").input_value() == ""  # the key was not typed
    page.keyboard.press("Escape")
    page.keyboard.press("r")
    assert focused_id(page) == "composer-body"
    assert page.locator("#composer").get_attribute("data-mode") == "reply"
    assert page.locator("#composer-internal").input_value() == "false"
    page.keyboard.press("Escape")

    # a goes to the assignee; e solves.
    page.keyboard.press("a")
    assert focused_id(page) == "field-assignee"
    page.keyboard.press("Escape")
    page.keyboard.press("e")
    page.locator(".timeline .event", has_text="已解决").wait_for()

    # / from a ticket goes to the inbox search; o opens the selection too.
    page.keyboard.press("/")
    page.wait_for_url(re.compile(r"/agent/inbox/all#search$"))
    page.wait_for_function("() => document.activeElement.id === 'filter-q'")
    page.keyboard.press("Escape")
    page.keyboard.press("j")
    first = cursor_number(page)
    page.keyboard.press("o")
    page.wait_for_url(re.compile(rf"/agent/tickets/{first}$"))
    assert page.errors == []


def test_enter_on_a_focused_button_is_the_buttons(browser: Any, live_server: str) -> None:
    """The inbox's Enter opens the selection only from the rows: on a button it does
    what the button does."""
    page = open_console(browser, live_server, "/agent/inbox/all")
    page.keyboard.press("j")
    page.locator("#filter-q").fill("没有这样的工单zzz")
    page.get_by_role("button", name="筛选").focus()
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(r"q=%E6%B2%A1"))
    assert "/agent/tickets/" not in page.url


def test_another_agent_on_the_same_ticket_shows_in_the_banner(
    browser: Any, live_server: str
) -> None:
    admin = open_console(browser, live_server, "/agent/inbox/all?status=pending")
    number = admin.locator("#inbox-rows tr.row").first.get_attribute("data-ticket")
    admin.goto(f"{live_server}/agent/tickets/{number}")
    banner = admin.locator("#collision")
    assert banner.is_hidden()
    boss = open_console(browser, live_server, f"/agent/tickets/{number}", who=SUPERVISOR)
    admin.locator("#collision", has_text="陈静").wait_for()
    # She sees the admin too; when she leaves, the banner goes away.
    boss.locator("#collision", has_text="王建国").wait_for()
    boss.context.close()
    banner.wait_for(state="hidden")
    assert admin.errors == []


def test_suggested_articles_load_and_insert_a_link(browser: Any, live_server: str) -> None:
    page = open_console(browser, live_server, "/agent/inbox/all?q=Memo")
    page.locator("#inbox-rows a.subject", has_text="忘记填写标签").first.click()
    page.wait_for_url(re.compile(r"/agent/tickets/K\d+$"))
    suggestion = page.locator("#suggested li", has_text="忘记填写标签（Memo）")
    suggestion.wait_for()
    href = suggestion.locator("a").get_attribute("href")
    assert href is not None and href.startswith("/help/articles/")
    page.locator("#composer-body").fill("您好，请参考：")
    suggestion.get_by_role("button", name=re.compile("插入链接")).click()
    assert focused_id(page) == "composer-body"
    text = page.locator("#composer-body").input_value()
    assert text.startswith("您好，请参考：\n充币时忘记填写标签（Memo）怎么办 http")
    assert text.endswith(href)
    assert page.errors == []


def test_the_console_fits_a_tablet(browser: Any, live_server: str) -> None:
    """768 px wide: no horizontal scrolling on the inbox or a ticket."""
    page = open_console(browser, live_server, "/agent/inbox/all", width=768)
    overflow = "() => document.documentElement.scrollWidth - window.innerWidth"
    assert page.evaluate(overflow) <= 0
    page.locator("#inbox-rows a.subject").first.click()
    page.wait_for_url(re.compile(r"/agent/tickets/K\d+$"))
    page.locator("#suggested ul, #suggested p").first.wait_for()
    assert page.evaluate(overflow) <= 0
    assert page.errors == []


# Every visible control has an accessible name: a <label>, aria-label or aria-labelledby.
UNLABELLED = """() => Array.from(document.querySelectorAll('input, select, textarea'))
  .filter(el => el.type !== 'hidden' && el.getClientRects().length > 0)
  .filter(el => !(el.labels && el.labels.length) && !el.getAttribute('aria-label')
    && !el.getAttribute('aria-labelledby'))
  .map(el => el.outerHTML.slice(0, 120))"""

# The focused element shows it: an outline or a ring drawn with box-shadow.
FOCUS_RING = """() => {
  const el = document.activeElement;
  if (!el || el === document.body) return null;
  const s = getComputedStyle(el);
  const ring = (s.outlineStyle !== 'none' && parseFloat(s.outlineWidth) > 0) || s.boxShadow !== 'none';
  return ring ? '' : el.outerHTML.slice(0, 120);
}"""


def test_every_control_has_a_label_and_a_visible_focus(browser: Any, live_server: str) -> None:
    page = open_console(browser, live_server, "/agent/inbox/all")
    paths = [
        "/agent/inbox/all",
        "/agent/chats",
        "/agent/admin/agents",
        "/agent/admin/macros",
        "/agent/admin/channels",
        "/agent/account",
    ]
    ticket = page.locator("#inbox-rows tr.row").first.get_attribute("data-ticket")
    paths.append(f"/agent/tickets/{ticket}")
    for path in paths:
        page.goto(live_server + path)
        assert page.evaluate(UNLABELLED) == [], path
        bare: list[str] = []
        for _ in range(40):  # tab through the first forty stops
            page.keyboard.press("Tab")
            found = page.evaluate(FOCUS_RING)
            if found:
                bare.append(found)
        assert bare == [], path
    assert page.errors == []
