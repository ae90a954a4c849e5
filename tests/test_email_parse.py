"""Inbound email parsing: each .eml fixture becomes the expected ParsedEmail, the
public helpers behave, and the parser never raises and stays fast on hostile input.

Fixtures live in tests/fixtures/email/ (small, committed); the multi-megabyte hostile
messages are built here at run time.
"""

from __future__ import annotations

import base64
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from kefu.channels.email.parse import (
    ParsedEmail,
    cid_placeholder,
    extract_text_from_html,
    parse_email,
    sanitize_header_value,
    strip_quoted,
)

# The parser's limits (the flags each hostile-input test asserts) keep those inputs to a
# second or two; without them several run for minutes. The guard catches such a hang with
# a wide margin for a loaded machine; it does not measure speed (bench/email_parse.py does).
HANG_GUARD_S = 30.0
FIXTURES = Path(__file__).parent / "fixtures" / "email"
FIXTURE_NAMES = sorted(p.name for p in FIXTURES.glob("*.eml"))
BIDI = set("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
SENT_AT = datetime(2026, 11, 25, 2, 30, tzinfo=UTC)


def parse_fixture(name: str) -> ParsedEmail:
    return parse_email((FIXTURES / name).read_bytes())


def message(headers: str, body: bytes = b"hello\r\n") -> bytes:
    """A message from header lines written with \\n, body bytes as given."""
    return headers.strip("\n").replace("\n", "\r\n").encode("utf-8") + b"\r\n\r\n" + body


def assert_well_formed(parsed: ParsedEmail) -> None:
    """Invariants every result keeps, whatever the input."""
    assert isinstance(parsed, ParsedEmail)
    for value in (parsed.subject, parsed.from_name, parsed.text, parsed.reply_text):
        value.encode("utf-8")  # no lone surrogates
        assert "\x00" not in value
    assert "\n" not in parsed.subject and "\r" not in parsed.subject
    if parsed.html is not None:
        parsed.html.encode("utf-8")
        assert "<script" not in parsed.html.lower()
    if parsed.from_address is not None:
        assert parsed.from_address == parsed.from_address.lower()
        assert parsed.from_address.count("@") == 1
    for attachment in parsed.attachments:
        assert attachment.filename
        assert "/" not in attachment.filename and "\\" not in attachment.filename
        assert not attachment.filename.startswith(".")
        assert not BIDI & set(attachment.filename)
        assert len(attachment.filename.encode("utf-8")) <= 200
    if parsed.date is not None:
        assert parsed.date.tzinfo is UTC


def test_at_least_25_small_fixtures() -> None:
    assert len(FIXTURE_NAMES) >= 25
    for name in FIXTURE_NAMES:
        assert (FIXTURES / name).stat().st_size < 200_000, name


@pytest.mark.parametrize("name", FIXTURE_NAMES)
def test_every_fixture_parses_well_formed(name: str) -> None:
    assert_well_formed(parse_fixture(name))


# -- one test per fixture ---------------------------------------------------------------


def test_plain_utf8_zh() -> None:
    parsed = parse_fixture("plain_utf8_zh.eml")
    assert parsed.subject == "提现一直处于审核中，请帮忙查看"
    assert parsed.from_address == "zhangsan@example.cn"
    assert parsed.from_name == "张三"
    assert parsed.to == ["support@kefu.example"]
    assert parsed.cc == ["lisi@example.cn"]
    assert parsed.message_id == "20261125103000.1234@mail.example.cn"
    assert parsed.date == SENT_AT
    assert "USDT 提现（TRC20）到现在还没有到账" in parsed.text
    assert parsed.html is None
    assert parsed.attachments == []
    assert parsed.flags == []
    assert not parsed.is_auto_submitted
    assert parsed.ticket_number_in_subject is None


def test_gb2312_label_with_gb18030_only_characters() -> None:
    parsed = parse_fixture("gb2312_label_gb18030_chars.eml")
    # 镕 is outside GB2312 (GBK), 䶮 and 𠀀 outside GBK (GB18030 four-byte sequences).
    assert parsed.subject == "实名认证失败：姓名含生僻字镕䶮"
    assert "朱镕基的镕字" in parsed.text
    assert "䶮和𠀀" in parsed.text
    assert parsed.flags == []


def test_gbk_quoted_printable() -> None:
    parsed = parse_fixture("gbk_plain.eml")
    assert parsed.subject == "充值未到账"
    assert parsed.from_address == "lisi@example.cn"
    assert parsed.from_name == "李四"  # an encoded word inside a quoted string
    assert "充值的 USDT 一直未到账" in parsed.text
    assert parsed.flags == []


def test_big5_traditional_with_hkscs() -> None:
    parsed = parse_fixture("big5_traditional.eml")
    assert parsed.subject == "帳戶被盜"
    assert "我的帳戶被盜，資產被轉走了，請立即凍結" in parsed.text
    assert "啱啱" in parsed.text  # HKSCS, not in plain Big5
    assert parsed.flags == []


def test_html_only_is_sanitised_and_gives_text() -> None:
    parsed = parse_fixture("html_only_script.eml")
    assert parsed.subject == "请尽快处理"
    assert parsed.html is not None
    html = parsed.html.lower()
    for dangerous in ("<script", "alert", "onerror", "onclick", "javascript:", "<iframe", "<style"):
        assert dangerous not in html
    assert "position" not in html  # style properties are filtered, color stays
    assert 'style="color:blue"' in html
    assert "页面标题" not in parsed.html  # <title> content is not body text
    assert '<a href="https://example.cn/help"' in parsed.html
    assert "script_in_html" in parsed.flags
    assert parsed.text.startswith("您好，请尽快处理我的工单。")
    assert "alert" not in parsed.text and "color:red" not in parsed.text
    assert "谢谢" in parsed.text


def test_multipart_alternative_keeps_both() -> None:
    parsed = parse_fixture("multipart_alternative.eml")
    assert parsed.text == "您好，我的谷歌验证器丢失了，无法登录账户。\n请问如何重置二次验证？"
    assert parsed.html is not None and "<b>谷歌验证器</b>" in parsed.html
    assert parsed.attachments == []
    assert parsed.flags == []


def test_inline_cid_image_points_at_placeholder() -> None:
    parsed = parse_fixture("inline_cid_image.eml")
    assert parsed.html is not None
    assert 'src="kefu-cid:screenshot001@example.cn"' in parsed.html
    assert "cid:screenshot" not in parsed.html.replace("kefu-cid:", "")
    [image] = parsed.attachments
    assert image.content_id == "screenshot001@example.cn"
    assert image.is_inline
    assert image.content_type == "image/png"
    assert image.sniffed_type == "image/png"
    assert image.filename == "screenshot.png"
    assert image.data.startswith(b"\x89PNG")
    assert cid_placeholder(image.content_id) in parsed.html


def test_rfc2231_chinese_filenames() -> None:
    parsed = parse_fixture("attachments_rfc2231.eml")
    assert parsed.text == "附件是冻结申请和转账截图。"
    pdf, png = parsed.attachments
    assert pdf.filename == "账户冻结申请.pdf"  # filename*=gb2312''%D5%CB…
    assert pdf.content_type == "application/pdf"
    assert pdf.sniffed_type == "application/pdf"
    assert pdf.data.startswith(b"%PDF-1.4") and pdf.size == 125
    assert png.filename == "转账截图2026年11月25日.png"  # filename*0*= / filename*1*=
    assert png.content_type == "image/png"
    assert png.size == 70
    assert not pdf.is_inline and not png.is_inline
    assert parsed.flags == []


def test_encoded_words_split_mid_character() -> None:
    parsed = parse_fixture("subject_split_midchar.eml")
    assert parsed.subject == "账户被盗请立即冻结"
    assert "\ufffd" not in parsed.subject
    assert parsed.flags == []


def test_raw_8bit_gbk_headers() -> None:
    parsed = parse_fixture("raw_8bit_gbk_headers.eml")
    assert parsed.subject == "提币地址填错了怎么办"
    assert parsed.from_name == "钱九"
    assert parsed.from_address == "qianjiu@example.cn"
    assert "资产还能找回吗" in parsed.text
    assert parsed.flags == []


def test_reply_outlook_zh() -> None:
    parsed = parse_fixture("reply_outlook_zh.eml")
    assert parsed.subject == "答复: 提现未到账"
    assert "发件人: 客服" in parsed.text
    assert parsed.reply_text == "我的 UID 是 12345678，订单号 W2026112400123。"


def test_reply_outlook_en() -> None:
    parsed = parse_fixture("reply_outlook_en.eml")
    assert parsed.reply_text == "Here is the TXID: 0x9f2c...e41a"
    assert "Please send the TXID." in parsed.text


def test_reply_foxmail() -> None:
    parsed = parse_fixture("reply_foxmail.eml")
    assert parsed.subject == "回复：提现未到账"
    assert parsed.reply_text == "已经按要求提供了截图，请查收。"
    assert "原始邮件" not in parsed.reply_text


def test_reply_qq_mail_gb18030_alternative() -> None:
    parsed = parse_fixture("reply_qq_mail.eml")
    assert parsed.reply_text == "好的，我马上去补充材料。"
    assert "客服 小美" in parsed.text
    assert parsed.html is not None and "原始邮件" in parsed.html
    assert parsed.flags == []


def test_reply_gmail_zh_wrapped_attribution() -> None:
    parsed = parse_fixture("reply_gmail_zh.eml")
    assert parsed.subject == "Re: 提现未到账"
    assert parsed.reply_text == "订单号是 W2026112400123，麻烦再看一下。"
    assert "写道" not in parsed.reply_text


def test_reply_gmail_en() -> None:
    parsed = parse_fixture("reply_gmail_en.eml")
    assert parsed.reply_text == "My UID is 12345678. Still waiting for the withdrawal."


def test_reply_163_gbk() -> None:
    parsed = parse_fixture("reply_163.eml")
    assert parsed.subject == "Re:提现未到账"
    assert parsed.reply_text == "截图已经发给你们了，请查收。"
    assert "请提供您的 UID" in parsed.text


def test_reply_with_ticket_number_and_threading_headers() -> None:
    parsed = parse_fixture("reply_ticket_subject.eml")
    assert parsed.subject == "Re: [#K12345674] 提现未到账"
    assert parsed.ticket_number_in_subject == "K12345674"
    assert parsed.message_id == "reply-2@example.cn"
    assert parsed.in_reply_to == ["K12345674.20261125.1@kefu.example"]
    assert parsed.references == [
        "K12345674.20261124.0@kefu.example",
        "K12345674.20261125.1@kefu.example",
    ]
    assert parsed.reply_text == "补充：提现金额 500 USDT。"


def test_auto_reply() -> None:
    parsed = parse_fixture("auto_reply.eml")
    assert parsed.is_auto_submitted
    assert not parsed.is_bounce
    assert parsed.subject == "自动回复: [#K12345671] 提现未到账"
    assert parsed.ticket_number_in_subject == "K12345671"


def test_dsn_bounce() -> None:
    parsed = parse_fixture("dsn_bounce.eml")
    assert parsed.is_bounce
    assert parsed.is_auto_submitted
    assert parsed.bounced_recipients == ["nobody@example.cn"]  # "delayed" is not a bounce
    assert parsed.from_address == "mailer-daemon@mx.example.cn"
    assert "could not be delivered" in parsed.text
    assert "工单 K12345671 已更新" not in parsed.text  # the returned message is not text
    [returned] = parsed.attachments
    assert returned.content_type == "message/rfc822"
    assert returned.filename == "attachment-1.eml"
    assert b"Message-ID: <K12345671.out.7@kefu.example>" in returned.data


def test_from_display_name_spoof() -> None:
    parsed = parse_fixture("from_spoof_display_name.eml")
    assert parsed.from_address == "attacker@evil.example"
    assert parsed.from_name == ""
    assert "display_name_spoof" in parsed.flags
    assert parsed.reply_to == ["support@kefu.example"]  # listed, never the contact


def test_from_ambiguous_cve_2023_27043_shape() -> None:
    parsed = parse_fixture("from_ambiguous.eml")
    assert parsed.from_address is None
    assert "ambiguous_from" in parsed.flags
    assert parsed.reply_to == ["alice@example.org"]


def test_authentication_results_dkim_fail() -> None:
    parsed = parse_fixture("dkim_fail.eml")
    # The topmost header (our MTA's) is read; the forged one below it is not.
    assert parsed.auth_results == {"spf": "pass", "dkim": "fail", "dmarc": "fail"}
    assert "dkim_fail" in parsed.flags and "dmarc_fail" in parsed.flags
    assert "spf_fail" not in parsed.flags


def test_forwarded_message_rfc822() -> None:
    parsed = parse_fixture("forward_rfc822.eml")
    assert parsed.subject == "Fw: 【重要】您的账户存在风险"
    assert parsed.text.startswith("我收到这封邮件，是你们发的吗？")
    assert "---------- Forwarded message ----------" in parsed.text
    assert "From: 币安安全中心 <security@kefu-verify.example>" in parsed.text
    assert "https://kefu-verify.example/login" in parsed.text
    assert "您的账户存在异常登录" in parsed.reply_text
    # One .eml attachment (the evidence); the forward's own PNG stays inside it.
    [eml] = parsed.attachments
    assert eml.content_type == "message/rfc822"
    assert eml.filename == "【重要】您的账户存在风险.eml"
    nested = parse_email(eml.data)
    assert nested.from_address == "security@kefu-verify.example"
    assert [a.filename for a in nested.attachments] == ["qrcode.png"]


def test_hostile_filename_traversal() -> None:
    parsed = parse_fixture("hostile_filename_traversal.eml")
    [attachment] = parsed.attachments
    assert attachment.filename == "passwd"
    assert attachment.data.startswith(b"root:x:0:0")


def test_hostile_filename_rlo() -> None:
    parsed = parse_fixture("hostile_filename_rlo.eml")
    [attachment] = parsed.attachments
    assert attachment.filename == "invoicefdp.exe"  # the real extension shows
    assert attachment.content_type == "application/pdf"  # declared …
    assert attachment.sniffed_type == "application/x-msdownload"  # … and what it is


def test_hostile_broken_base64() -> None:
    parsed = parse_fixture("hostile_broken_base64.eml")
    assert "broken_base64" in parsed.flags
    assert parsed.text.startswith("转账凭证见附")
    [pdf] = parsed.attachments
    assert pdf.filename == "receipt.pdf"
    assert pdf.data.startswith(b"%PDF-1.4")


def test_hostile_nul_bytes() -> None:
    parsed = parse_fixture("hostile_nul_bytes.eml")
    assert parsed.text == "提现未到账，请处理。"
    assert parsed.subject == "NUL test"
    assert "nul_bytes" in parsed.flags


def test_hostile_unknown_charset() -> None:
    parsed = parse_fixture("hostile_unknown_charset.eml")
    assert "unknown_charset" in parsed.flags
    assert parsed.subject == "未知编码"
    assert parsed.text == "这封邮件的编码标签是未知的，但内容是国标编码。"


def test_hostile_deep_nesting() -> None:
    parsed = parse_fixture("hostile_deep_nesting.eml")
    assert "too_deep" in parsed.flags
    assert parsed.from_address == "deep@evil.example"
    assert parsed.text == ""  # the body sits 60 levels down, past max_depth=10
    assert parse_fixture("hostile_deep_nesting.eml").flags == parsed.flags
    deep_enough = parse_email((FIXTURES / "hostile_deep_nesting.eml").read_bytes(), max_depth=70)
    assert deep_enough.text == "最里面的正文"


def test_hostile_5000_parts() -> None:
    parsed = parse_fixture("hostile_5000_parts.eml")
    assert "too_many_parts" in parsed.flags
    assert parsed.text.count("x") <= 500


# -- strip_quoted -------------------------------------------------------------------------

QUOTE_STYLES = {
    "gmail-en": "On Wed, Nov 25, 2026 at 10:00 AM Kefu <support@kefu.example> wrote:\n> old",
    "gmail-en-wrapped": "On Wed, Nov 25, 2026 at 10:00 AM Kefu Support <\nsupport@kefu.example>\nwrote:\n> old",
    "gmail-zh": "在 2026年11月25日周三 10:00，客服 <support@kefu.example> 写道：\n> 旧内容",
    "gmail-zh-cn": "客服 <support@kefu.example> 于2026年11月25日周三 10:00写道：\n> 旧内容",
    "apple-zh-tw": "2026年11月25日 上午10:00，客服 <support@kefu.example> 寫道：\n\n> 舊內容",
    "163": '在 2026-11-25 10:00:00，"客服" <support@kefu.example> 写道：\n>旧内容',
    "163-en": 'At 2026-11-25 10:00:00, "Kefu" <support@kefu.example> wrote:\n>old',
    "outlook-en": "-----Original Message-----\nFrom: Kefu\nSent: Wednesday\nTo: me\nSubject: x\n\nold",
    "outlook-zh": "发件人: 客服 <support@kefu.example>\n发送时间: 2026年11月25日 10:00\n收件人: 我\n主题: 提现\n\n旧内容",
    "outlook-zh-fullwidth": "________________________________\n发件人： 客服\n发送时间： 2026年11月25日\n收件人： 我\n主题： 提现\n旧内容",
    "outlook-zh-tw": "寄件者: 客服\n寄件日期: 2026年11月25日\n收件者: 我\n主旨: 提現\n\n舊內容",
    "outlook-bold": "*From:* Kefu <support@kefu.example>\n*Sent:* Wednesday\n*To:* me\n*Subject:* x\nold",
    "foxmail": '------------------ 原始邮件 ------------------\n发件人: "客服"<support@kefu.example>;\n旧内容',
    "original-zh": "-----原始邮件-----\n发件人：客服\n旧内容",
    "thunderbird-zh": "-------- 原始信息 --------\n旧内容",
    "qq-en": "------------------ Original ------------------\nFrom: x\nold",
    "quoted-only": "> 旧内容\n> 更旧的内容",
}


@pytest.mark.parametrize("style", sorted(QUOTE_STYLES))
def test_strip_quoted_styles(style: str) -> None:
    text = "好的，谢谢。\nThanks.\n\n" + QUOTE_STYLES[style] + "\n"
    assert strip_quoted(text) == "好的，谢谢。\nThanks."


def test_strip_quoted_keeps_inline_answers_and_plain_text() -> None:
    assert strip_quoted("> 问题一\n回答一\n> 问题二\n回答二") == "回答一\n回答二"
    plain = "您好，\n我在周一提现，On Monday I tried again.\n发件人: 我自己\n谢谢"
    assert strip_quoted(plain) == plain  # one "发件人:" line is not an Outlook block
    assert strip_quoted("写道：这是我的问题") == "写道：这是我的问题"
    assert strip_quoted("> 全部是引用") == ""
    assert strip_quoted("答复\r\n\r\n-----Original Message-----\r\nold") == "答复"


# -- sanitize_header_value (CVE-2024-6923) -------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("Re: 提现\r\nBcc: victim@example.org", "Re: 提现 Bcc: victim@example.org"),
        ("a\nb\rc", "a b c"),
        ("a\x0bb\x0cc\x1cd\x1de\x1ef", "a b c d e f"),  # str.splitlines() breaks on these
        ("a\x85b\u2028c\u2029d", "a b c d"),
        ("nul\x00here", "nul here"),
        ("invoice\u202efdp.exe", "invoice fdp.exe"),
        ("  工单   [#K12345671]\t已更新  ", "工单 [#K12345671] 已更新"),
        ("plain", "plain"),
    ],
)
def test_sanitize_header_value(value: str, expected: str) -> None:
    assert sanitize_header_value(value) == expected


