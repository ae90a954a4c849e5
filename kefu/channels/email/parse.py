"""Inbound mail → ``ParsedEmail``: the email channel's parsing edge.

Owns everything between the raw bytes an MTA hands over and a plain, frozen dataclass:
MIME structure, transfer encodings, Chinese charsets (GB2312 labels read as GB18030,
GBK, Big5-HKSCS, RFC 2047, RFC 2231, raw 8-bit headers), a strict From address, HTML
sanitised with nh3, quoted history, attachments with safe names, auto-replies, bounces
and ``Authentication-Results``. No database, no network: ``actions`` decides what the
result means (which contact, which ticket). See docs/email.md.

``parse_email`` never raises. Whatever goes wrong becomes a string in ``flags`` and the
rest of the message is still returned, best effort. Work is bounded on hostile input
(deep nesting, thousands of parts, megabyte header lines, millions of short lines):
the guards sit in ``_guard_raw`` (before the standard library sees the bytes) and in
``_GuardedMessage`` (while it parses), each with the reason next to it.

Choices worth knowing:

* The contact is only ever the ``From`` address, parsed strictly by our own tokenizer
  (this Python, 3.11.7, lacks the CVE-2023-27043 fix in ``email.utils``). A From that
  could be read two ways yields ``from_address=None`` and the flag ``ambiguous_from``.
  A display name that carries an address other than the real one is dropped and
  flagged ``display_name_spoof``.
* A nested ``message/rfc822`` (a mail forwarded as an attachment) is kept as one
  ``.eml`` attachment — the evidence, original headers included — and its text is
  appended to ``text`` and ``reply_text`` under a "Forwarded message" block so agents
  and search see it. Its own attachments stay inside the ``.eml``. Inside a
  ``multipart/report`` (a bounce) the returned message is an attachment only.
* ``html`` is sanitised; ``cid:`` references become ``kefu-cid:<percent-encoded
  Content-ID>`` (see ``cid_placeholder``) so the caller can point them at stored
  attachments. Remote images are left for the renderer to block or proxy.
* ``reply_text`` is ``text`` with quoted history removed; when nothing is left (a reply
  that is all quote) it falls back to ``text``.
* ``ticket_number_in_subject`` is syntactic (``[#K`` + 8 digits + ``]``); checking the
  Damm digit is ``kefu.domain.tickets.normalize_ticket_number``'s job.
"""

from __future__ import annotations

import binascii
import codecs
import functools
import html as html_lib
import io
import re
import unicodedata
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email import policy as email_policy
from email.feedparser import BytesFeedParser
from email.generator import BytesGenerator
from email.headerregistry import BaseHeader, HeaderRegistry
from email.message import EmailMessage
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import quote, unquote, unquote_to_bytes

import filetype
import nh3

from kefu.domain.tickets import SUBJECT_NUMBER_RE

__all__ = [
    "ParsedAttachment",
    "ParsedEmail",
    "cid_placeholder",
    "extract_text_from_html",
    "parse_email",
    "sanitize_header_value",
    "strip_quoted",
]


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


# --------------------------------------------------------------------------------------
# Result types
# --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ParsedAttachment:
    """One attachment or inline resource, decoded."""

    filename: str  # sanitised: no path, no control or bidi characters, length-limited
    content_type: str  # as declared by the sender, lower-case ``type/subtype``
    data: bytes
    content_id: str | None = None  # without angle brackets
    is_inline: bool = False
    sniffed_type: str | None = None  # from the bytes (``filetype``), when recognisable

    @property
    def size(self) -> int:
        return len(self.data)


@dataclass(frozen=True, slots=True)
class ParsedEmail:
    """Everything kefu reads from one inbound message. Built only by ``parse_email``."""

    message_id: str | None = None
    in_reply_to: list[str] = field(default_factory=list)
    references: list[str] = field(default_factory=list)
    subject: str = ""
    from_address: str | None = None
    from_name: str = ""
    to: list[str] = field(default_factory=list)
    cc: list[str] = field(default_factory=list)
    reply_to: list[str] = field(default_factory=list)
    date: datetime | None = None
    text: str = ""
    html: str | None = None
    reply_text: str = ""
    attachments: list[ParsedAttachment] = field(default_factory=list)
    is_auto_submitted: bool = False
    is_bounce: bool = False
    bounced_recipients: list[str] = field(default_factory=list)
    # The Message-ID of the mail a bounce returns, read from its ``message/rfc822`` or
    # ``text/rfc822-headers`` part (RFC 3464 §2; RFC 6522 §3): most MTAs write no
    # In-Reply-To on a DSN, so this is how a bounce finds the reply that failed.
    returned_message_ids: list[str] = field(default_factory=list)
    auth_results: dict[str, str] = field(default_factory=dict)
    flags: list[str] = field(default_factory=list)
    ticket_number_in_subject: str | None = None


# --------------------------------------------------------------------------------------
# Limits. Each bounds work an attacker controls; the numbers leave ordinary mail alone.
# --------------------------------------------------------------------------------------

# The standard library's feed parser costs about half a microsecond per line whatever
# the line holds; 25 MB of "a\n" took 7 s here. A 35 MB base64 attachment is ~460k lines.
_MAX_LINES: Final = 600_000
# Lines starting with "--" (boundary candidates) allowed per permitted part before the
# message is cut: every MIME part needs one, and 10,000 parts took 8 s to parse here.
_BOUNDARY_LINES_PER_PART: Final = 4
# Headers the standard library parses structurally are cut to this before parsing: its
# parser is super-linear (a 1 MB Content-Type took two minutes here).
_STRUCTURED_HEADER_CAP: Final = 2_048
_HEADER_VALUE_CAP: Final = 16_384
_MIME_HEADER_CAP: Final = 8_192
_MAX_BOUNDARY_LEN: Final = 200  # RFC 2046 §5.1.1 allows 70
_MAX_ADDRESSES: Final = 200
_MAX_MESSAGE_IDS: Final = 100
_MAX_ADDRESS_TOKENS: Final = 4_000
# nh3 (html5ever) is quadratic in the depth of nested block elements: 20,000 nested
# <div>s took 1.8 s, 100,000 took 46 s. Deeper markup is flattened first.
_MAX_HTML_DEPTH: Final = 1_000
_MAX_HTML_CHARS: Final = 1_000_000
_MAX_FILENAME_BYTES: Final = 200
_FEED_CHUNK: Final = 1 << 20

# --------------------------------------------------------------------------------------
# Public helpers
# --------------------------------------------------------------------------------------

# Everything str.splitlines() treats as a line break, plus the other C0/C1 controls,
# lone surrogates and bidi overrides. CVE-2024-6923: email.generator on this Python
# writes such characters inside a header value verbatim, so a value like
# "Re: x\r\nBcc: victim@example.org" would add a header to mail kefu sends.
_HEADER_UNSAFE_RE: Final = re.compile(
    "[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069\ufeff\ud800-\udfff]+"
)


def sanitize_header_value(value: str) -> str:
    """Make ``value`` safe to put in an outgoing header: one line, no control characters.

    Line breaks and controls become a single space (so words stay apart), runs of
    spaces collapse, and the ends are trimmed. Use it on every value kefu puts in a
    header it builds (subject, display names, ticket tags) — see CVE-2024-6923.
    """
    cleaned = _HEADER_UNSAFE_RE.sub(" ", value)
    return re.sub(" {2,}", " ", cleaned).strip()


def cid_placeholder(content_id: str) -> str:
    """The URL ``ParsedEmail.html`` uses for the inline part with this Content-ID."""
    return "kefu-cid:" + quote(content_id, safe="@.-_~+!$*,;=:")


# -- quoted history --------------------------------------------------------------------

# "-----原始邮件-----", "-----Original Message-----", Foxmail/QQ
# "------------------ 原始邮件 ------------------", Thunderbird "-------- 原始信息 --------".
_QUOTE_SEPARATOR_RE: Final = re.compile(
    r"[-—–_=]{2,}\s*(?:原始邮件|原始郵件|原始信息|原邮件|回复的原邮件|original\s+message|original)"
    r"\s*[-—–_=]{2,}",
    re.IGNORECASE,
)
# Outlook's header block: "From:"/"发件人:" followed by Sent/To/Subject lines.
_QUOTE_HEADER_START_RE: Final = re.compile(
    r"\*?\s*(?:from|发件人|發件人|寄件者|寄件人)\s*\*?\s*[:：]", re.IGNORECASE
)
_QUOTE_HEADER_FIELD_RE: Final = re.compile(
    r"\*?\s*(?:sent|date|to|cc|subject|发送时间|發送時間|日期|时间|時間|收件人|收件者|抄送|"
    r"副本|主题|主題|主旨|寄件日期|傳送時間)\s*\*?\s*[:：]",
    re.IGNORECASE,
)
# Attribution lines: Gmail "On … wrote:", 163 "At … wrote:", Gmail/Apple/163 zh
# "在 2026年11月25日 …写道：", Gmail zh "客服 <…> 于2026年11月25日周三 10:00写道：".
_ATTRIBUTION_EN_RE: Final = re.compile(r"(?:on|at)\s.{1,300}\swrote\s?:", re.IGNORECASE)
_ATTRIBUTION_ZH_RE: Final = re.compile(r".{0,300}(?:写道|寫道)\s*[:：]")
_ATTRIBUTION_START_RE: Final = re.compile(r"(?:on|at)\s|在", re.IGNORECASE)
# Cheap filter so long texts only pay the regexes on lines that could start a quote.
_QUOTE_PREFIXES: Final = (
    "-",
    "—",
    "–",
    "_",
    "=",
    "*",
    "from",
    "发件",
    "發件",
    "寄件",
    "on ",
    "at ",
    "在",
)
_QUOTE_END_SUFFIXES: Final = ("wrote:", "wrote :", "写道：", "写道:", "寫道：", "寫道:")
_TRAILING_SEPARATOR_RE: Final = re.compile(r"[-—–_=*]{3,}|--")


def _is_attribution(lines: list[str], index: int) -> bool:
    first = lines[index].strip()
    # Clients wrap a long attribution ("… <\nsupport@kefu.example> wrote:"): join up to
    # three lines, but only when the first one starts like an attribution does.
    for span in (1, 2, 3):
        if span > 1 and not _ATTRIBUTION_START_RE.match(first):
            return False
        if index + span > len(lines):
            return False
        joined = " ".join(line.strip() for line in lines[index : index + span])
        if len(joined) > 400:
            return False
        if _ATTRIBUTION_EN_RE.fullmatch(joined):
            return True
        # A Chinese attribution carries a date or an address; a customer's sentence
        # ending in 写道： rarely does.
        if _ATTRIBUTION_ZH_RE.fullmatch(joined) and re.search(r"\d|@", joined):
            return True
    return False


