"""Is this channel official? (防骗验证) — pure rules over the official-channel registry.

Customers paste whatever a scammer gave them: a URL, an email address, a phone number
in any format, an ``@handle``, a ``t.me/…`` link. ``verify`` answers ``official``,
``impersonation`` (it imitates an official entry) or ``unknown`` (not official: treat as
a scam), with a reason in Chinese.

Normalisation: NFKC, invisible and bidi characters removed (and noted), IDNA/punycode
decoded, registrable domains from the public suffix list, Unicode TR39 confusable
skeletons (so ``kх-exchange`` with a Cyrillic х, or ``0fficial`` with a zero, match the
real thing), phone numbers through libphonenumber. See docs/security.md.
"""

from __future__ import annotations

import contextlib
import json
import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from functools import cache
from pathlib import Path
from urllib.parse import urlsplit

import idna
import phonenumbers
from publicsuffixlist import PublicSuffixList


class ChannelKind(StrEnum):
    DOMAIN = "domain"
    EMAIL = "email"
    PHONE = "phone"
    TELEGRAM = "telegram"
    X = "x"
    WECHAT = "wechat"
    WEIBO = "weibo"
    APP = "app"


class Verdict(StrEnum):
    OFFICIAL = "official"
    IMPERSONATION = "impersonation"
    UNKNOWN = "unknown"


HANDLE_KINDS = frozenset(
    {ChannelKind.TELEGRAM, ChannelKind.X, ChannelKind.WECHAT, ChannelKind.WEIBO}
)
MAX_QUERY = 500
DEFAULT_REGION = "CN"
_INVISIBLE = {
    *map(chr, range(0x200B, 0x2010)),
    *map(chr, range(0x202A, 0x202F)),
    *map(chr, range(0x2060, 0x2070)),
    "\ufeff",
    "\u00ad",
    "\u061c",
    "\u180e",
}
_URL_HOSTS_TELEGRAM = ("t.me", "telegram.me", "telegram.dog")
_URL_HOSTS_X = ("x.com", "twitter.com", "mobile.twitter.com")
_URL_HOSTS_WEIBO = ("weibo.com", "weibo.cn", "m.weibo.cn")
_HANDLE_RE = re.compile(r"^@?[\w.\-]{2,64}$")
_APP_RE = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z0-9_]+){2,}$")
_PHONE_CHARS_RE = re.compile(r"^[+()\d\s.\-－—–]{6,30}$")
_EMAIL_RE = re.compile(r"^[^@\s]{1,64}@[^@\s]{1,253}$")


@dataclass(frozen=True, slots=True)
class OfficialEntry:
    kind: ChannelKind
    value: str  # normalised with ``normalize_entry``
    label: str = ""


@dataclass(frozen=True, slots=True)
class VerifyResult:
    verdict: Verdict
    kind: ChannelKind | None
    matched: str | None
    reason: str
    normalized: str = ""
    had_invisible: bool = False


@cache
def _psl() -> PublicSuffixList:
    return PublicSuffixList()


@cache
def _prototypes() -> dict[str, str]:
    """TR39 confusables: character → its prototype (what it imitates)."""
    import confusable_homoglyphs  # data file location only

    raw = json.loads(
        (Path(confusable_homoglyphs.__file__).parent / "confusables.json").read_text("utf-8")
    )
    table: dict[str, str] = {}
    for char, homoglyphs in raw.items():
        if len(char) != 1 or len(homoglyphs) != 1:
            continue  # a prototype lists its many look-alikes; skip those rows
        target = homoglyphs[0]["c"].replace("\u200e", "")
        back = raw.get(target)
        # A pair that list only each other: keep the ASCII side as the prototype.
        if back and len(back) == 1 and back[0]["c"] == char and not target.isascii():
            continue
        table[char] = target
    return table