@given(st.text())
@hypothesis_settings(max_examples=200, deadline=None)
def test_sanitize_header_value_is_always_one_line(value: str) -> None:
    cleaned = sanitize_header_value(value)
    assert cleaned.splitlines() in ([], [cleaned])
    assert not any(ord(c) < 0x20 or 0x7F <= ord(c) <= 0x9F for c in cleaned)
    cleaned.encode("utf-8")


def test_sanitized_value_cannot_inject_a_header() -> None:
    from email.message import EmailMessage

    outgoing = EmailMessage()
    outgoing["Subject"] = sanitize_header_value("工单已更新\r\nBcc: victim@example.org")
    outgoing.set_content("x")
    assert "victim" not in (outgoing["Bcc"] or "")
    assert b"\r\nBcc:" not in outgoing.as_bytes()


# -- extract_text_from_html -----------------------------------------------------------------


def test_extract_text_from_html_blocks_and_entities() -> None:
    html = (
        "<html><head><title>T</title><style>p{color:red}</style></head><body>"
        "<div>第一行</div><div>第二行<br>第三行</div><p>段落&amp;实体&nbsp;&lt;x&gt;</p>"
        "<script>alert(1)</script><ul><li>一</li><li>二</li></ul>"
        "<table><tr><td>UID</td><td>123</td></tr></table></body></html>"
    )
    assert extract_text_from_html(html) == (
        "第一行\n第二行\n第三行\n\n段落&实体 <x>\n\n一\n二\nUID 123"
    )