def _is_header_block(lines: list[str], index: int) -> bool:
    if not _QUOTE_HEADER_START_RE.match(lines[index].strip()):
        return False
    fields = 0
    for line in lines[index + 1 : index + 8]:
        stripped = line.strip()
        if not stripped:
            continue
        if _QUOTE_HEADER_FIELD_RE.match(stripped):
            fields += 1
            if fields >= 2:
                return True
    return False


_QUOTED_LINE_RE: Final = re.compile(r"^[ \t\u3000]*[>＞][^\n]*(?:\n|\Z)", re.MULTILINE)
# Quoted history starts near the top of a reply; past this many lines stop looking.
_QUOTE_SEARCH_LINES: Final = 20_000


def strip_quoted(text: str) -> str:
    """Remove quoted history from a reply: attributions, separators, header blocks, ``>``.

    Cuts at the first line that starts quoted history — ``-----原始邮件-----``,
    ``-----Original Message-----``, Foxmail/QQ ``---- 原始邮件 ----``, an Outlook
    ``From:``/``发件人:`` header block, ``On … wrote:``, ``在 … 写道：`` — then drops
    remaining ``>``-quoted lines and trailing separators. May return ``""``.
    """
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    cut = len(lines)
    for index, line in enumerate(lines[:_QUOTE_SEARCH_LINES]):
        stripped = line.strip()
        if not stripped[:5].lower().startswith(_QUOTE_PREFIXES) and not stripped.endswith(
            _QUOTE_END_SUFFIXES
        ):
            continue
        if (
            _QUOTE_SEPARATOR_RE.fullmatch(stripped)
            or _is_header_block(lines, index)
            or _is_attribution(lines, index)
        ):
            cut = index
            break
    head = _QUOTED_LINE_RE.sub("", "\n".join(lines[:cut]))
    kept = head.rstrip().split("\n")
    while kept and (not kept[-1].strip() or _TRAILING_SEPARATOR_RE.fullmatch(kept[-1].strip())):
        kept.pop()
    return "\n".join(kept).strip("\n")


# -- HTML ------------------------------------------------------------------------------

_SAFE_URL_SCHEMES: Final = frozenset({"http", "https", "mailto", "tel", "cid"})
_SAFE_TAGS: Final = frozenset(nh3.ALLOWED_TAGS | {"font", "tfoot"})
_SAFE_ATTRIBUTES: Final[dict[str, set[str]]] = {
    tag: set(attributes) for tag, attributes in nh3.ALLOWED_ATTRIBUTES.items()
}
_SAFE_ATTRIBUTES["*"] = {"style", "title", "dir", "lang"}
_SAFE_ATTRIBUTES.setdefault("a", set()).update({"href", "title"})
_SAFE_ATTRIBUTES.setdefault("img", set()).update({"title", "border"})
_SAFE_ATTRIBUTES["font"] = {"color", "size", "face"}
for _tag in ("table", "td", "th", "tr", "tbody", "thead", "tfoot"):
    _SAFE_ATTRIBUTES.setdefault(_tag, set()).update(
        {"width", "height", "valign", "bgcolor", "border", "cellpadding", "cellspacing"}
    )
for _tag in ("p", "div", "h1", "h2", "h3", "h4", "h5", "h6"):
    _SAFE_ATTRIBUTES.setdefault(_tag, set()).add("align")
# Presentation only. No position/display/visibility (overlays and hidden text in the
# agent console), no background (url() tracking pixels), no content/behavior.
_SAFE_STYLE_PROPERTIES: Final = _words(
    "color background-color font font-family font-size font-style font-weight text-align "
    "text-decoration text-indent line-height letter-spacing white-space vertical-align "
    "direction width height max-width margin margin-top margin-right margin-bottom "
    "margin-left padding padding-top padding-right padding-bottom padding-left border "
    "border-top border-right border-bottom border-left border-color border-style "
    "border-width border-collapse list-style-type"
)
_TEXT_BLOCK_TAGS: Final = _words(
    "address article aside blockquote br caption center dd details div dl dt figcaption "
    "figure footer h1 h2 h3 h4 h5 h6 header hr li main nav ol p pre section summary table "
    "td th tr ul"
)
_TEXT_DROP_CONTENT_TAGS: Final = frozenset({"script", "style", "title", "template"})
_SCRIPT_IN_HTML_RE: Final = re.compile(
    r"<\s*script\b|javascript\s*:|vbscript\s*:|[\s/\"']on[a-z]{3,24}\s*=", re.IGNORECASE
)
# A base64 data: URI is dropped by the sanitiser anyway (the scheme is not allowed);
# removing it first keeps a multi-megabyte inline image from pushing the text past
# the size cap.
_DATA_URI_RE: Final = re.compile(
    r"data:[^\s\"'<>,;]{0,100}(?:;[^\s\"'<>,;]{0,100}){0,5};base64,[A-Za-z0-9+/=\r\n]*",
    re.IGNORECASE,
)
_HTML_TAG_RE: Final = re.compile(r"<(/?)([a-zA-Z][a-zA-Z0-9:-]{0,40})[^<>]{0,2048}?(/?)>")
_MAX_HTML_TAGS_UNCHECKED: Final = _MAX_HTML_DEPTH
_HTML_VOID_OR_AUTOCLOSED: Final = _words(
    "area base br col embed hr img input link meta param source track wbr "
    # end tags optional: the parser closes these itself, they do not nest
    "p li dt dd tr td th option optgroup thead tbody tfoot colgroup rb rt rp html head body"
)
_FLATTEN_BLOCK_RE: Final = re.compile(
    r"<\s*/?\s*(?:div|p|br|li|tr|h[1-6]|blockquote|section|article|ul|ol|dl|dt|dd|table|"
    r"pre|center|address|aside|nav|header|footer|main|figure|fieldset|details|summary|"
    r"menu|dir|listing|hr)\b[^<>]*>",
    re.IGNORECASE,
)
_FLATTEN_OTHER_RE: Final = re.compile(r"<\s*/?\s*(?!(?:script|style|br)\b)[a-zA-Z][^<>]*>")
_TEXT_TOKEN_RE: Final = re.compile(r"<(/?)([a-zA-Z0-9]+)[^>]*>|([^<]+)|<")
_WHITESPACE_RE: Final = re.compile(r"[ \t\n\r\f\v]+")


def _html_too_deep(html: str) -> bool:
    depth = 0
    for closing, name, self_closing in _HTML_TAG_RE.findall(html):
        if self_closing or name.lower() in _HTML_VOID_OR_AUTOCLOSED:
            continue
        if closing:
            depth = max(0, depth - 1)
            continue
        depth += 1
        if depth > _MAX_HTML_DEPTH:
            return True
    return False


def _prepare_html(html: str, flags: _Flags) -> str:
    """Bound the work nh3 will do on ``html``: size and nesting depth."""
    if "data:" in html or "DATA:" in html:
        html = _DATA_URI_RE.sub("data:,", html)
    if len(html) > _MAX_HTML_CHARS:
        flags.add("html_truncated")
        html = html[:_MAX_HTML_CHARS]
    # Nesting deeper than the tag count is impossible: only count when it could matter.
    if html.count("<") > _MAX_HTML_TAGS_UNCHECKED and _html_too_deep(html):
        flags.add("html_too_deep")
        # Keep the words and line breaks, drop the structure; script and style stay so
        # the sanitiser still removes their content.
        html = _FLATTEN_BLOCK_RE.sub("<br>", html)
        html = _FLATTEN_OTHER_RE.sub("", html)
    return html


def _cid_attribute_filter(tag: str, attribute: str, value: str) -> str | None:
    # nh3 reports an exception raised here through sys.unraisablehook; never raise.
    try:
        lowered = value[:16].lower()
        if attribute in ("src", "href") and lowered.startswith("cid:"):
            # RFC 2392: a cid: URL holds the Content-ID percent-encoded.
            content_id = unquote(value[4:]).strip().strip("<>").strip()
            return cid_placeholder(content_id) if content_id else None
        if attribute == "style":
            lowered_style = value.lower()
            # url() fetches (tracking), expression() and escapes evade the property filter.
            if "url(" in lowered_style or "expression" in lowered_style or "\\" in value:
                return None
        return value
    except Exception:
        return None


def _sanitize_html(prepared: str) -> str:
    """Sanitise HTML already bounded by ``_prepare_html``."""
    return nh3.clean(
        prepared,
        tags=_SAFE_TAGS,
        clean_content_tags=_TEXT_DROP_CONTENT_TAGS,
        attributes=_SAFE_ATTRIBUTES,
        attribute_filter=_cid_attribute_filter,
        url_schemes=_SAFE_URL_SCHEMES,
        # A relative URL would resolve against kefu's own origin in the agent console.
        url_relative="deny",
        link_rel="noopener noreferrer nofollow",
        filter_style_properties=_SAFE_STYLE_PROPERTIES,
        strip_comments=True,
    )


def _html_to_text(prepared: str) -> str:
    """Plain text from HTML already bounded by ``_prepare_html``."""
    # Let nh3 (a real HTML5 parser) normalise the markup down to block tags without
    # attributes, so the tokenizer below only ever sees well-formed, escaped output.
    cleaned = nh3.clean(
        prepared,
        tags=_TEXT_BLOCK_TAGS,
        attributes={},
        clean_content_tags=_TEXT_DROP_CONTENT_TAGS,
        strip_comments=True,
        link_rel=None,
    )
    lines: list[tuple[int, str]] = []
    current: list[str] = []
    has_text = False
    quote_depth = in_pre = 0

    def end_line() -> None:
        nonlocal has_text
        lines.append((quote_depth, "".join(current)))
        current.clear()
        has_text = False

    for closing, name, chunk in _TEXT_TOKEN_RE.findall(cleaned):
        if not name:
            chunk = html_lib.unescape(chunk or "<").replace("\xa0", " ")
            if in_pre:
                *complete, rest = chunk.split("\n")
                for piece in complete:
                    current.append(piece)
                    end_line()
                chunk = rest
            else:
                chunk = _WHITESPACE_RE.sub(" ", chunk)
            current.append(chunk)
            has_text = has_text or bool(chunk.strip())
            continue
        name = name.lower()
        if name == "br":
            end_line()
        elif name in ("td", "th"):
            if not closing:
                current.append(" ")
            continue
        elif has_text:  # any other block boundary ends a line that has text
            end_line()
        else:
            current.clear()
        if name == "blockquote":
            quote_depth = max(0, quote_depth + (-1 if closing else 1))
        elif name == "pre":
            in_pre = max(0, in_pre + (-1 if closing else 1))
        elif name == "p":
            lines.append((quote_depth, ""))
    if has_text:
        end_line()

    out: list[str] = []
    for depth, line in lines:
        stripped = line.strip()
        prefix = "> " * min(depth, 20)  # 1,000 nested quotes × every line would balloon
        rendered = (prefix + stripped) if stripped else prefix.rstrip()
        if not rendered.strip(" >") and out and not out[-1].strip(" >"):
            continue  # at most one blank line in a row
        out.append(rendered)
    while out and not out[0].strip(" >"):
        out.pop(0)
    while out and not out[-1].strip(" >"):
        out.pop()
    return "\n".join(out)