def _clean(text: str) -> tuple[str, bool]:
    text = unicodedata.normalize("NFKC", text.strip())[:MAX_QUERY]
    had = any(ch in _INVISIBLE for ch in text)
    text = "".join(ch for ch in text if ch not in _INVISIBLE and unicodedata.category(ch) != "Cc")
    return text.strip(), had


def skeleton(text: str) -> str:
    """A TR39-style skeleton, lower-cased, with separators dropped: strings that look
    alike get the same skeleton (``KX-Exchange``, ``kх_exchange``, ``kxexchange``)."""
    table = _prototypes()
    out = unicodedata.normalize("NFD", text)
    for _ in range(2):  # prototypes can themselves map once more
        out = "".join(table.get(ch, ch) for ch in out)
    out = unicodedata.normalize("NFD", out).casefold()
    out = "".join(ch for ch in out if unicodedata.category(ch) != "Mn")
    # ASCII look-alikes TR39 leaves to the font: rn/m, vv/w, 0/o, 1/l, i/l.
    out = out.replace("rn", "m").replace("vv", "w").replace("0", "o").replace("1", "l")
    out = out.replace("i", "l").replace("|", "l")
    return re.sub(r"[\s._\-·・]+", "", out)


def _to_unicode_host(host: str) -> str:
    host = host.strip(".").lower()
    labels = []
    for label in host.split("."):
        if label.startswith("xn--"):
            with contextlib.suppress(idna.IDNAError):
                label = idna.decode(label)
        labels.append(label)
    return ".".join(labels)


def _to_ascii_host(host: str) -> str | None:
    try:
        return idna.encode(host, uts46=True).decode("ascii")
    except idna.IDNAError:
        return None


def normalize_domain(text: str) -> str | None:
    text, _ = _clean(text)
    if "://" not in text:
        text = "http://" + text
    try:
        host = urlsplit(text).hostname
    except ValueError:
        return None
    if not host or "." not in host:
        return None
    return _to_unicode_host(host)


def normalize_phone(text: str, region: str = DEFAULT_REGION) -> str | None:
    text, _ = _clean(text)
    text = re.sub(r"[－—–]", "-", text)
    try:
        number = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_possible_number(number):
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def normalize_handle(text: str) -> str:
    text, _ = _clean(text)
    return text.lstrip("@").casefold()


def normalize_entry(kind: ChannelKind, value: str) -> str | None:
    """Canonical form of a registry value, or None if it is not valid for its kind."""
    if kind is ChannelKind.DOMAIN:
        return normalize_domain(value)
    if kind is ChannelKind.EMAIL:
        value, _ = _clean(value)
        if not _EMAIL_RE.match(value):
            return None
        local, _, domain = value.rpartition("@")
        host = normalize_domain(domain)
        return f"{local.casefold()}@{host}" if host else None
    if kind is ChannelKind.PHONE:
        return normalize_phone(value)
    if kind is ChannelKind.APP:
        value, _ = _clean(value)
        value = value.casefold()
        return value if _APP_RE.match(value) else None
    handle = normalize_handle(value)
    return handle or None


def _registrable(host: str) -> str:
    ascii_host = _to_ascii_host(host) or host
    private = _psl().privatesuffix(ascii_host) or ascii_host
    return _to_unicode_host(private)


def _label(registrable: str) -> str:
    """The name part of a registrable domain: ``kx-exchange`` of ``kx-exchange.com.cn``."""
    suffix = _psl().publicsuffix(_to_ascii_host(registrable) or registrable) or ""
    name = (
        registrable[: -len(suffix) - 1]
        if suffix and registrable.endswith("." + suffix)
        else registrable
    )
    return name.split(".")[-1]


def _contains_name(candidate_skeleton: str, official_skeleton: str) -> bool:
    return len(official_skeleton) >= 3 and official_skeleton in candidate_skeleton


def _entries(registry: Iterable[OfficialEntry], *kinds: ChannelKind) -> list[OfficialEntry]:
    return [e for e in registry if e.kind in kinds]