def test_extract_text_from_html_marks_blockquotes() -> None:
    html = (
        '<div>好的</div><div class="gmail_quote">On Wed, Nov 25, 2026 Kefu wrote:<br>'
        "<blockquote>旧内容<br>第二行<blockquote>更旧</blockquote></blockquote></div>"
    )
    text = extract_text_from_html(html)
    assert text == "好的\nOn Wed, Nov 25, 2026 Kefu wrote:\n> 旧内容\n> 第二行\n> > 更旧"
    assert strip_quoted(text) == "好的"


def test_extract_text_from_html_collapses_whitespace_but_keeps_pre() -> None:
    assert extract_text_from_html("<p>a\n   b</p><pre>x  y\nz</pre>") == "a b\n\nx  y\nz"


def test_extract_text_from_html_flattens_hostile_nesting() -> None:
    started = time.perf_counter()
    text = extract_text_from_html("<div>" * 30_000 + "深处" + "</div>" * 30_000)
    assert time.perf_counter() - started < HANG_GUARD_S
    assert text == "深处"


@given(st.text(alphabet=st.sampled_from(list("<>/=\"' abcdiv&;#xp\n")), max_size=300))
@hypothesis_settings(max_examples=150, deadline=None)
def test_extract_text_from_html_never_raises(html: str) -> None:
    text = extract_text_from_html(html)
    assert "<script" not in text.lower() or "<script" in html.lower()