def extract_text_from_html(html: str) -> str:
    """Readable plain text from an HTML body.

    Block elements and ``<br>`` become line breaks, ``<blockquote>`` content is prefixed
    with ``> `` (so ``strip_quoted`` works on HTML-only replies), script/style/title
    content is dropped, entities are decoded and whitespace is collapsed as a browser
    would.
    """
    try:
        return _html_to_text(_prepare_html(html, _Flags()))
    except Exception:
        return ""


# --------------------------------------------------------------------------------------
# Flags and small text helpers
# --------------------------------------------------------------------------------------


class _Flags:
    """An ordered set of flag strings."""

    __slots__ = ("_seen",)

    def __init__(self) -> None:
        self._seen: dict[str, None] = {}

    def add(self, flag: str) -> None:
        self._seen[flag] = None

    def __contains__(self, flag: object) -> bool:
        return flag in self._seen

    def as_list(self) -> list[str]:
        return list(self._seen)


@contextmanager
def _best_effort(flags: _Flags) -> Iterator[None]:
    """Run one stage; a failure becomes the ``decode_error`` flag, not an exception."""
    try:
        yield
    except Exception:
        flags.add("decode_error")


_TEXT_CONTROL_RE: Final = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ud800-\udfff]")
_LINE_CONTROL_RE: Final = re.compile("[\x00-\x1f\x7f\ud800-\udfff]+")
_BIDI_CONTROLS: Final = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
_BIDI_RE: Final = re.compile("[\u202a-\u202e\u2066-\u2069]")


def _clean_body_text(text: str, flags: _Flags) -> str:
    if "\x00" in text:
        flags.add("nul_bytes")
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = _TEXT_CONTROL_RE.sub("", text)
    return text.removeprefix("\ufeff")


def _clean_line(text: str, flags: _Flags) -> str:
    """A header value for display: NULs gone (flagged), other controls become spaces."""
    if "\x00" in text:
        flags.add("nul_bytes")
        text = text.replace("\x00", "")
    return _LINE_CONTROL_RE.sub(" ", text).strip()


def _clean_name(text: str, flags: _Flags) -> str:
    text = _BIDI_RE.sub("", _clean_line(text, flags))
    return " ".join(text.split())[:200]


# --------------------------------------------------------------------------------------
# Charsets
# --------------------------------------------------------------------------------------

# GB2312 labels are decoded as GB18030: senders label GBK/GB18030 text "gb2312" all the
# time (镕 is GBK-only, 䶮 and 𠀀 GB18030-only), and GB18030 is a superset of both.
_GB_LABELS: Final = _words(
    "gb2312 gb_2312 gb_2312-80 gb2312-80 csgb2312 csiso58gb231280 iso-ir-58 chinese "
    "euc-cn euccn x-euc-cn gbk x-gbk cp936 ms936 windows-936 gb18030 gb-18030 x-gb18030"
)
# Big5 is decoded as Big5-HKSCS (a superset carrying Hong Kong characters), then as
# cp950 (Microsoft's variant, a few different symbols).
_BIG5_LABELS: Final = _words(
    "big5 big-5 big5-hkscs big5hkscs x-big5 cn-big5 csbig5 cp950 ms950 windows-950 x-x-big5"
)
_GB_CODECS: Final = ("gb18030",)
_BIG5_CODECS: Final = ("big5hkscs", "cp950")
_FALLBACK_CODECS: Final = ("utf-8", "gb18030", "big5hkscs")
# Text codecs that are not charsets: escape-sequence interpreters and the like.
_FORBIDDEN_CODECS: Final = frozenset(
    {"unicode-escape", "raw-unicode-escape", "idna", "punycode", "undefined", "mbcs", "oem"}
)
_CHARSET_LABEL_RE: Final = re.compile(r"[a-z0-9][a-z0-9_.:+\-]{0,39}")


@functools.lru_cache(maxsize=256)
def _codecs_for(label: str) -> tuple[str, ...] | None:
    """Python codecs to try, in order, for a declared charset; None when unknown."""
    label = label.strip().strip("\"'").strip().lower()
    if label in _GB_LABELS:
        return _GB_CODECS
    if label in _BIG5_LABELS:
        return _BIG5_CODECS
    if not _CHARSET_LABEL_RE.fullmatch(label):
        return None
    try:
        name = codecs.lookup(label).name
        # Raises LookupError for bytes-to-bytes codecs (base64, zlib, rot13 …).
        b"x".decode(name, "replace")
    except (LookupError, ValueError):
        return None
    if name in _FORBIDDEN_CODECS:
        return None
    if name in ("gbk", "gb2312", "gb18030"):
        return _GB_CODECS
    if name in ("big5", "cp950", "big5hkscs"):
        return _BIG5_CODECS
    if name == "ascii":
        # 8-bit text labelled us-ascii is common; UTF-8 is the superset to try.
        return ("utf-8",)
    if name in ("iso8859-1", "cp1252"):
        # Latin-1 labels on UTF-8 text are common; real Latin-1 is rarely valid UTF-8.
        return ("utf-8", "cp1252", "latin-1")
    return (name,)


def _decode_bytes(data: bytes, label: str | None, flags: _Flags) -> str:
    """Decode text in a declared charset, falling back without ever raising."""
    declared: tuple[str, ...] = ()
    if label:
        found = _codecs_for(label)
        if found is None:
            flags.add("unknown_charset")
        else:
            declared = found
    order = list(declared) + [name for name in _FALLBACK_CODECS if name not in declared]
    for position, name in enumerate(order):
        try:
            text = data.decode(name)
        except (UnicodeDecodeError, LookupError):
            if position == 0:
                # A damaged byte or a truncated last character: keep the first choice
                # with a few U+FFFD rather than read the whole part as another charset
                # (GB18030 accepts most UTF-8 byte pairs and would return mojibake).
                text = data.decode(name, "replace")
                if text.count("\ufffd") <= max(2, len(text) // 200):
                    flags.add("decode_error")
                    return text
            continue
        if declared and position >= len(declared):
            flags.add("charset_mismatch")
        return text
    flags.add("decode_error")
    return data.decode(order[0], "replace")


def _decode_raw_8bit(data: bytes, hint: tuple[str, ...], flags: _Flags) -> str:
    """Undeclared 8-bit bytes (raw header text): UTF-8, the body's charset, GB18030,
    Big5, and Latin-1 (flagged) as the decoder that cannot fail."""
    order = ["utf-8"]
    for name in (*hint, *_FALLBACK_CODECS):
        if name not in order:
            order.append(name)
    for name in order:
        try:
            return data.decode(name)
        except (UnicodeDecodeError, LookupError):
            continue
    flags.add("unknown_charset")
    return data.decode("latin-1")


# --------------------------------------------------------------------------------------
# Transfer encodings
# --------------------------------------------------------------------------------------

_BASE64_ALPHABET: Final = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
_NOT_BASE64: Final = bytes(b for b in range(256) if b not in _BASE64_ALPHABET)
_NOT_BASE64_OR_PAD: Final = bytes(b for b in _NOT_BASE64 if b != ord("="))


def _b64_segment(segment: bytes) -> bytes:
    usable = len(segment) - len(segment) % 4
    out = binascii.a2b_base64(segment[:usable]) if usable else b""
    tail = segment[usable:]
    if len(tail) >= 2:  # a single leftover character carries no whole byte
        out += binascii.a2b_base64(tail + b"=" * (4 - len(tail)))
    return out


def _decode_base64(data: bytes) -> tuple[bytes, bool]:
    """Decode base64; (bytes, broken). Broken input is decoded as far as it goes."""
    compact = data.translate(None, b" \t\r\n\x0b\x0c")
    try:
        return binascii.a2b_base64(compact, strict_mode=True), False
    except (binascii.Error, ValueError):
        pass
    kept = compact.translate(None, _NOT_BASE64_OR_PAD)
    # Some mailers concatenate separately padded chunks ("QQ==Qg=="): decode each.
    segments = [s for s in re.split(rb"=+", kept) if s]
    if len(segments) > 64:
        segments = [kept.translate(None, b"=")]
    return b"".join(_b64_segment(s) for s in segments), True


def _decode_uu(data: bytes) -> bytes:
    out = bytearray()
    inside = False
    for line in data.splitlines():
        if not inside:
            inside = line.startswith(b"begin ")
            continue
        if line.strip() in (b"end", b"`"):
            break
        try:
            out += binascii.a2b_uu(line)
        except binascii.Error:
            continue
    return bytes(out)


# --------------------------------------------------------------------------------------
# Header text: unfolding, raw 8-bit, RFC 2047
# --------------------------------------------------------------------------------------

_FOLD_RE: Final = re.compile(r"\r?\n(?=[ \t])")
_ENCODED_WORD_RE: Final = re.compile(r"=\?([^?\s]{1,64})\?([bBqQ])\?([^?]*)\?=")


def _unfold(value: str) -> str:
    # RFC 5322 §2.2.3: unfolding removes the CRLF, keeps the whitespace after it.
    return _FOLD_RE.sub("", value).replace("\r", "").replace("\n", "")


def _raw_header_text(value: str, flags: _Flags, hint: tuple[str, ...]) -> str:
    """Unfold a raw header value and decode raw 8-bit bytes in it (not RFC 2047)."""
    value = _unfold(value)
    if value.isascii():
        return value
    # The parser hands 8-bit bytes over as surrogate escapes; get the bytes back.
    return _decode_raw_8bit(value.encode("utf-8", "surrogateescape"), hint, flags)


def _decode_encoded_words(value: str, flags: _Flags) -> str:
    """Decode RFC 2047 encoded words anywhere in ``value``.

    Adjacent encoded words in the same charset are joined as bytes before decoding:
    encoders split multi-byte characters across words (RFC 2047 §5 forbids it, mailers
    do it anyway), and decoding word by word would garble them. Whitespace between
    encoded words is dropped (RFC 2047 §6.2).
    """
    if "=?" not in value:
        return value
    out: list[str] = []
    run_label: str | None = None
    run_key: object = None
    run = bytearray()

    def flush() -> None:
        nonlocal run_label, run_key
        if run_label is not None:
            out.append(_decode_bytes(bytes(run), run_label, flags))
        run_label, run_key = None, None
        run.clear()

    position = 0
    for match in _ENCODED_WORD_RE.finditer(value):
        between = value[position : match.start()]
        if between and not (run_label is not None and not between.strip(" \t")):
            flush()
            out.append(between)
        label = match.group(1).split("*", 1)[0]  # RFC 2231 §5: charset*language
        payload = match.group(3).encode("utf-8", "surrogateescape")
        if match.group(2) in "bB":
            data, broken = _decode_base64(payload)
            if broken:
                flags.add("broken_base64")
        else:
            data = binascii.a2b_qp(payload, header=True)
        key = _codecs_for(label) or label.lower()
        if run_label is None or key != run_key:
            flush()
            run_label, run_key = label, key
        run.extend(data)
        position = match.end()
    flush()
    out.append(value[position:])
    return "".join(out)


def _header_text(value: str | None, flags: _Flags, hint: tuple[str, ...]) -> str:
    """An unstructured header (Subject) as display text."""
    if value is None:
        return ""
    return _clean_line(_decode_encoded_words(_raw_header_text(value, flags, hint), flags), flags)


class _Headers:
    """A message's raw headers by lower-case name, each value size-capped."""

    __slots__ = ("_values", "total_bytes")

    def __init__(self, items: Iterable[tuple[str, Any]], flags: _Flags, cap: int) -> None:
        self._values: dict[str, list[str]] = {}
        self.total_bytes = 0
        for name, raw_value in items:
            value = str(raw_value)
            self.total_bytes += len(name) + len(value) + 2
            values = self._values.setdefault(name.strip().lower(), [])
            if len(values) >= 100:
                continue
            if len(value) > cap:
                flags.add("huge_headers")
                # Threading needs the newest ids, which come last in References.
                half = cap // 2
                value = (
                    value[:half] + " " + value[-half:]
                    if name.lower() == "references"
                    else value[:cap]
                )
            values.append(value)

    def first(self, name: str) -> str | None:
        values = self._values.get(name)
        return values[0] if values else None

    def all(self, name: str) -> list[str]:
        return self._values.get(name, [])

    def __contains__(self, name: object) -> bool:
        return name in self._values


# --------------------------------------------------------------------------------------
# Addresses (strict). CVE-2023-27043: email.utils.parseaddr/getaddresses on this Python
# read "alice@example.org)<bob@example.com>" and similar as the wrong address, and the
# policy.default header classes are lenient by design. From decides who the contact is,
# so it gets its own tokenizer, and anything that could be read two ways is rejected.
# --------------------------------------------------------------------------------------

_ADDRESS_SPECIALS: Final = frozenset(",:;@.[]\\")
_ATOM_STOP: Final = frozenset(' \t\r\n,:;@.[]\\"()<>')
_LOCAL_ATOM_RE: Final = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~\-\u00a0-\U0010ffff]+")
_ASCII_LABEL_RE: Final = re.compile(r"[a-z0-9-]+")
_ADDRESS_LIKE_RE: Final = re.compile(r"[^\s@<>()\"',;:]+@[^\s@<>()\"',;:]+\.[^\s@<>()\"',;:]+")
_AUTOMATED_LOCAL_PARTS: Final = frozenset(
    {"mailer-daemon", "postmaster", "noreply", "no-reply", "donotreply", "do-not-reply"}
)