def _official_names(
    registry: Sequence[OfficialEntry], prefer: Iterable[ChannelKind] = ()
) -> list[tuple[str, OfficialEntry]]:
    """Skeletons of every official name (domain labels and handles), the most specific
    first: entries of the preferred kinds, then longer names before shorter ones, so
    ``KXExchange_0fficial`` is reported against ``KXExchange_Official``, not the domain."""
    names: list[tuple[str, OfficialEntry]] = []
    for entry in registry:
        if entry.kind is ChannelKind.DOMAIN:
            names.append((skeleton(_label(_registrable(entry.value))), entry))
        elif entry.kind in HANDLE_KINDS:
            names.append((skeleton(entry.value), entry))
    preferred = set(prefer)
    names = [(s, e) for s, e in names if len(s) >= 3]
    names.sort(key=lambda item: (item[1].kind not in preferred, -len(item[0])))
    return names


def _verify_domain(
    host: str, registry: Sequence[OfficialEntry], had_invisible: bool
) -> VerifyResult:
    for entry in _entries(registry, ChannelKind.DOMAIN):
        if host == entry.value or host.endswith("." + entry.value):
            if had_invisible:
                break  # a real domain with hidden characters is a trick, not our link
            return VerifyResult(
                Verdict.OFFICIAL,
                ChannelKind.DOMAIN,
                entry.value,
                f"这是官方域名 {entry.value}。",
                host,
            )
    registrable = _registrable(host)
    label_skel = skeleton(_label(registrable))
    punycode = any(part.startswith("xn--") for part in (_to_ascii_host(host) or "").split("."))
    for official_skel, entry in _official_names(registry, prefer=[ChannelKind.DOMAIN]):
        official = entry.value
        if label_skel == official_skel:
            if punycode or not _label(registrable).isascii():
                why = "使用了形近的非拉丁字符（同形异义字），"
            elif entry.kind is ChannelKind.DOMAIN and _label(registrable) == _label(
                _registrable(official)
            ):
                why = "名称相同但后缀不同，"
            else:
                why = "与官方名称只差几个易混淆的字符，"
            return _impersonation(
                ChannelKind.DOMAIN, official, host, f"该网址{why}仿冒官方 {official}。"
            )
        if _contains_name(label_skel, official_skel):
            return _impersonation(
                ChannelKind.DOMAIN,
                official,
                host,
                f"该网址在官方名称上加了其他字词，仿冒官方 {official}。",
            )
        # The official name as a subdomain of someone else's domain: kx-exchange.com.evil.ru
        sub_part = host[: -len(registrable)].strip(".") if host != registrable else ""
        if sub_part and _contains_name(skeleton(sub_part), official_skel):
            return _impersonation(
                ChannelKind.DOMAIN,
                official,
                host,
                f"该网址把官方名称放在别人的域名 {registrable} 前面，仿冒官方 {official}。",
            )
    return _unknown(ChannelKind.DOMAIN, host)


def _verify_email(
    address: str, registry: Sequence[OfficialEntry], had_invisible: bool
) -> VerifyResult:
    local, _, domain = address.rpartition("@")
    host = normalize_domain(domain)
    if host is None:
        return _unknown(ChannelKind.EMAIL, address)
    normalized = f"{local.casefold()}@{host}"
    for entry in _entries(registry, ChannelKind.EMAIL):
        if normalized == entry.value and not had_invisible:
            return VerifyResult(
                Verdict.OFFICIAL,
                ChannelKind.EMAIL,
                entry.value,
                f"这是官方邮箱 {entry.value}。",
                normalized,
            )
    by_domain = _verify_domain(host, registry, had_invisible)
    if by_domain.verdict is Verdict.OFFICIAL:
        return VerifyResult(
            Verdict.OFFICIAL,
            ChannelKind.EMAIL,
            by_domain.matched,
            f"该邮箱属于官方域名 {by_domain.matched}。",
            normalized,
        )
    if by_domain.verdict is Verdict.IMPERSONATION:
        return _impersonation(
            ChannelKind.EMAIL,
            by_domain.matched or "",
            normalized,
            "该邮箱的域名" + by_domain.reason.removeprefix("该网址"),
        )
    local_skel = skeleton(local)
    for official_skel, entry in _official_names(registry):
        if _contains_name(local_skel, official_skel):
            return _impersonation(
                ChannelKind.EMAIL,
                entry.value,
                normalized,
                f"该邮箱用官方名称做用户名，但不是官方域名（官方为 {entry.value}）。",
            )
    return _unknown(ChannelKind.EMAIL, normalized)