# -- From, strictly (CVE-2023-27043) ---------------------------------------------------------


@pytest.mark.parametrize(
    ("from_header", "address", "name", "flag"),
    [
        ("Alice <Alice@EXAMPLE.org>", "alice@example.org", "Alice", None),
        ("alice@example.org (Alice Liu)", "alice@example.org", "Alice Liu", None),
        ('"Liu, Alice" <alice@example.org>', "alice@example.org", "Liu, Alice", None),
        (
            '"Bob <bob@kefu.example>" <bob@kefu.example>',
            "bob@kefu.example",
            "Bob <bob@kefu.example>",
            None,
        ),
        ("alice@example.org)<bob@example.com>", None, "", "ambiguous_from"),
        ("alice@example.org <bob@example.com>", None, "", "ambiguous_from"),
        ("<alice@example.org><bob@example.com>", None, "", "ambiguous_from"),
        ("alice@example.org, bob@example.com", None, "", "ambiguous_from"),
        ('"alice@example.org"@evil.example', None, "", "ambiguous_from"),
        ("alice@example.org>", None, "", "ambiguous_from"),
        ('"unterminated <alice@example.org>', None, "", "ambiguous_from"),
        ("friends: alice@example.org, bob@example.com;", None, "", "ambiguous_from"),
        ("<@relay.example:alice@example.org>", None, "", "invalid_from"),
        ("MAILER-DAEMON", None, "", "invalid_from"),
        ("alice@[203.0.113.7]", None, "", "invalid_from"),
        ("alice@localhost", None, "", "invalid_from"),
        ('"support@kefu.example" <x@evil.example>', "x@evil.example", "", "display_name_spoof"),
        ("support＠kefu.example <x@evil.example>", "x@evil.example", "", "display_name_spoof"),
        ("x@evil.example (support@kefu.example)", "x@evil.example", "", "display_name_spoof"),
        (
            "=?utf-8?b?"
            + base64.b64encode(b"support@kefu.example").decode()
            + "?= <x@evil.example>",
            "x@evil.example",
            "",
            "display_name_spoof",
        ),
        ("客服\u202e <x@example.cn>", "x@example.cn", "客服", None),
    ],
)
def test_from_is_parsed_strictly(
    from_header: str, address: str | None, name: str, flag: str | None
) -> None:
    parsed = parse_email(message(f"From: {from_header}\nSubject: x"))
    assert parsed.from_address == address
    assert parsed.from_name == name
    if flag is None:
        assert not {"ambiguous_from", "invalid_from", "display_name_spoof"} & set(parsed.flags)
    else:
        assert flag in parsed.flags