_Token = tuple[str, str]  # (kind, text): atom, qs, comment, angle, special, ws


def _tokenize_addresses(text: str) -> list[_Token] | None:
    """RFC 5322 address tokens, or None when quoting/nesting is unbalanced."""
    tokens: list[_Token] = []
    index, length = 0, len(text)
    while index < length:
        if len(tokens) > _MAX_ADDRESS_TOKENS:
            return None
        char = text[index]
        if char in " \t\r\n":
            if tokens and tokens[-1][0] != "ws":
                tokens.append(("ws", " "))
            index += 1
        elif char == '"':
            end = index + 1
            buffer: list[str] = []
            while end < length and text[end] != '"':
                if text[end] == "\\" and end + 1 < length:
                    end += 1
                buffer.append(text[end])
                end += 1
            if end >= length:
                return None  # unterminated quoted-string
            tokens.append(("qs", "".join(buffer)))
            index = end + 1
        elif char == "(":
            depth, end = 1, index + 1
            buffer = []
            while end < length:
                current = text[end]
                if current == "\\" and end + 1 < length:
                    buffer.append(text[end + 1])
                    end += 2
                    continue
                if current == "(":
                    depth += 1
                elif current == ")":
                    depth -= 1
                    if depth == 0:
                        break
                buffer.append(current)
                end += 1
            if depth:
                return None  # unterminated comment
            tokens.append(("comment", "".join(buffer)))
            index = end + 1
        elif char == "<":
            end = text.find(">", index + 1)
            if end < 0:
                return None  # unterminated angle-addr
            inner = text[index + 1 : end]
            if "<" in inner:
                return None  # "<a<b>": which one?
            tokens.append(("angle", inner))
            index = end + 1
        elif char in ")>":
            # A closer with no opener: the CVE-2023-27043 shape
            # "alice@example.org)<bob@example.com>".
            return None
        elif char in _ADDRESS_SPECIALS:
            tokens.append(("special", char))
            index += 1
        else:
            end = index
            while end < length and text[end] not in _ATOM_STOP:
                end += 1
            tokens.append(("atom", text[index:end]))
            index = end
    return tokens


def _split_mailboxes(tokens: list[_Token]) -> tuple[list[list[_Token]], bool]:
    """Split on top-level commas; (mailboxes, whether group syntax appeared)."""
    elements: list[list[_Token]] = [[]]
    has_group = False
    for token in tokens:
        if token == ("special", ","):
            elements.append([])
        elif token == ("special", ":"):
            has_group = True
            elements[-1] = []  # the group's display name
        elif token == ("special", ";"):
            has_group = True
            elements.append([])
        else:
            elements[-1].append(token)
    meaningful = [e for e in elements if any(kind not in ("ws", "comment") for kind, _ in e)]
    return meaningful, has_group


def _validate_addr_spec(text: str) -> str | None:
    """``local@domain`` as a lower-case address, or None. Dot-atom local parts only."""
    if len(text) > 254 or text.count("@") != 1:
        return None
    local, domain = text.split("@")
    if not local or len(local) > 64:
        return None
    for atom in local.split("."):
        if not atom or not _LOCAL_ATOM_RE.fullmatch(atom):
            return None
    if not text.isascii() and any(unicodedata.category(c)[0] in "CZ" for c in text):
        return None  # invisible or spacing characters inside an address
    domain = domain.lower().removesuffix(".")
    labels = domain.split(".")
    if len(labels) < 2 or labels[-1].isdigit():
        return None
    for label in labels:
        if not 1 <= len(label) <= 63 or label.startswith("-") or label.endswith("-"):
            return None
        if label.isascii():
            if not _ASCII_LABEL_RE.fullmatch(label):
                return None
        elif not all(c.isalnum() or c == "-" for c in label):
            return None
    return f"{local.lower()}@{domain}"


def _phrase(tokens: list[_Token], flags: _Flags) -> str:
    pieces: list[str] = []
    for kind, text in tokens:
        if kind in ("atom", "qs"):
            pieces.append(text)
        elif kind == "ws":
            pieces.append(" ")
        elif kind == "special":
            pieces.append(text)
    return _clean_name(_decode_encoded_words("".join(pieces).strip(), flags), flags)


def _parse_mailbox(tokens: list[_Token], flags: _Flags) -> tuple[str | None, str, str | None]:
    """One mailbox → (address, display name, problem). problem is None, "ambiguous"
    (the tokens admit more than one reading) or "invalid" (no valid address)."""
    angles = [i for i, (kind, _) in enumerate(tokens) if kind == "angle"]
    if len(angles) > 1:
        return None, "", "ambiguous"
    if angles:
        position = angles[0]
        before, after = tokens[:position], tokens[position + 1 :]
        # Only comments may follow the angle-addr.
        if any(kind not in ("ws", "comment") for kind, _ in after):
            return None, "", "ambiguous"
        # An unquoted "@" (or other special) in the display name is not a phrase:
        # "alice@example.org <bob@example.com>" names two addresses.
        if any(kind == "special" and text != "." for kind, text in before):
            return None, "", "ambiguous"
        address = _validate_addr_spec(tokens[position][1].strip())
        if address is None:
            return None, "", "invalid"
        return address, _phrase(before, flags), None
    core = [token for token in tokens if token[0] != "comment"]
    while core and core[0][0] == "ws":
        core.pop(0)
    while core and core[-1][0] == "ws":
        core.pop()
    if not core:
        return None, "", "invalid"
    # A bare addr-spec: atoms and specials only. Whitespace inside it or a quoted local
    # part ('"support@kefu.example"@evil.example') is refused.
    if any(kind not in ("atom", "special") for kind, _ in core):
        return None, "", "ambiguous"
    address = _validate_addr_spec("".join(text for _, text in core))
    if address is None:
        return None, "", "invalid"
    comments = [text for kind, text in tokens if kind == "comment"]
    name = _clean_name(_decode_encoded_words(comments[-1], flags), flags) if comments else ""
    return address, name, None