def _verify_phone(number: str, registry: Sequence[OfficialEntry]) -> VerifyResult:
    phones = _entries(registry, ChannelKind.PHONE)
    for entry in phones:
        if number == entry.value:
            return VerifyResult(
                Verdict.OFFICIAL,
                ChannelKind.PHONE,
                entry.value,
                f"这是官方客服电话 {entry.value}。",
                number,
            )
    parsed = phonenumbers.parse(number, None)
    national = str(parsed.national_number)
    for entry in phones:
        official = phonenumbers.parse(entry.value, None)
        official_national = str(official.national_number)
        if national == official_national:
            return _impersonation(
                ChannelKind.PHONE,
                entry.value,
                number,
                f"号码与官方电话相同但国家/地区区号不同（官方为 {entry.value}）。",
            )
        if len(national) == len(official_national) and _one_edit(national, official_national):
            return _impersonation(
                ChannelKind.PHONE,
                entry.value,
                number,
                f"号码与官方电话只差一位（官方为 {entry.value}）。",
            )
    return _unknown(ChannelKind.PHONE, number)


def _one_edit(a: str, b: str) -> bool:
    diffs = [i for i, (x, y) in enumerate(zip(a, b, strict=True)) if x != y]
    if len(diffs) == 1:
        return True
    return (
        len(diffs) == 2
        and diffs[1] == diffs[0] + 1
        and a[diffs[0]] == b[diffs[1]]
        and a[diffs[1]] == b[diffs[0]]
    )


def _verify_handle(
    handle: str,
    kinds: Sequence[ChannelKind],
    registry: Sequence[OfficialEntry],
    had_invisible: bool,
) -> VerifyResult:
    kind = kinds[0] if len(kinds) == 1 else None
    for entry in _entries(registry, *kinds):
        if handle == entry.value and not had_invisible:
            return VerifyResult(
                Verdict.OFFICIAL,
                entry.kind,
                entry.value,
                f"这是官方{_KIND_NAMES[entry.kind]}账号 {entry.value}。",
                handle,
            )
    skel = skeleton(handle)
    candidates = [
        (s, e)
        for s, e in _official_names(registry, prefer=kinds)
        if e.kind in kinds or e.kind is ChannelKind.DOMAIN
    ]
    for official_skel, entry in candidates:
        if skel == official_skel:
            return _impersonation(
                entry.kind,
                entry.value,
                handle,
                f"该账号与官方账号 {entry.value} 只差几个易混淆的字符。",
            )
    for official_skel, entry in candidates:
        if _contains_name(skel, official_skel):
            return _impersonation(
                entry.kind,
                entry.value,
                handle,
                f"该账号在官方名称上加了其他字词，仿冒官方 {entry.value}。",
            )
    return _unknown(kind, handle)