def test_two_from_headers_are_ambiguous() -> None:
    parsed = parse_email(message("From: alice@example.org\nFrom: bob@example.com"))
    assert parsed.from_address is None
    assert "ambiguous_from" in parsed.flags


def test_missing_from() -> None:
    parsed = parse_email(message("Subject: 没有发件人"))
    assert parsed.from_address is None
    assert "missing_from" in parsed.flags


def test_contact_is_never_reply_to_or_sender() -> None:
    parsed = parse_email(
        message(
            "From: alice@example.org\nSender: bob@example.com\nReply-To: carol@example.net\n"
            "To: a@example.cn, 客服 <Support@Kefu.Example>, undisclosed-recipients:;"
        )
    )
    assert parsed.from_address == "alice@example.org"
    assert parsed.reply_to == ["carol@example.net"]
    assert parsed.to == ["a@example.cn", "support@kefu.example"]


# -- charsets ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "label", ["gb2312", "GB_2312-80", "euc-cn", "x-gbk", "cp936", "GBK", "gb18030"]
)
def test_gb_labels_decode_as_gb18030(label: str) -> None:
    body = "镕䶮𠀀提现".encode("gb18030")
    parsed = parse_email(
        message(f"From: a@example.cn\nContent-Type: text/plain; charset={label}", body)
    )
    assert parsed.text == "镕䶮𠀀提现"
    assert parsed.flags == []


@pytest.mark.parametrize("label", ["big5", "Big5-HKSCS", "x-big5", "cp950"])
def test_big5_labels_decode_as_hkscs(label: str) -> None:
    body = "帳戶被盜，啱啱發現".encode("big5hkscs")
    parsed = parse_email(
        message(f"From: a@example.hk\nContent-Type: text/plain; charset={label}", body)
    )
    assert parsed.text == "帳戶被盜，啱啱發現"


def test_raw_8bit_headers_follow_the_body_charset() -> None:
    # Big5 bytes also decode (wrongly) as GB18030; the body's charset breaks the tie.
    raw = (
        b"From: a@example.hk\r\nSubject: "
        + "帳戶被盜".encode("big5")
        + b"\r\nContent-Type: text/plain; charset=big5\r\n\r\n"
        + "請凍結".encode("big5")
    )
    parsed = parse_email(raw)
    assert parsed.subject == "帳戶被盜"
    assert parsed.text == "請凍結"


def test_raw_8bit_utf8_header() -> None:
    parsed = parse_email(message("From: 张三 <a@example.cn>\nSubject: 提现未到账"))
    assert parsed.subject == "提现未到账"
    assert parsed.from_name == "张三"


def test_undecodable_raw_header_falls_back_to_latin1_with_flag() -> None:
    parsed = parse_email(b"From: a@example.cn\r\nSubject: \xff\xfe\xff\r\n\r\nx")
    assert parsed.subject == "\xff\xfe\xff"
    assert "unknown_charset" in parsed.flags


def test_encoded_words_q_and_b_mixed_with_text() -> None:
    subject = (
        "Re: =?gb2312?B?"
        + base64.b64encode("提现".encode("gbk")).decode()
        + "?= (=?utf-8?Q?=E5=88=B0_=E8=B4=A6?=) done"
    )
    parsed = parse_email(message(f"From: a@example.cn\nSubject: {subject}"))
    assert parsed.subject == "Re: 提现 (到 账) done"


def test_encoded_word_with_unknown_charset_is_flagged() -> None:
    parsed = parse_email(message("From: a@example.cn\nSubject: =?x-klingon?B?5o+Q546w?="))
    assert parsed.subject == "提现"
    assert "unknown_charset" in parsed.flags


def test_bytes_to_bytes_codecs_are_not_charsets() -> None:
    parsed = parse_email(
        message("From: a@example.cn\nContent-Type: text/plain; charset=base64", b"aGk=")
    )
    assert parsed.text == "aGk="
    assert "unknown_charset" in parsed.flags


def test_damaged_utf8_keeps_utf8_with_replacement() -> None:
    body = "转账凭证见附件".encode()[:-1]
    parsed = parse_email(
        message("From: a@example.cn\nContent-Type: text/plain; charset=utf-8", body)
    )
    assert parsed.text.startswith("转账凭证见附")
    assert "decode_error" in parsed.flags


def test_base64_concatenated_chunks_and_missing_padding() -> None:
    raw = message(
        "From: a@example.cn\nContent-Type: application/octet-stream\n"
        "Content-Disposition: attachment; filename=a.bin\nContent-Transfer-Encoding: base64",
        b"QQ==Qg==Qw",
    )
    parsed = parse_email(raw)
    assert parsed.attachments[0].data == b"ABC"
    assert "broken_base64" in parsed.flags