def _parse_from(
    values: list[str], flags: _Flags, hint: tuple[str, ...]
) -> tuple[str | None, str, str]:
    """The From header → (address or None, display name, raw text). Strict; flags why."""
    if not values:
        flags.add("missing_from")
        return None, "", ""
    raw = _raw_header_text(values[0], flags, hint)
    if len(values) > 1:
        flags.add("ambiguous_from")  # two From headers: which one is the author?
        return None, "", raw
    tokens = _tokenize_addresses(raw)
    if tokens is None:
        flags.add("ambiguous_from")
        return None, "", raw
    mailboxes, has_group = _split_mailboxes(tokens)
    if has_group or len(mailboxes) != 1:
        flags.add("ambiguous_from" if mailboxes else "missing_from")
        return None, "", raw
    address, name, problem = _parse_mailbox(mailboxes[0], flags)
    if problem is not None or address is None:
        flags.add("ambiguous_from" if problem == "ambiguous" else "invalid_from")
        return None, "", raw
    if not address.isascii():
        flags.add("non_ascii_from")
    # '"support@kefu.example" <attacker@evil.example>': the name is the lie agents see.
    # NFKC first so a full-width ＠ does not slip past.
    shown = [
        m.strip(".").lower() for m in _ADDRESS_LIKE_RE.findall(unicodedata.normalize("NFKC", name))
    ]
    if any(candidate != address for candidate in shown):
        flags.add("display_name_spoof")
        name = ""
    return address, name, raw


def _parse_address_list(values: list[str], flags: _Flags, hint: tuple[str, ...]) -> list[str]:
    """To/Cc/Reply-To: valid addresses only, lower-case, de-duplicated; never raises."""
    found: dict[str, None] = {}
    for value in values:
        text = _raw_header_text(value, flags, hint)
        tokens = _tokenize_addresses(text)
        if tokens is None:
            candidates = [_validate_addr_spec(c.strip(".")) for c in _ADDRESS_LIKE_RE.findall(text)]
        else:
            candidates = [
                _parse_mailbox(mailbox, flags)[0] for mailbox in _split_mailboxes(tokens)[0]
            ]
        for address in candidates:
            if address is not None and len(found) < _MAX_ADDRESSES:
                found[address] = None
    return list(found)


# --------------------------------------------------------------------------------------
# Message-IDs, dates, Authentication-Results
# --------------------------------------------------------------------------------------

_ANGLE_ID_RE: Final = re.compile(r"<([^<>]*)>")


def _normalize_message_id(text: str) -> str | None:
    text = text.strip().strip("<>").strip()
    if not text or len(text) > 250 or any(c.isspace() or ord(c) < 0x20 for c in text):
        return None
    if "@" in text:
        local, _, domain = text.rpartition("@")
        text = f"{local}@{domain.lower()}"
    return text


def _message_ids(value: str | None) -> list[str]:
    if not value:
        return []
    value = _unfold(value)
    raw_ids = _ANGLE_ID_RE.findall(value) or value.split()
    ids: dict[str, None] = {}
    for raw_id in raw_ids:
        normalized = _normalize_message_id(raw_id)
        if normalized is not None:
            ids[normalized] = None
    result = list(ids)
    if len(result) > _MAX_MESSAGE_IDS:
        # Keep the thread's root and its newest ancestors.
        result = result[:1] + result[-(_MAX_MESSAGE_IDS - 1) :]
    return result


def _parse_date(value: str | None, flags: _Flags) -> datetime | None:
    if not value:
        return None
    text = _unfold(value).strip()[:200]
    try:
        parsed = parsedate_to_datetime(text)
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=UTC)  # RFC 5322 "-0000": zone unknown
        return parsed.astimezone(UTC)
    except (TypeError, ValueError, IndexError, OverflowError):
        flags.add("bad_date")
        return None


_RESINFO_RE: Final = re.compile(r"([a-z][a-z0-9_-]{0,30})(?:/[0-9]+)?\s*=\s*([a-z]{1,20})\b")
_COMMENT_RE: Final = re.compile(r"\([^()]*\)")


def _parse_auth_results(values: list[str], authserv_id: str | None) -> dict[str, str]:
    """spf/dkim/dmarc/… → result from one ``Authentication-Results`` header (RFC 8601).

    Only one header is read: the one with our ``authserv_id`` when given, else the
    topmost (added last, by our own MTA). Lower ones were written by whoever sent the
    message and prove nothing.
    """
    for value in values:
        text = _unfold(value)
        for _ in range(5):  # nested comments, innermost first
            text, count = _COMMENT_RE.subn(" ", text)
            if not count:
                break
        parts = [part.strip() for part in text.split(";")]
        head = parts[0].split()
        if authserv_id is not None and (not head or head[0].lower() != authserv_id.lower()):
            continue
        results: dict[str, str] = {}
        for part in parts:
            match = _RESINFO_RE.match(part.lower())
            if match is None:
                continue
            method, result = match.group(1), match.group(2)
            if method not in results:
                results[method] = result
            elif method == "dkim" and result == "pass":
                results[method] = "pass"  # one verifying signature is enough (RFC 6376 §4)
        return results
    return {}


# --------------------------------------------------------------------------------------
# MIME parameters (RFC 2045, RFC 2231)
# --------------------------------------------------------------------------------------

# A parameter as found: (charset, bytes) for RFC 2231 extended values, (None, str) else.
_Param = tuple[str | None, str | bytes]
_PARAM_NAME_RE: Final = re.compile(r"([^*\s]+)(?:\*(\d{1,3}))?(\*)?")
_MIME_TYPE_RE: Final = re.compile(r"[a-z0-9!#$&^_.+\-]+/[a-z0-9!#$&^_.+\-]+")


def _split_semicolons(value: str) -> list[str]:
    """Split a MIME header on ``;`` outside quoted strings; comments removed."""
    segments: list[str] = []
    current: list[str] = []
    in_quotes = escaped = False
    comment_depth = 0
    for char in value:
        if escaped:
            current.append(char)
            escaped = False
        elif in_quotes:
            current.append(char)
            if char == "\\":
                escaped = True
            elif char == '"':
                in_quotes = False
        elif comment_depth:
            if char == "(":
                comment_depth += 1
            elif char == ")":
                comment_depth -= 1
        elif char == '"':
            in_quotes = True
            current.append(char)
        elif char == "(":
            comment_depth = 1
        elif char == ";":
            segments.append("".join(current))
            current = []
            if len(segments) > 64:
                return segments
        else:
            current.append(char)
    segments.append("".join(current))
    return segments


def _unquote_param(value: str) -> str:
    if not value.startswith('"'):
        return value
    out: list[str] = []
    index = 1
    while index < len(value):
        char = value[index]
        if char == "\\" and index + 1 < len(value):
            out.append(value[index + 1])
            index += 2
            continue
        if char == '"':
            break
        out.append(char)
        index += 1
    return "".join(out)


def _parse_mime_header(value: str) -> tuple[str, dict[str, _Param]]:
    """``Content-Type``/``Content-Disposition`` → (lower-case main value, parameters)."""
    segments = _split_semicolons(_unfold(value[:_MIME_HEADER_CAP]))
    main = segments[0].strip().lower()
    simple: dict[str, _Param] = {}
    sections: dict[str, dict[int, tuple[bool, str]]] = {}
    for segment in segments[1:]:
        name, sep, raw_value = segment.partition("=")
        if not sep:
            continue
        match = _PARAM_NAME_RE.fullmatch(name.strip().lower())
        if match is None:
            continue
        base, index, star = match.groups()
        text = _unquote_param(raw_value.strip())
        if index is None and star is None:
            simple.setdefault(base, (None, text))
        else:
            sections.setdefault(base, {}).setdefault(int(index or 0), (bool(star), text))
    params = dict(simple)
    for base, parts in sections.items():
        # RFC 2231 §3-4: numbered sections joined in order; "*" marks percent-encoding,
        # and the first encoded section may start with charset'language'.
        charset: str | None = None
        data = bytearray()
        for number in sorted(parts)[:100]:
            encoded, text = parts[number]
            if encoded and number == min(parts) and text.count("'") >= 2:
                charset, _, rest = text.partition("'")
                text = rest.partition("'")[2]
            raw = text.encode("utf-8", "surrogateescape")
            data.extend(unquote_to_bytes(raw) if encoded else raw)
        params[base] = (charset or "", bytes(data))
    return main, params


def _param_text(param: _Param | None, flags: _Flags, hint: tuple[str, ...]) -> str:
    """A parameter value as text: RFC 2231 charset, else raw 8-bit, then RFC 2047."""
    if param is None:
        return ""
    charset, value = param
    if isinstance(value, bytes):
        if charset:
            return _decode_bytes(value, charset, flags)
        return _decode_raw_8bit(value, hint, flags)
    text = value
    if not text.isascii():
        text = _decode_raw_8bit(text.encode("utf-8", "surrogateescape"), hint, flags)
    # Outlook, Foxmail and QQ Mail put RFC 2047 words in filename="…" (not allowed by
    # RFC 2047 §5, universal in practice).
    return _decode_encoded_words(text, flags)


def _param_ascii(param: _Param | None) -> str:
    """A parameter value exactly as sent (boundary, report-type)."""
    if param is None:
        return ""
    value = param[1]
    return value.decode("latin-1") if isinstance(value, bytes) else value


# --------------------------------------------------------------------------------------
# The guarded standard-library parser
# --------------------------------------------------------------------------------------

_HEADER_REGISTRY: Final = HeaderRegistry()


def _capped_header_factory(name: str, value: str) -> BaseHeader:
    # The structured-header parser behind policy.default is super-linear on crafted
    # values (a 1 MB Content-Type took two minutes here); cut before it sees them.
    return _HEADER_REGISTRY(name, value[:_STRUCTURED_HEADER_CAP])


_POLICY: Final = email_policy.default.clone(header_factory=_capped_header_factory)
# Re-serialising a forwarded message: headers exactly as received, CRLF line ends.
_EML_POLICY: Final = _POLICY.clone(refold_source="none", linesep="\r\n")

if TYPE_CHECKING:
    _MessageBase = EmailMessage[str, str]
else:
    _MessageBase = EmailMessage


class _Limits:
    __slots__ = ("created", "max_depth", "max_parts")

    def __init__(self, max_depth: int, max_parts: int) -> None:
        self.max_depth = max_depth
        self.max_parts = max_parts
        self.created = 0


