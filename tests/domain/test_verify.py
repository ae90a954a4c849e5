"""Official-channel verification: official, impersonation, unknown — and the tricks."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kefu.domain.verify import (
    ChannelKind,
    OfficialEntry,
    Verdict,
    normalize_entry,
    skeleton,
    verify,
)


def entry(kind: ChannelKind, value: str) -> OfficialEntry:
    normalized = normalize_entry(kind, value)
    assert normalized is not None, value
    return OfficialEntry(kind, normalized)


REGISTRY = [
    entry(ChannelKind.DOMAIN, "kx-exchange.example"),
    entry(ChannelKind.EMAIL, "support@kx-exchange.example"),
    entry(ChannelKind.PHONE, "+86 400 000 0000"),
    entry(ChannelKind.TELEGRAM, "@KXExchange_Official"),
    entry(ChannelKind.TELEGRAM, "@KXSupport_bot"),
    entry(ChannelKind.X, "@KXExchange"),
    entry(ChannelKind.WECHAT, "kxexchange"),
    entry(ChannelKind.WEIBO, "KX交易所官方"),
    entry(ChannelKind.APP, "com.kxexchange.app"),
]


@pytest.mark.parametrize(
    ("query", "kind"),
    [
        ("kx-exchange.example", ChannelKind.DOMAIN),
        ("https://www.kx-exchange.example/zh-CN/login?x=1", ChannelKind.DOMAIN),
        ("HTTPS://KX-EXCHANGE.EXAMPLE", ChannelKind.DOMAIN),
        (
            "ｋｘ－ｅｘｃｈａｎｇｅ．ｅｘａｍｐｌｅ",
            ChannelKind.DOMAIN,
        ),  # full-width forms fold by NFKC
        ("help.kx-exchange.example", ChannelKind.DOMAIN),
        ("support@kx-exchange.example", ChannelKind.EMAIL),
        ("Support@KX-Exchange.example", ChannelKind.EMAIL),
        ("noreply@mail.kx-exchange.example", ChannelKind.EMAIL),  # a domain covers its mailboxes
        ("+86 400 000 0000", ChannelKind.PHONE),
        ("400-000-0000", ChannelKind.PHONE),
        ("4000000000", ChannelKind.PHONE),
        ("(+86) 400 000 0000", ChannelKind.PHONE),
        ("@KXExchange_Official", ChannelKind.TELEGRAM),
        ("https://t.me/KXExchange_Official", ChannelKind.TELEGRAM),
        ("t.me/kxsupport_bot", ChannelKind.TELEGRAM),
        ("https://x.com/KXExchange", ChannelKind.X),
        ("kxexchange", ChannelKind.X),  # also the WeChat id: official either way
        ("KX交易所官方", ChannelKind.WEIBO),
        ("com.kxexchange.app", ChannelKind.APP),
    ],
)
def test_official(query: str, kind: ChannelKind) -> None:
    result = verify(query, REGISTRY)
    assert result.verdict is Verdict.OFFICIAL, result
    assert result.kind is kind
    assert result.matched
    assert "官方" in result.reason


@pytest.mark.parametrize(
    "query",
    [
        "kx-exchange-support.example",  # extra words
        "kx-exchange-help.example",
        "kx-exchanges.example",
        "kxexchange.com",  # same name elsewhere
        "kx-exchange.net",  # different TLD
        "kх-exchange.example",  # Cyrillic х
        "xn--k-exchange-lxi.example",  # punycode of the Cyrillic look-alike
        "https://kx-exchange.example.login-verify.com/",  # official name as a subdomain
        "kx-exchange.com.evil.ru",
        "kx-exchange.examp1e.com",
        "support@kx-exchange-help.example",
        "kxexchange.support@gmail.com",  # official name as a free-mail username
        "+1 400 000 0000",  # same digits, other country code
        "+86 400 000 0001",  # one digit off
        "@KXExchange_0fficial",  # zero for O
        "@KXExchange_Support",
        "@KXExchange_Official\u200b",  # hidden character
        "https://t.me/KXExchange_Help",
        "ＫＸＥｘｃｈａｎｇｅ_客服",
        "com.kxexchange.app.pro",
    ],
)
def test_impersonation(query: str) -> None:
    result = verify(query, REGISTRY)
    assert result.verdict is Verdict.IMPERSONATION, (query, result)
    assert result.matched
    assert "仿冒" in result.reason or "切勿" in result.reason


@pytest.mark.parametrize(
    "query",
    [
        "google.com",
        "someone@qq.com",
        "+86 138 0013 8000",
        "@random_person",
        "hello world",
        "",
        "   ",
        "…",
    ],
)
def test_unknown_is_not_official(query: str) -> None:
    result = verify(query, REGISTRY)
    assert result.verdict is Verdict.UNKNOWN
    assert "诈骗" in result.reason


def test_skeletons_collapse_lookalikes() -> None:
    assert skeleton("KX-Exchange") == skeleton("kх_exchange") == skeleton("kxexchange")
    assert skeleton("0fficial") == skeleton("official")
    assert skeleton("rnodern") == skeleton("modem")
    assert skeleton("kx") != skeleton("kz")


@pytest.mark.parametrize(
    ("kind", "value", "expected"),
    [
        (ChannelKind.DOMAIN, "HTTPS://Www.KX-Exchange.example/", "www.kx-exchange.example"),
        (ChannelKind.PHONE, "400 000 0000", "+864000000000"),
        (ChannelKind.TELEGRAM, "@KXExchange", "kxexchange"),
        (ChannelKind.EMAIL, "Support@KX-Exchange.Example", "support@kx-exchange.example"),
        (ChannelKind.APP, "com.KXexchange.app", "com.kxexchange.app"),
        (ChannelKind.DOMAIN, "not a domain", None),
        (ChannelKind.PHONE, "12", None),
        (ChannelKind.EMAIL, "nope", None),
        (ChannelKind.APP, "x", None),
    ],
)
def test_normalize_entry(kind: ChannelKind, value: str, expected: str | None) -> None:
    assert normalize_entry(kind, value) == expected


@given(st.text(max_size=300))
def test_verify_never_raises(text: str) -> None:
    result = verify(text, REGISTRY)
    assert result.verdict in Verdict
    assert result.reason


def test_the_most_specific_official_name_is_reported() -> None:
    result = verify("t.me/KXExchange_0fficial", REGISTRY)
    assert result.verdict is Verdict.IMPERSONATION
    assert result.matched == "kxexchange_official"
    assert result.kind is ChannelKind.TELEGRAM