def _verify_app(app_id: str, registry: Sequence[OfficialEntry]) -> VerifyResult:
    for entry in _entries(registry, ChannelKind.APP):
        if app_id == entry.value:
            return VerifyResult(
                Verdict.OFFICIAL,
                ChannelKind.APP,
                entry.value,
                f"这是官方应用 {entry.value}。",
                app_id,
            )
    skel = skeleton(app_id)
    for entry in _entries(registry, ChannelKind.APP):
        if skel == skeleton(entry.value) or _contains_name(
            skel, skeleton(entry.value.split(".")[1])
        ):
            return _impersonation(
                ChannelKind.APP, entry.value, app_id, f"该应用包名仿冒官方应用 {entry.value}。"
            )
    return _unknown(ChannelKind.APP, app_id)


_KIND_NAMES = {
    ChannelKind.DOMAIN: "网站",
    ChannelKind.EMAIL: "邮箱",
    ChannelKind.PHONE: "电话",
    ChannelKind.TELEGRAM: " Telegram ",
    ChannelKind.X: " X（Twitter）",
    ChannelKind.WECHAT: "微信",
    ChannelKind.WEIBO: "微博",
    ChannelKind.APP: "应用",
}


def _impersonation(kind: ChannelKind, matched: str, normalized: str, reason: str) -> VerifyResult:
    return VerifyResult(
        Verdict.IMPERSONATION,
        kind,
        matched,
        reason + "这是仿冒渠道：切勿登录、转账或透露密码和验证码。",
        normalized,
    )


def _unknown(kind: ChannelKind | None, normalized: str) -> VerifyResult:
    return VerifyResult(
        Verdict.UNKNOWN,
        kind,
        None,
        "这不是登记的官方渠道，请视为诈骗：切勿转账，切勿透露密码、验证码或助记词。",
        normalized,
    )


def verify(query: str, registry: Sequence[OfficialEntry]) -> VerifyResult:
    """Classify whatever the customer pasted and check it against the registry."""
    text, had_invisible = _clean(query)
    if not text:
        return _unknown(None, "")
    lowered = text.casefold()
    # Links to social profiles are handles, not websites.
    if "/" in text or lowered.startswith(("http", "www.")):
        url = text if "://" in text else "https://" + text
        try:
            parts = urlsplit(url)
            host = (parts.hostname or "").casefold()
        except ValueError:
            host, parts = "", None
        path_head = parts.path.strip("/").split("/")[0] if parts is not None else ""
        if host in _URL_HOSTS_TELEGRAM and path_head:
            return _verify_handle(
                normalize_handle(path_head), [ChannelKind.TELEGRAM], registry, had_invisible
            )
        if host in _URL_HOSTS_X and path_head:
            return _verify_handle(
                normalize_handle(path_head), [ChannelKind.X], registry, had_invisible
            )
        if host in _URL_HOSTS_WEIBO and path_head:
            return _verify_handle(
                normalize_handle(path_head), [ChannelKind.WEIBO], registry, had_invisible
            )
        domain = normalize_domain(text)
        if domain is not None:
            return _verify_domain(domain, registry, had_invisible)
        return _unknown(None, text)
    if "@" in text and not text.startswith("@") and _EMAIL_RE.match(text):
        return _verify_email(text, registry, had_invisible)
    if _PHONE_CHARS_RE.match(text) and sum(ch.isdigit() for ch in text) >= 6:
        number = normalize_phone(text)
        if number is not None:
            return _verify_phone(number, registry)
        return _unknown(ChannelKind.PHONE, text)
    if _APP_RE.match(lowered):
        # com.example.app is also a valid domain name; an app entry decides first.
        app = _verify_app(lowered, registry)
        if app.verdict is not Verdict.UNKNOWN:
            return app
    if "." in text and " " not in text and not text.startswith("@"):
        domain = normalize_domain(text)
        if domain is not None:
            return _verify_domain(domain, registry, had_invisible)
    if _HANDLE_RE.match(text) or text.startswith("@"):
        return _verify_handle(normalize_handle(text), list(HANDLE_KINDS), registry, had_invisible)
    # Free text such as a WeChat display name: compare against handles by skeleton.
    return _verify_handle(normalize_handle(text), list(HANDLE_KINDS), registry, had_invisible)