class _GuardedMessage(_MessageBase):
    """An ``EmailMessage`` that stops the feed parser from going too deep or too wide.

    The feed parser asks each part for its content type to decide whether to descend.
    A part past ``max_depth`` (or past ``max_parts``) answers application/octet-stream,
    so its body is read as one opaque leaf: nesting cannot recurse the parser to death
    (5,000 nested message/rfc822 raised RecursionError here) nor multiply the per-line
    boundary checks (60 levels × 25 MB took 14 s). Content-Type is read by our own
    parser, once per part, rather than re-parsed by the policy on every call.
    """

    kefu_limits: _Limits | None = None
    kefu_depth: int = 0
    kefu_over_limit: str | None = None
    _kefu_content: tuple[int, str, dict[str, _Param]] | None = None

    def kefu_content(self) -> tuple[str, dict[str, _Param]]:
        header_count = len(self)
        cached = self._kefu_content
        if cached is not None and cached[0] == header_count:
            return cached[1], cached[2]
        raw: str | None = None
        params: dict[str, _Param] = {}
        for name, value in self.raw_items():
            if name.lower() == "content-type":
                raw = str(value)
                break
        if raw is None:
            content_type = self.get_default_type()
        else:
            main, params = _parse_mime_header(raw)
            # RFC 2045 §5.2: an invalid Content-Type means text/plain.
            content_type = main if _MIME_TYPE_RE.fullmatch(main) else "text/plain"
        self._kefu_content = (header_count, content_type, params)
        return content_type, params

    def kefu_raw_payload(self) -> str | None:
        # get_payload() re-decodes 8-bit bytes with errors="replace" before we can see
        # them; the generator reads the raw payload the same way.
        payload = self.__dict__.get("_payload")
        return payload if isinstance(payload, str) else None

    def kefu_children(self) -> list[_GuardedMessage]:
        payload = self.__dict__.get("_payload")
        if not isinstance(payload, list):
            return []
        return [part for part in payload if isinstance(part, _GuardedMessage)]

    def get_content_type(self) -> str:
        if self.kefu_over_limit is not None:
            return "application/octet-stream"
        return self.kefu_content()[0]

    def get_content_maintype(self) -> str:
        return self.get_content_type().partition("/")[0]

    def get_content_subtype(self) -> str:
        return self.get_content_type().partition("/")[2]

    def get_boundary(self, failobj: Any = None) -> Any:
        if self.kefu_over_limit is not None:
            return failobj
        boundary = _param_ascii(self.kefu_content()[1].get("boundary")).rstrip()
        # A huge boundary becomes a huge regex in the feed parser; RFC 2046 allows 70.
        if not boundary or len(boundary) > _MAX_BOUNDARY_LEN:
            return failobj
        return boundary

    def attach(self, payload: Any) -> None:
        if isinstance(payload, _GuardedMessage):
            payload.kefu_depth = self.kefu_depth + 1
            limits = self.kefu_limits
            if (
                limits is not None
                and payload.kefu_depth > limits.max_depth
                and payload.kefu_over_limit is None
            ):
                payload.kefu_over_limit = "too_deep"
        super().attach(payload)


def _parse_tree(raw: bytes, max_depth: int, max_parts: int) -> _GuardedMessage:
    limits = _Limits(max_depth, max_parts)

    def factory(policy: Any = None) -> _GuardedMessage:
        message = _GuardedMessage(policy=policy if policy is not None else _POLICY)
        message.kefu_limits = limits
        limits.created += 1
        if limits.created > max(1, limits.max_parts):
            message.kefu_over_limit = "too_many_parts"
        return message

    parser = BytesFeedParser(_factory=factory, policy=_POLICY)
    limits.created = 0  # the constructor calls the factory once to probe its signature
    for start in range(0, len(raw), _FEED_CHUNK):
        parser.feed(raw[start : start + _FEED_CHUNK])
    root = parser.close()
    if not isinstance(root, _GuardedMessage):  # pragma: no cover - the factory made it
        raise TypeError("unexpected message class")
    return root


# -- raw-byte guards, before the parser sees anything -----------------------------------

_BOUNDARY_LINE_RE: Final = re.compile(rb"(?:\r\n|\r|\n)--")
# Headers kefu reads; a rebuilt header block keeps these first.
_ESSENTIAL_HEADERS: Final = tuple(
    name.encode()
    for name in _words(
        "content-type content-transfer-encoding content-disposition content-id mime-version "
        "from sender to cc reply-to subject date message-id in-reply-to references "
        "auto-submitted precedence x-precedence list-id return-path x-autoreply x-autorespond "
        "authentication-results"
    )
)
_HEADER_SPLIT_RE: Final = re.compile(rb"\r?\n(?![ \t])")
# A header field, a folded continuation, or an mbox "From " line (RFC 5322 §2.2).
_HEADER_LINE_RE: Final = re.compile(rb"[\x21-\x39\x3b-\x7e]+[ \t]*:|[ \t]|From ")


def _header_end(raw: bytes) -> int:
    # bytes.find, not a regex: "\r?\n\r?\n" has no literal prefix for the regex engine
    # to scan for, and took 0.2 s over 24 MB of header lines.
    found = [i for i in (raw.find(b"\n\n"), raw.find(b"\n\r\n"), raw.find(b"\r\r")) if i >= 0]
    return min(found) if found else len(raw)


def _folded_header_at(block: bytes, start: int) -> bytes:
    """The header starting at ``start`` with its continuation lines, capped."""
    end = block.find(b"\n", start)
    while (
        end >= 0 and block[end + 1 : end + 2] in (b" ", b"\t") and end - start < _HEADER_VALUE_CAP
    ):
        end = block.find(b"\n", end + 1)
    if end < 0:
        end = len(block)
    return block[start : min(end, start + _HEADER_VALUE_CAP)].rstrip(b"\r")


def _nth_end(raw: bytes, separator: bytes, count: int) -> int | None:
    """Offset just past the ``count``-th ``separator`` (one byte), or None."""
    position = seen = 0
    chunk = 1 << 16  # counting stays in C; the final walk is at most one chunk
    while position < len(raw):
        end = min(len(raw), position + chunk)
        found = raw.count(separator, position, end)
        if seen + found >= count:
            while True:
                position = raw.index(separator, position) + 1
                seen += 1
                if seen == count:
                    return position
        seen += found
        position = end
    return None


def _shrink_header_block(raw: bytes, max_header_bytes: int, flags: _Flags) -> bytes:
    """Rebuild a top-level header block larger than ``max_header_bytes``.

    Keeps the headers kefu reads (the first ten of each name, each capped) and, while
    the budget lasts, the others, in their original order.
    """
    end = _header_end(raw)
    if end <= max_header_bytes:
        return raw
    # No blank line yet, but the parser also ends the headers at the first line that is
    # not a header (a missing separator is a common defect): look within the budget.
    position = 0
    while position < end:
        if position > max_header_bytes:
            break
        line_end = raw.find(b"\n", position, end)
        line_end = end if line_end < 0 else line_end
        if not _HEADER_LINE_RE.match(raw, position, line_end):
            return raw
        position = line_end + 1
    flags.add("huge_headers")
    block, rest = raw[:end], raw[end:]
    lowered = b"\n" + block.lower()  # offsets in lowered are one past those in block
    found: list[tuple[int, bytes]] = []
    for name in _ESSENTIAL_HEADERS:
        position = lowered.find(b"\n" + name + b":")
        for _ in range(10):
            if position < 0:
                break
            found.append((position, _folded_header_at(block, position)))
            position = lowered.find(b"\n" + name + b":", position + 1)
    found.sort()
    kept = [header for _, header in found]
    budget = max(0, max_header_bytes - sum(len(k) for k in kept))
    prefix = block[:budget]
    prefix = prefix[: prefix.rfind(b"\n") + 1]
    for header in _HEADER_SPLIT_RE.split(prefix):
        name = header.split(b":", 1)[0].strip().lower()
        if header.strip() and name not in _ESSENTIAL_HEADERS:
            kept.append(header.rstrip(b"\r\n"))
    return b"\r\n".join(kept) + (rest or b"\r\n\r\n")


def _guard_raw(raw: bytes, max_parts: int, max_header_bytes: int, flags: _Flags) -> bytes:
    """Bound what the feed parser will see: header block size, line count, part count.

    Each cut is flagged; what survives is still parsed normally.
    """
    raw = _shrink_header_block(raw, max_header_bytes, flags)
    for separator in (b"\n", b"\r"):
        if raw.count(separator) > _MAX_LINES:
            cut = _nth_end(raw, separator, _MAX_LINES)
            if cut is not None:
                flags.add("too_many_lines")
                raw = raw[:cut]
    threshold = max(1, max_parts) * _BOUNDARY_LINES_PER_PART
    for seen, match in enumerate(_BOUNDARY_LINE_RE.finditer(raw), start=1):
        if seen > threshold:
            flags.add("too_many_parts")
            raw = raw[: match.start()] + b"\r\n"
            break
    return raw


# --------------------------------------------------------------------------------------
# Walking the MIME tree
# --------------------------------------------------------------------------------------


class _State:
    """Per-message limits, counters and findings shared by every collector."""

    __slots__ = (
        "attachment_count",
        "bounced",
        "flags",
        "hint",
        "is_dsn",
        "max_parts",
        "parts_seen",
        "returned_ids",
    )

    def __init__(self, flags: _Flags, max_parts: int) -> None:
        self.flags = flags
        self.max_parts = max_parts
        self.parts_seen = 0
        self.attachment_count = 0
        self.hint: tuple[str, ...] = ()
        self.is_dsn = False
        self.bounced: dict[str, None] = {}
        self.returned_ids: dict[str, None] = {}


class _Collector:
    """What one subtree contributes: body texts, HTML bodies, forwards, attachments."""

    __slots__ = ("attachments", "forwards", "htmls", "texts")

    def __init__(self) -> None:
        self.texts: list[str] = []
        self.htmls: list[str] = []
        self.forwards: list[str] = []
        self.attachments: list[ParsedAttachment] = []


_EXTENSIONS: Final = {
    "text/plain": ".txt",
    "text/html": ".html",
    "text/calendar": ".ics",
    "text/csv": ".csv",
    "text/rfc822-headers": ".txt",
    "message/rfc822": ".eml",
    "message/global": ".eml",
    "message/delivery-status": ".txt",
    "application/pdf": ".pdf",
    "application/zip": ".zip",
    "application/msword": ".doc",
    "application/vnd.ms-excel": ".xls",
    "application/ms-tnef": ".dat",
    "image/png": ".png",
    "image/jpeg": ".jpg",
    "image/gif": ".gif",
    "image/webp": ".webp",
    "image/bmp": ".bmp",
    "image/heic": ".heic",
}
_WINDOWS_RESERVED: Final = frozenset(
    {"CON", "PRN", "AUX", "NUL"}
    | {f"COM{i}" for i in range(1, 10)}
    | {f"LPT{i}" for i in range(1, 10)}
)
_FILENAME_RESERVED_RE: Final = re.compile(r'[<>:"|?*]')