def test_rfc2231_filename_with_charset_and_fallback_names() -> None:
    raw = message(
        'From: a@example.cn\nContent-Type: multipart/mixed; boundary="b"',
        b"--b\r\nContent-Type: text/plain\r\n\r\nhi\r\n"
        b"--b\r\nContent-Type: image/png\r\nContent-Disposition: attachment\r\n"
        b"Content-Transfer-Encoding: base64\r\n\r\niVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==\r\n"
        b'--b\r\nContent-Type: application/octet-stream; name="=?utf-8?B?5oiq5Zu+LmRhdA==?="\r\n\r\nzz\r\n'
        b'--b\r\nContent-Type: application/x-unknown\r\nContent-Disposition: attachment; filename="..."\r\n\r\nzz\r\n'
        b"--b--\r\n",
    )
    parsed = parse_email(raw)
    assert [a.filename for a in parsed.attachments] == [
        "attachment-1.png",  # no name: fallback + extension sniffed from the bytes
        "截图.dat",  # RFC 2047 inside name="…"
        "attachment-3.bin",  # "..." leaves nothing
    ]


@pytest.mark.parametrize(
    ("raw_name", "expected"),
    [
        ("..\\..\\windows\\system32\\cmd.exe", "cmd.exe"),
        ("／etc／passwd", "passwd"),  # full-width solidus, NFKC
        ("ｒｅｐｏｒｔ.pdf", "report.pdf"),
        ("a\x00b\x07c.txt", "abc.txt"),
        ("\u2066evil\u2069.pdf", "evil.pdf"),
        ("CON.txt", "_CON.txt"),
        ('x<y>:"z".pdf', "x_y___z_.pdf"),
        (".hidden", "hidden"),
        ("截" * 300 + ".pdf", "截" * 65 + ".pdf"),  # 200 bytes of UTF-8 at most
    ],
)
def test_attachment_filenames_are_sanitised(raw_name: str, expected: str) -> None:
    encoded = "".join(f"%{b:02X}" for b in raw_name.encode("utf-8"))
    raw = message(
        'From: a@example.cn\nContent-Type: multipart/mixed; boundary="b"',
        b"--b\r\nContent-Type: text/plain\r\n\r\nhi\r\n--b\r\nContent-Type: application/pdf\r\n"
        b"Content-Disposition: attachment; filename*=utf-8''"
        + encoded.encode()
        + b"\r\n\r\nzz\r\n--b--\r\n",
    )
    [attachment] = parse_email(raw).attachments
    assert attachment.filename == expected


def test_mislabelled_charset_is_flagged_and_still_read() -> None:
    body = "充值未到账".encode("gbk")
    parsed = parse_email(
        message("From: a@example.cn\nContent-Type: text/plain; charset=utf-8", body)
    )
    assert parsed.text == "充值未到账"
    assert "charset_mismatch" in parsed.flags


def test_html_charset_from_meta_tag() -> None:
    body = '<html><head><meta charset="gbk"></head><body><p>提币</p></body></html>'.encode("gbk")
    parsed = parse_email(message("From: a@example.cn\nContent-Type: text/html", body))
    assert parsed.text == "提币"


def test_inline_data_uri_image_does_not_push_text_past_the_cap() -> None:
    image = "data:image/png;base64," + "A" * 3_000_000
    html = f'<p>看图</p><img src="{image}"><p>图后的文字</p>'.encode()
    parsed = parse_email(
        message("From: a@example.cn\nContent-Type: text/html; charset=utf-8", html)
    )
    assert parsed.text == "看图\n\n图后的文字"
    assert parsed.html is not None and "data:" not in parsed.html
    assert "html_truncated" not in parsed.flags


def test_css_url_and_relative_links_are_dropped() -> None:
    html = (
        '<p style="color:red;background:url(https://t.example/p.gif)">a</p>'
        '<p style="color:red">b</p><a href="/api/v1/admin">c</a><img src="x.png">'
    )
    parsed = parse_email(message("From: a@example.cn\nContent-Type: text/html", html.encode()))
    assert parsed.html is not None
    assert "url(" not in parsed.html
    assert '<p style="color:red">b</p>' in parsed.html
    assert "/api/v1/admin" not in parsed.html and "x.png" not in parsed.html


def test_uuencoded_attachment() -> None:
    raw = message(
        'From: a@example.cn\nContent-Type: multipart/mixed; boundary="b"',
        b"--b\r\nContent-Type: text/plain\r\n\r\nhi\r\n--b\r\nContent-Type: application/octet-stream\r\n"
        b"Content-Disposition: attachment; filename=a.txt\r\nContent-Transfer-Encoding: x-uuencode\r\n\r\n"
        b"begin 644 a.txt\r\n#86)C\r\n`\r\nend\r\n--b--\r\n",
    )
    assert parse_email(raw).attachments[0].data == b"abc"


def test_unknown_transfer_encoding_is_flagged() -> None:
    raw = message("From: a@example.cn\nContent-Transfer-Encoding: x-rot13", b"uryyb")
    parsed = parse_email(raw)
    assert parsed.text == "uryyb"
    assert "unknown_transfer_encoding" in parsed.flags


def test_international_from_address() -> None:
    parsed = parse_email(message("From: 用户 <用户@例子.中国>"))
    assert parsed.from_address == "用户@例子.中国"
    assert "non_ascii_from" in parsed.flags


def test_related_with_start_and_calendar_alternative() -> None:
    raw = message(
        'From: a@example.cn\nContent-Type: multipart/alternative; boundary="a"',
        b"--a\r\nContent-Type: text/plain\r\n\r\nplain\r\n"
        b"--a\r\nContent-Type: text/calendar; method=REQUEST\r\n\r\nBEGIN:VCALENDAR\r\n"
        b'--a\r\nContent-Type: multipart/related; boundary="r"; start="<root@x>"\r\n\r\n'
        b"--r\r\nContent-Type: image/gif\r\nContent-ID: <img@x>\r\n\r\nGIF89a\r\n"
        b"--r\r\nContent-Type: text/html\r\nContent-ID: <root@x>\r\n\r\n"
        b'<p>rich</p><img src="cid:img%40x">\r\n--r--\r\n--a--\r\n',
    )
    parsed = parse_email(raw)
    assert parsed.text == "plain"
    assert parsed.html is not None and 'src="kefu-cid:img@x"' in parsed.html
    assert sorted(a.content_type for a in parsed.attachments) == ["image/gif", "text/calendar"]
    [gif] = [a for a in parsed.attachments if a.content_type == "image/gif"]
    assert gif.is_inline and gif.content_id == "img@x"