def _sanitize_filename(name: str, fallback: str) -> str:
    """A filename safe to store and show: no path, no traversal, no hidden characters."""
    # NFKC first: full-width "／" and "．．" become "/" and ".." and are then removed.
    name = unicodedata.normalize("NFKC", name[:1000])
    name = name.replace("\\", "/").rsplit("/", 1)[-1]
    # Category C: controls, format characters (the bidi overrides U+202A-E and
    # isolates U+2066-9 that make "invoice\u202efdp.exe" read as "invoiceexe.pdf"),
    # surrogates, private-use and unassigned code points.
    name = "".join(c for c in name if c not in _BIDI_CONTROLS and unicodedata.category(c)[0] != "C")
    name = _FILENAME_RESERVED_RE.sub("_", " ".join(name.split()))
    name = name.strip(" .")  # leading dots: hidden files; trailing: Windows drops them
    if name.split(".", 1)[0].upper() in _WINDOWS_RESERVED:
        name = "_" + name
    if len(name.encode("utf-8")) > _MAX_FILENAME_BYTES:
        stem, dot, extension = name.rpartition(".")
        if not dot or not 0 < len(extension) <= 16:
            stem, extension = name, ""
        suffix = f".{extension}" if extension else ""
        budget = _MAX_FILENAME_BYTES - len(suffix.encode("utf-8"))
        stem = stem.encode("utf-8")[:budget].decode("utf-8", "ignore").rstrip(" .")
        name = stem + suffix
    return name or fallback


def _first_raw(part: _GuardedMessage, name: str) -> str | None:
    for header, value in part.raw_items():
        if header.lower() == name:
            return str(value)[:_MIME_HEADER_CAP]
    return None


def _disposition(part: _GuardedMessage) -> tuple[str, dict[str, _Param]]:
    raw = _first_raw(part, "content-disposition")
    if raw is None:
        return "", {}
    return _parse_mime_header(raw)


def _normalize_content_id(value: str | None) -> str | None:
    if value is None:
        return None
    text = "".join(_unfold(value).split()).strip("<>")
    text = _LINE_CONTROL_RE.sub("", text)[:250]
    return text or None


def _decode_payload(part: _GuardedMessage, state: _State) -> bytes:
    payload = part.kefu_raw_payload()
    if not payload:
        return b""
    data = payload.encode("utf-8", "surrogateescape")
    encoding_header = _first_raw(part, "content-transfer-encoding") or ""
    encoding = _split_semicolons(_unfold(encoding_header))[0].strip().lower()
    if encoding in ("", "7bit", "8bit", "binary"):
        return data
    if encoding == "base64":
        decoded, broken = _decode_base64(data)
        if broken:
            state.flags.add("broken_base64")
        return decoded
    if encoding == "quoted-printable":
        return binascii.a2b_qp(data)
    if encoding in ("x-uuencode", "uuencode", "x-uue", "uue"):
        return _decode_uu(data)
    state.flags.add("unknown_transfer_encoding")
    return data


_META_CHARSET_RE: Final = re.compile(
    rb"<meta[^>]{0,300}?charset\s*=\s*[\"']?\s*([A-Za-z0-9_.:+\-]{1,40})", re.IGNORECASE
)


def _unflow(text: str, delsp: bool) -> str:
    """RFC 3676 format=flowed: join soft-broken lines (Apple Mail, Thunderbird)."""
    out: list[str] = []
    pending = ""
    for line in text.split("\n"):
        if line.startswith(" "):
            line = line[1:]  # space-stuffing
        if line.endswith(" ") and line != "-- ":
            pending += line[:-1] if delsp else line
            continue
        out.append(pending + line)
        pending = ""
    if pending:
        out.append(pending)
    return "\n".join(out)


def _part_text(part: _GuardedMessage, state: _State) -> str:
    content_type, params = part.kefu_content()
    data = _decode_payload(part, state)
    charset = _param_ascii(params.get("charset")).strip()
    if not charset and content_type == "text/html":
        sniffed = _META_CHARSET_RE.search(data[:4096])
        if sniffed:
            charset = sniffed.group(1).decode("ascii")
    if charset and not state.hint:
        found = _codecs_for(charset)
        if found and found[0] != "utf-8":
            state.hint = found
    text = _clean_body_text(_decode_bytes(data, charset or None, state.flags), state.flags)
    if content_type == "text/plain" and _param_ascii(params.get("format")).lower() == "flowed":
        text = _unflow(text, _param_ascii(params.get("delsp")).lower() == "yes")
    return text


def _sniff(data: bytes) -> tuple[str | None, str]:
    """(MIME type, ".extension") recognised from the bytes, or (None, "")."""
    try:
        kind = filetype.guess(data[:8192])
    except Exception:
        return None, ""
    if kind is None:
        return None, ""
    return str(kind.mime), "." + str(kind.extension)


def _add_attachment(
    part: _GuardedMessage,
    content_type: str,
    state: _State,
    collector: _Collector,
    data: bytes | None = None,
) -> None:
    disposition, disposition_params = _disposition(part)
    _, type_params = part.kefu_content()
    if data is None:
        data = _decode_payload(part, state)
    state.attachment_count += 1
    raw_name = disposition_params.get("filename") or type_params.get("name")
    name = _param_text(raw_name, state.flags, state.hint)
    sniffed, extension = _sniff(data)
    extension = extension or _EXTENSIONS.get(content_type, ".bin")
    filename = _sanitize_filename(name, f"attachment-{state.attachment_count}{extension}")
    content_id = _normalize_content_id(_first_raw(part, "content-id"))
    is_inline = disposition == "inline" or (not disposition and content_id is not None)
    collector.attachments.append(
        ParsedAttachment(
            filename=filename,
            content_type=content_type,
            data=data,
            content_id=content_id,
            is_inline=is_inline,
            sniffed_type=sniffed,
        )
    )


def _count_part(part: _GuardedMessage, state: _State) -> bool:
    """Count ``part`` against the limits; False when it must be skipped."""
    state.parts_seen += 1
    if state.parts_seen > state.max_parts:
        state.flags.add("too_many_parts")
        return False
    if part.kefu_over_limit is not None:
        state.flags.add(part.kefu_over_limit)
        return False
    if part.defects:
        state.flags.add("malformed_mime")
    return True


def _walk(
    part: _GuardedMessage, state: _State, collector: _Collector, *, as_attachment: bool = False
) -> None:
    if not _count_part(part, state):
        return
    content_type = part.get_content_type()
    maintype, _, subtype = content_type.partition("/")
    children = part.kefu_children()
    if maintype == "message" and children:
        if content_type == "message/delivery-status":
            _collect_delivery_status(children, state)
        else:
            _walk_message(part, content_type, children[0], state, collector, as_attachment)
        return
    if maintype == "multipart" and part.is_multipart():
        if subtype == "alternative":
            _walk_alternative(children, state, collector)
        elif subtype == "related":
            _walk_related(part, children, state, collector)
        elif subtype == "report":
            _walk_report(part, children, state, collector)
        else:  # mixed, signed, and unknown subtypes (RFC 2046 §5.1.7)
            for child in children:
                _walk(child, state, collector, as_attachment=as_attachment)
        return
    if maintype == "multipart":
        state.flags.add("malformed_mime")  # multipart without a usable boundary
    disposition, disposition_params = _disposition(part)
    _, type_params = part.kefu_content()
    has_name = "filename" in disposition_params or "name" in type_params
    is_body = content_type in ("text/plain", "text/html") or maintype == "multipart"
    if is_body and not as_attachment and disposition != "attachment" and not has_name:
        text = _part_text(part, state)
        (collector.htmls if content_type == "text/html" else collector.texts).append(text)
        return
    _add_attachment(part, content_type, state, collector)


def _is_attachment(part: _GuardedMessage) -> bool:
    return _disposition(part)[0] == "attachment"


def _walk_alternative(
    children: list[_GuardedMessage], state: _State, collector: _Collector
) -> None:
    plain: _GuardedMessage | None = None
    rich: _GuardedMessage | None = None
    others: list[_GuardedMessage] = []
    for child in children:
        content_type = child.get_content_type()
        if content_type == "text/plain" and plain is None and not _is_attachment(child):
            plain = child
        elif content_type == "text/html" or content_type.startswith("multipart/"):
            rich = child  # RFC 2046 §5.1.4: the last alternative is the richest
        elif content_type.startswith("text/") and content_type != "text/calendar":
            continue  # other renderings of the same text (text/enriched, text/watch-html)
        else:
            others.append(child)
    plain_part, rich_part = _Collector(), _Collector()
    if plain is not None:
        _walk(plain, state, plain_part)
    if rich is not None:
        _walk(rich, state, rich_part)
    collector.texts.extend(plain_part.texts or rich_part.texts)
    collector.htmls.extend(rich_part.htmls or plain_part.htmls)
    for sub in (plain_part, rich_part):
        collector.forwards.extend(sub.forwards)
        collector.attachments.extend(sub.attachments)
    for other in others:
        _walk(other, state, collector)


def _walk_related(
    part: _GuardedMessage, children: list[_GuardedMessage], state: _State, collector: _Collector
) -> None:
    if not children:
        return
    # RFC 2387: the root is the part named by start=, else the first one.
    start = _normalize_content_id(_param_ascii(part.kefu_content()[1].get("start")) or None)
    root = children[0]
    if start is not None:
        for child in children:
            if _normalize_content_id(_first_raw(child, "content-id")) == start:
                root = child
                break
    _walk(root, state, collector)
    for child in children:
        if child is not root:
            _walk(child, state, collector, as_attachment=True)


def _walk_report(
    part: _GuardedMessage, children: list[_GuardedMessage], state: _State, collector: _Collector
) -> None:
    report_type = _param_ascii(part.kefu_content()[1].get("report-type")).strip().lower()
    if report_type == "delivery-status":
        state.is_dsn = True
    for index, child in enumerate(children):
        # RFC 6522: the first part is the human-readable explanation; the rest are the
        # machine-readable report and the returned message (an attachment, not text).
        if index > 0:
            with _best_effort(state.flags):
                _collect_returned_ids(child, state)
        _walk(child, state, collector, as_attachment=index > 0)


_RETURNED_MESSAGE_ID_RE: Final = re.compile(r"(?im)^message-id[ \t]*:[ \t]*(.*)$")
_MAX_RETURNED_IDS: Final = 5


def _collect_returned_ids(part: _GuardedMessage, state: _State) -> None:
    """The Message-ID of the returned message in a report: from its headers when the
    whole message came back, or from the bare header block (text/rfc822-headers)."""
    content_type = part.get_content_type()
    value: str | None = None
    if content_type in ("message/rfc822", "message/global"):
        children = part.kefu_children()
        if children and children[0].kefu_over_limit is None:
            headers = _Headers(children[0].raw_items(), state.flags, _HEADER_VALUE_CAP)
            value = headers.first("message-id")
    elif content_type in ("text/rfc822-headers", "message/global-headers"):
        block = _decode_payload(part, state)[: _HEADER_VALUE_CAP * 4]
        text = _FOLD_RE.sub("", block.decode("utf-8", "replace"))
        match = _RETURNED_MESSAGE_ID_RE.search(text)
        value = match.group(1) if match else None
    for message_id in _message_ids(value)[:_MAX_RETURNED_IDS]:
        if len(state.returned_ids) < _MAX_RETURNED_IDS:
            state.returned_ids[message_id] = None


def _collect_delivery_status(blocks: list[_GuardedMessage], state: _State) -> None:
    """RFC 3464 per-recipient blocks → addresses that failed permanently."""
    for block in blocks[1:] or blocks:  # the first block holds per-message fields
        fields: dict[str, str] = {}
        for name, value in block.raw_items():
            fields.setdefault(name.lower(), _unfold(str(value))[:1000])
        recipient = fields.get("final-recipient") or fields.get("original-recipient")
        if not recipient:
            continue
        action = fields.get("action", "").strip().lower()
        status = fields.get("status", "").strip()
        if action and action != "failed":
            continue
        if not action and status and not status.startswith("5"):
            continue
        address_text = recipient.partition(";")[2] if ";" in recipient else recipient
        address = _validate_addr_spec(address_text.strip().strip("<>").strip())
        if address is not None and len(state.bounced) < _MAX_ADDRESSES:
            state.bounced[address] = None


def _serialize(message: _GuardedMessage, state: _State) -> bytes:
    buffer = io.BytesIO()
    try:
        BytesGenerator(buffer, mangle_from_=False, policy=_EML_POLICY).flatten(message)
    except Exception:
        state.flags.add("decode_error")
    return buffer.getvalue()


def _body_text(collector: _Collector, flags: _Flags, prepared_html: str | None = None) -> str:
    text = "\n\n".join(t.strip("\n") for t in collector.texts if t.strip())
    if not text.strip() and collector.htmls:
        if prepared_html is None:
            prepared_html = _prepare_html("\n".join(collector.htmls), flags)
        text = _html_to_text(prepared_html)
    return text.strip()


def _walk_message(
    part: _GuardedMessage,
    content_type: str,
    nested: _GuardedMessage,
    state: _State,
    collector: _Collector,
    as_attachment: bool,
) -> None:
    """A message/rfc822 (or message/global) part: one ``.eml`` attachment, plus its
    text appended as a forwarded block unless it is a bounce's returned message."""
    if nested.kefu_over_limit is not None:
        state.flags.add(nested.kefu_over_limit)
        return
    forwardable = content_type in ("message/rfc822", "message/global", "message/news")
    if forwardable and not as_attachment:
        inner = _Collector()
        _walk(nested, state, inner)
        headers = _Headers(nested.raw_items(), state.flags, _HEADER_VALUE_CAP)
        lines = ["---------- Forwarded message ----------"]
        for label, name in (
            ("From", "from"),
            ("Date", "date"),
            ("Subject", "subject"),
            ("To", "to"),
        ):
            value = _header_text(headers.first(name), state.flags, state.hint)
            if value:
                lines.append(f"{label}: {value}")
        body = _body_text(inner, state.flags)
        collector.forwards.append("\n".join(lines) + ("\n\n" + body if body else ""))
    else:
        _count_part(nested, state)
    _add_attachment(part, "message/rfc822", state, collector, data=_serialize(nested, state))


# --------------------------------------------------------------------------------------
# Classification
# --------------------------------------------------------------------------------------

_AUTO_SUBJECT_RE: Final = re.compile(
    r"\s*(?:自动回复|自動回覆|自動回復|休假自动回复|auto(?:matic)?[ -]?(?:reply|response)|"
    r"autoreply|out of (?:the )?office)",
    re.IGNORECASE,
)
_DAEMON_RE: Final = re.compile(r"\b(?:mailer-daemon|postmaster)\b", re.IGNORECASE)


def _is_auto_submitted(
    headers: _Headers, from_address: str | None, raw_from: str, subject: str, is_bounce: bool
) -> bool:
    # RFC 3834 §5: anything but "no" was sent by a machine; do not answer it.
    auto_submitted = (headers.first("auto-submitted") or "").strip().lower()
    if auto_submitted and auto_submitted.split(";", 1)[0].strip() != "no":
        return True
    precedence = (headers.first("precedence") or headers.first("x-precedence") or "").strip()
    if precedence.lower() in ("bulk", "list", "junk", "auto_reply"):
        return True
    for name in ("x-autoreply", "x-autorespond"):
        value = headers.first(name)
        if value is not None and value.strip().lower() not in ("no", "false", "0"):
            return True
    if "list-id" in headers:
        return True
    if any(value.strip() in ("<>", "") for value in headers.all("return-path")):
        return True  # the null reverse-path: bounces and other machine mail
    if from_address is not None and from_address.split("@")[0] in _AUTOMATED_LOCAL_PARTS:
        return True
    if _DAEMON_RE.search(raw_from):
        return True
    # QQ Mail and 163 send "自动回复: …" without any of the headers above.
    return is_bounce or bool(_AUTO_SUBJECT_RE.match(subject))


# --------------------------------------------------------------------------------------
# The entry point
# --------------------------------------------------------------------------------------


def _as_bytes(raw: object, flags: _Flags) -> bytes:
    if isinstance(raw, bytes):
        return raw
    if isinstance(raw, bytearray | memoryview):
        return bytes(raw)
    if isinstance(raw, str):
        return raw.encode("utf-8", "surrogateescape")
    flags.add("decode_error")
    return b""


def parse_email(
    raw: bytes,
    *,
    max_parts: int = 500,
    max_depth: int = 10,
    max_header_bytes: int = 64_000,
    authserv_id: str | None = None,
) -> ParsedEmail:
    """Parse one inbound message. Never raises; problems are listed in ``flags``.

    ``authserv_id`` names our MTA in ``Authentication-Results`` (RFC 8601 §2.5); without
    it the topmost such header is trusted, so the MTA must strip any the sender added.
    """
    flags = _Flags()
    try:
        return _parse(raw, flags, max_parts, max_depth, max_header_bytes, authserv_id)
    except Exception:
        flags.add("decode_error")
        return ParsedEmail(flags=flags.as_list())


def _parse(
    raw_input: object,
    flags: _Flags,
    max_parts: int,
    max_depth: int,
    max_header_bytes: int,
    authserv_id: str | None,
) -> ParsedEmail:
    raw = _guard_raw(_as_bytes(raw_input, flags), max_parts, max_header_bytes, flags)
    root = _parse_tree(raw, max_depth, max_parts)
    state = _State(flags, max_parts)
    header_cap = max(1_024, min(_HEADER_VALUE_CAP, max_header_bytes))
    headers = _Headers(root.raw_items(), flags, header_cap)
    if headers.total_bytes > max_header_bytes:
        flags.add("huge_headers")
    with _best_effort(flags):
        # Raw 8-bit headers are most likely in the body's charset.
        root_charset = _param_ascii(root.kefu_content()[1].get("charset")).strip()
        found = _codecs_for(root_charset) if root_charset else None
        if found and found[0] != "utf-8":
            state.hint = found

    collector = _Collector()
    with _best_effort(flags):
        _walk(root, state, collector)

    own_text = html = prepared_html = None
    with _best_effort(flags):
        if collector.htmls:
            raw_html = "\n".join(collector.htmls)
            if _SCRIPT_IN_HTML_RE.search(raw_html):
                flags.add("script_in_html")
            prepared_html = _prepare_html(raw_html, flags)
            html = _sanitize_html(prepared_html)
    with _best_effort(flags):
        own_text = _body_text(collector, flags, prepared_html)
    own_text = own_text or ""
    forwards = "\n\n".join(collector.forwards)
    text = "\n\n".join(t for t in (own_text, forwards) if t)
    reply_text = own_text
    with _best_effort(flags):
        reply_text = strip_quoted(own_text) or own_text
    reply_text = "\n\n".join(t for t in (reply_text, forwards) if t)

    subject = ""
    with _best_effort(flags):
        subject = _header_text(headers.first("subject"), flags, state.hint)
    from_address: str | None = None
    from_name = raw_from = ""
    with _best_effort(flags):
        from_address, from_name, raw_from = _parse_from(headers.all("from"), flags, state.hint)
    to: list[str] = []
    cc: list[str] = []
    reply_to: list[str] = []
    with _best_effort(flags):
        to = _parse_address_list(headers.all("to"), flags, state.hint)
        cc = _parse_address_list(headers.all("cc"), flags, state.hint)
        reply_to = _parse_address_list(headers.all("reply-to"), flags, state.hint)
    message_id: str | None = None
    in_reply_to: list[str] = []
    references: list[str] = []
    with _best_effort(flags):
        ids = _message_ids(headers.first("message-id"))
        message_id = ids[0] if ids else None
        in_reply_to = _message_ids(headers.first("in-reply-to"))
        references = _message_ids(headers.first("references"))
    date: datetime | None = None
    with _best_effort(flags):
        date = _parse_date(headers.first("date"), flags)
    auth_results: dict[str, str] = {}
    with _best_effort(flags):
        auth_results = _parse_auth_results(headers.all("authentication-results"), authserv_id)
        for method in ("spf", "dkim", "dmarc"):
            if auth_results.get(method) in ("fail", "hardfail"):
                flags.add(f"{method}_fail")
    is_bounce = state.is_dsn
    is_auto = is_bounce
    with _best_effort(flags):
        is_auto = _is_auto_submitted(headers, from_address, raw_from, subject, is_bounce)
    number = SUBJECT_NUMBER_RE.search(subject)

    return ParsedEmail(
        message_id=message_id,
        in_reply_to=in_reply_to,
        references=references,
        subject=subject,
        from_address=from_address,
        from_name=from_name,
        to=to,
        cc=cc,
        reply_to=reply_to,
        date=date,
        text=text,
        html=html,
        reply_text=reply_text,
        attachments=collector.attachments,
        is_auto_submitted=is_auto,
        is_bounce=is_bounce,
        bounced_recipients=list(state.bounced),
        returned_message_ids=list(state.returned_ids) if is_bounce else [],
        auth_results=auth_results,
        flags=flags.as_list(),
        ticket_number_in_subject=f"K{number.group(1)}" if number else None,
    )