def test_content_type_comments_and_quoted_parameters() -> None:
    raw = message(
        "From: a@example.cn\nContent-Type: multipart/mixed (comment; with semicolon);\n"
        ' boundary="b;\\"q"',
        b'--b;"q\r\nContent-Type: text/plain; charset="utf-8" (utf8)\r\n\r\n'
        + "正文".encode()
        + b'\r\n--b;"q--\r\n',
    )
    parsed = parse_email(raw)
    assert parsed.text == "正文"
    assert parsed.flags == []


def test_cr_only_line_endings() -> None:
    raw = b"From: a@example.cn\rSubject: =?utf-8?B?5o+Q546w?=\r\r" + "第一行\r第二行".encode()
    parsed = parse_email(raw)
    assert parsed.subject == "提现"
    assert parsed.text == "第一行\n第二行"


# -- classification ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ("Auto-Submitted: auto-generated", True),
        ("Auto-Submitted: no", False),
        ("Precedence: bulk", True),
        ("Precedence: junk", True),
        ("X-Autoreply: yes", True),
        ("X-Autorespond: Out of office", True),
        ("List-Id: <announce.example.cn>", True),
        ("Return-Path: <>", True),
        ("Return-Path: <a@example.cn>", False),
        ("Subject: 自动回复: 提现未到账", True),
        ("Subject: Automatic reply: Deposit", True),
        ("Subject: Out of Office: back Monday", True),
        ("Subject: 关于自动回复的问题", False),
    ],
)
def test_auto_submitted(headers: str, expected: bool) -> None:
    assert parse_email(message(f"From: a@example.cn\n{headers}")).is_auto_submitted is expected


@pytest.mark.parametrize(
    "sender", ["MAILER-DAEMON@mx.example.cn", "postmaster@example.cn", "noreply@example.cn"]
)
def test_machine_senders_are_auto_submitted(sender: str) -> None:
    assert parse_email(message(f"From: {sender}")).is_auto_submitted


def test_authentication_results_trusts_only_our_authserv_id() -> None:
    raw = message(
        "Authentication-Results: forged.example; dkim=pass; dmarc=pass\n"
        "Authentication-Results: mx.kefu.example 1; spf=softfail smtp.mailfrom=x;\n"
        " dkim=fail header.d=a; dkim=pass header.d=b (second signature); dmarc=none\n"
        "From: a@example.cn"
    )
    assert parse_email(raw, authserv_id="mx.kefu.example").auth_results == {
        "spf": "softfail",
        "dkim": "pass",
        "dmarc": "none",
    }
    assert parse_email(raw).auth_results == {"dkim": "pass", "dmarc": "pass"}  # topmost
    assert parse_email(raw, authserv_id="other.example").auth_results == {}


def test_threading_ids_and_date() -> None:
    references = " ".join(f"<r{i}@Example.CN>" for i in range(150))
    parsed = parse_email(
        message(
            "From: a@example.cn\nMessage-ID: <ABC@Mail.Example.CN>\n"
            "In-Reply-To: <p@kefu.example> (comment)\n"
            f"References: {references}\nDate: Wed, 25 Nov 2026 10:30:00 -0000"
        )
    )
    assert parsed.message_id == "ABC@mail.example.cn"
    assert parsed.in_reply_to == ["p@kefu.example"]
    assert len(parsed.references) == 100
    assert parsed.references[0] == "r0@example.cn"
    assert parsed.references[-1] == "r149@example.cn"
    assert parsed.date == datetime(2026, 11, 25, 10, 30, tzinfo=UTC)
    assert parse_email(message("From: a@example.cn\nDate: 昨天")).date is None


def test_ticket_number_pattern() -> None:
    def number(subject: str) -> str | None:
        return parse_email(
            message(f"From: a@example.cn\nSubject: {subject}")
        ).ticket_number_in_subject

    assert number("Re: [#K12345674] x") == "K12345674"
    assert number("Re: [#K1234567] x") is None
    assert number("Re: [K12345674] x") is None
    assert number("Re: [#k12345674] x") is None


def test_format_flowed_is_unwrapped() -> None:
    raw = message(
        "From: a@example.cn\nContent-Type: text/plain; charset=utf-8; format=flowed",
        "我的提现一直 \r\n没有到账。\r\n-- \r\n张三\r\n".encode(),
    )
    assert parse_email(raw).text == "我的提现一直 没有到账。\n-- \n张三"


def test_text_only_multipart_report_is_not_a_bounce_without_delivery_status() -> None:
    raw = message(
        'From: a@example.cn\nContent-Type: multipart/report; report-type=disposition-notification; boundary="r"',
        b"--r\r\nContent-Type: text/plain\r\n\r\nread receipt\r\n--r--\r\n",
    )
    parsed = parse_email(raw)
    assert not parsed.is_bounce
    assert parsed.text == "read receipt"


# -- hostile input, built at run time ---------------------------------------------------------------


def timed(raw: bytes) -> tuple[ParsedEmail, float]:
    started = time.perf_counter()
    parsed = parse_email(raw)
    return parsed, time.perf_counter() - started


def test_huge_header_line() -> None:
    raw = (
        b"From: a@example.cn\r\nX-Junk: " + b"a" * 1_000_000 + b"\r\n"
        b"Content-Type: text/plain; " + b"p=v; " * 100_000 + b"charset=utf-8\r\n"
        b"Subject: " + "提现".encode() + b"\r\n\r\n" + "正文".encode()
    )
    parsed, elapsed = timed(raw)
    assert elapsed < HANG_GUARD_S
    assert "huge_headers" in parsed.flags
    assert parsed.from_address == "a@example.cn"
    assert parsed.subject == "提现"
    assert parsed.text == "正文"


def test_millions_of_header_lines() -> None:
    raw = b"From: a@example.cn\r\n" + b"X-A: b\r\n" * 2_000_000 + b"Subject: end\r\n\r\nbody"
    parsed, elapsed = timed(raw)
    assert elapsed < HANG_GUARD_S
    assert "huge_headers" in parsed.flags
    assert parsed.subject == "end"
    assert parsed.text == "body"


def test_25_mb_of_short_lines() -> None:
    raw = message("From: a@example.cn", b"a\n" * 12_500_000)
    parsed, elapsed = timed(raw)
    assert elapsed < HANG_GUARD_S
    assert "too_many_lines" in parsed.flags


def test_25_mb_inside_60_levels_of_nesting() -> None:
    # Every line is checked against every open boundary: depth × lines is the cost the
    # depth limit bounds.
    opening = [
        b'Content-Type: multipart/mixed; boundary="n%d"\r\n\r\n--n%d\r\n' % (level, level)
        for level in reversed(range(60))
    ]
    closing = [b"\r\n--n%d--\r\n" % level for level in range(60)]
    body = b"Content-Type: text/plain\r\n\r\n" + (b"x" * 98 + b"\r\n") * 250_000
    raw = b"".join([b"From: a@example.cn\r\n", *opening, body, *closing])
    parsed, elapsed = timed(raw)
    assert elapsed < HANG_GUARD_S
    assert "too_deep" in parsed.flags


def test_10000_parts() -> None:
    parts = b"".join(b"--p\r\nContent-Type: text/plain\r\n\r\n%d\r\n" % i for i in range(10_000))
    raw = message(
        'From: a@example.cn\nContent-Type: multipart/mixed; boundary="p"', parts + b"--p--\r\n"
    )
    parsed, elapsed = timed(raw)
    assert elapsed < HANG_GUARD_S
    assert "too_many_parts" in parsed.flags
    assert parsed.text.startswith("0\n\n1\n\n2")


def test_nested_message_rfc822_recursion() -> None:
    raw = (
        b"From: a@example.cn\r\n"
        + b"Content-Type: message/rfc822\r\n\r\n" * 5_000
        + b"Subject: x\r\n\r\nhi"
    )
    parsed, elapsed = timed(raw)
    assert elapsed < HANG_GUARD_S
    assert "too_deep" in parsed.flags


def test_25_mb_of_broken_base64() -> None:
    raw = message(
        "From: a@example.cn\nContent-Type: application/pdf\nContent-Disposition: attachment; "
        "filename=x.pdf\nContent-Transfer-Encoding: base64",
        b"QUJD!@#$\r\n" * 2_500_000,
    )
    parsed, elapsed = timed(raw)
    assert elapsed < HANG_GUARD_S
    assert "broken_base64" in parsed.flags
    assert parsed.attachments[0].data.startswith(b"ABCABC")


def test_huge_boundary_and_content_type_in_a_part() -> None:
    raw = message(
        'From: a@example.cn\nContent-Type: multipart/mixed; boundary="' + "b" * 500 + '"',
        b"--"
        + b"b" * 500
        + b"\r\nContent-Type: text/plain; "
        + b"x=y; " * 200_000
        + b"\r\n\r\nhi\r\n",
    )
    parsed, elapsed = timed(raw)
    assert elapsed < HANG_GUARD_S
    assert "malformed_mime" in parsed.flags


def test_deeply_nested_html_body() -> None:
    raw = message(
        "From: a@example.cn\nContent-Type: text/html; charset=utf-8",
        b"<div>" * 100_000 + "深处".encode() + b"<script>alert(1)</script>",
    )
    parsed, elapsed = timed(raw)
    assert elapsed < HANG_GUARD_S
    assert "html_too_deep" in parsed.flags
    assert parsed.text == "深处"
    assert parsed.html is not None and "alert" not in parsed.html


def test_not_bytes_at_all() -> None:
    assert "decode_error" in parse_email(None).flags  # type: ignore[arg-type]  # hostile caller
    assert parse_email(bytearray(b"From: a@example.cn\r\n\r\nx")).from_address == "a@example.cn"  # type: ignore[arg-type]  # tolerated
    assert parse_email(b"").flags == ["missing_from"]


# -- never raises ----------------------------------------------------------------------------------


@given(st.binary(max_size=4_000))
@hypothesis_settings(max_examples=300, deadline=None)
def test_parse_email_never_raises_on_arbitrary_bytes(raw: bytes) -> None:
    assert_well_formed(parse_email(raw))


MIME_NOISE = [
    b"\r\n",
    b"\r\n\r\n",
    b"--",
    b"=?",
    b"?=",
    b"=?utf-8?b?",
    b"=?gb2312?q?=",
    b"boundary=",
    b"Content-Type: multipart/mixed; boundary=b\r\n",
    b"Content-Type: message/rfc822\r\n\r\n",
    b'"',
    b"<",
    b">",
    b"(",
    b")",
    b"\x00",
    b"\xff\xfe",
    b"\xb5\xc1",
    b"charset*=''%",
    b"filename*0*=",
    "\u202e".encode(),
]


@given(
    name=st.sampled_from(FIXTURE_NAMES),
    edits=st.lists(
        st.tuples(
            st.floats(min_value=0, max_value=1),
            st.integers(min_value=0, max_value=40),
            st.one_of(st.binary(max_size=12), st.sampled_from(MIME_NOISE)),
        ),
        max_size=6,
    ),
    truncate=st.one_of(st.none(), st.floats(min_value=0, max_value=1)),
)
@hypothesis_settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_parse_email_never_raises_on_mutated_fixtures(
    name: str, edits: list[tuple[float, int, bytes]], truncate: float | None
) -> None:
    raw = bytearray((FIXTURES / name).read_bytes())
    for where, delete, insert in edits:
        position = int(where * len(raw))
        raw[position : position + delete] = insert
    data = bytes(raw)
    if truncate is not None:
        data = data[: int(truncate * len(data))]
    assert_well_formed(parse_email(data))
