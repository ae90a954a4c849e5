"""The one Chinese text analyser: every place that indexes or matches text calls this.

Articles, ticket messages and deflection all go through the same pipeline, so a word a
customer types is turned into the same tokens as the word an agent wrote
(docs/subsystems/helpcenter.md; DESIGN.md "Chinese text"):

1. NFKC (full-width letters, digits and punctuation become half-width), control and
   format characters dropped;
2. Traditional -> Simplified folding with OpenCC ``t2s``, plus the few variant
   characters OpenCC leaves alone (帳 -> 帐 is standard, but customers and agents write
   账: both must meet);
3. lower-case;
4. segmentation with jieba's dictionary and model (the Rust port ``rjieba``: same
   output, ~20x faster, nothing cached on disk) extended by the exchange dictionary
   ``data/exchange_dict.txt``;
5. synonyms: each member of a group in ``data/synonyms.txt`` becomes the group's
   canonical token, at index time and at query time alike, so 出金 finds 提币;
6. at query time only, stop words (的, 吗, 怎么, 请问 …) are dropped.

Punctuation, emoji and symbols never become tokens, so the output is safe to store as
pre-segmented text for SQLite FTS5 or PostgreSQL ``to_tsvector('simple', …)``: the
default tokenisers of both cannot find 提现 inside 如何提现到银行卡. Tokens are
lower-case, so FTS5's upper-case ``OR``/``NEAR`` operators cannot appear either.

Besides words, ``analyze_features`` yields character n-grams (CJK unigrams and bigrams)
for rankers: jieba cuts the same phrase differently in different contexts, and a
one-character typo loses the word but keeps most of its characters.

Nothing here raises on any ``str``; the segmenter and the tables load lazily, once,
thread-safely, on first use.
"""

from __future__ import annotations

import re
import threading
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import resources

import opencc
import rjieba

__all__ = [
    "Features",
    "analyze",
    "analyze_features",
    "analyze_query",
    "normalize",
    "segmented",
    "warm_up",
]

# The CJK ideograph blocks (URO, extension A, compatibility, and extensions B onwards).
_CJK = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0003134f"
# A chunk is either a run of non-CJK word characters with at least one letter beyond
# ASCII (Cyrillic, accented Latin, kana, hangul: "café", kept as one token because jieba
# would split it into characters), or a run the segmenter sees: CJK with embedded ASCII
# letters and digits, as jieba expects ("提币usdt" must reach it whole).
_CHUNK_RE = re.compile(rf"[^\W_{_CJK}]*[^\W_{_CJK}a-z0-9][^\W_{_CJK}]*|(?P<seg>[{_CJK}a-z0-9]+)")
_CJK_CHAR_RE = re.compile(rf"[{_CJK}]")
_WORD_RE = re.compile(r"[^\W_]+")
_ALL_CJK_RE = re.compile(rf"[{_CJK}]+")
# C0/C1 controls and lone surrogates become spaces (they separate, and a lone surrogate
# cannot be encoded for OpenCC); zero-width and other format characters vanish, since
# they sit inside words (提\u200b币 is 提币).
_CONTROL_RE = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff]")
_FORMAT_RE = re.compile("[\u00ad\u061c\u180e\u200b-\u200f\u202a-\u202e\u2060-\u206f\ufeff]")
# Variants OpenCC t2s keeps but which customers and agents mix in Simplified text.
_VARIANTS = str.maketrans({"帐": "账"})
# jieba's HMM guesses words missing from the dictionary; off, so that the same string
# is cut the same way wherever it appears (a guess depends on the neighbours).
_HMM = False

# Gaps between tokens: whether a phrase (synonym) or a character bigram may span them.
_ADJACENT = 0  # nothing in between: 提币 + 地址 in 提币地址
_SPACE = 1  # whitespace, hyphens: "google authenticator", "anti-phishing", "e-mail"
_BREAK = 2  # punctuation, emoji or a dropped stop word
_JOINER_RE = re.compile(r"[\s\-_]+")

# Query-time stop words: particles, politeness and pronouns that say nothing about the
# topic. Negations (不, 没, 没有), modals (能, 可以) and question words that carry the
# intent (为什么, 多久, 哪里, 什么时候) are deliberately absent: 为什么不能提币 and
# 怎么提币 are different questions. 还 stays too: alone it is as often "repay" (怎么还)
# as "still". If a query is nothing but stop words, it is kept whole rather than emptied.
STOP_WORDS = frozenset(
    """
    的 地 得 了 着 过 吗 呢 啊 呀 吧 嘛 么 哦 喔 哈 啦 嗯 哎 呐 哇
    请问 请 麻烦 谢谢 你好 您好 在吗 亲 帮 帮忙 帮我 一下
    我 我的 我们 你 你的 你们 您 他 她 它
    怎么 如何 怎样 怎么样 怎么办 咋 咋办 该 应该
    这 那 这个 那个 这样 那样 是 就 都 也 和 与 及 或
    """.split()  # noqa: SIM905  # a word list reads better than 66 quoted strings
)

# Long enough for any address, TxID or signature a customer pastes.
MAX_TOKEN_CHARS = 128

_DATA = resources.files("kefu.domain") / "data"


@dataclass(frozen=True, slots=True)
class Features:
    """What a ranker indexes for one text: words, and character n-grams beside them.

    ``chars`` holds each CJK character and each non-CJK token (usdt, trc20, 2024: the
    smallest unit of those scripts); ``bigrams`` holds adjacent CJK character pairs.
    """

    words: list[str]
    chars: list[str]
    bigrams: list[str]


@dataclass(frozen=True, slots=True)
class _Tables:
    segmenter: rjieba.Jieba
    converter: opencc.OpenCC
    # A member phrase (its tokens) -> the group's canonical token.
    synonyms: dict[tuple[str, ...], str]
    # First tokens of multi-token members, so most tokens cost one set lookup.
    phrase_heads: frozenset[str]
    max_phrase: int


_tables: _Tables | None = None
_tables_lock = threading.Lock()


def normalize(text: str) -> str:
    """NFKC, Traditional -> Simplified, variant folding and lower-case; never raises."""
    return _normalize(_get_tables(), text)


def analyze(text: str) -> list[str]:
    """Index-time tokens: normalised, segmented, synonyms made canonical, no punctuation."""
    return [token for token, _ in _canonical_tokens(_get_tables(), text)]


def analyze_query(text: str) -> list[str]:
    """Query-time tokens: ``analyze`` with stop words dropped (unless only those remain)."""
    tokens = analyze(text)
    kept = [token for token in tokens if token not in STOP_WORDS]
    return kept or tokens


def segmented(text: str) -> str:
    """Space-joined ``analyze`` tokens, for full-text columns that store pre-segmented text."""
    return " ".join(analyze(text))


def analyze_features(text: str, *, query: bool = False) -> Features:
    """Words (as ``analyze``/``analyze_query``) and character n-grams from one pass.

    The n-grams come from the canonical tokens (so synonyms help here too); a bigram
    never spans punctuation or a dropped stop word.
    """
    tokens = _canonical_tokens(_get_tables(), text)
    if query:
        kept = _drop_stop_words(tokens)
        if kept:
            tokens = kept
    chars: list[str] = []
    bigrams: list[str] = []
    previous = ""  # the last CJK character, while it may pair with the next one
    for token, kind in tokens:
        if not _ALL_CJK_RE.fullmatch(token):
            previous = ""
            chars.append(token)
            continue
        if kind != _ADJACENT:
            previous = ""
        for char in token:
            chars.append(char)
            if previous:
                bigrams.append(previous + char)
            previous = char
    return Features(words=[token for token, _ in tokens], chars=chars, bigrams=bigrams)


def warm_up() -> None:
    """Load the dictionaries now rather than on the first request."""
    _get_tables()


def _get_tables() -> _Tables:
    global _tables
    tables = _tables
    if tables is None:
        with _tables_lock:
            # Another thread may have loaded them while this one waited for the lock.
            tables = _tables = _tables or _load_tables()
    return tables


def _load_tables() -> _Tables:
    # A private segmenter: adding words to rjieba's module-level default would leak the
    # exchange dictionary into any other user of the library in the process.
    segmenter = rjieba.Jieba()
    converter = opencc.OpenCC("t2s")
    for word in _data_lines("exchange_dict.txt"):
        parts = word.split()
        freq = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else None
        segmenter.add_word(_normalize_with(converter, parts[0]), freq, None)

    groups = [
        [member.strip() for member in line.split(",") if member.strip()]
        for line in _data_lines("synonyms.txt")
    ]
    # Synonym members go into the dictionary too, so that 二次验证 is one token that the
    # table can map rather than 二次 + 验证 that a neighbour could split differently.
    for group in groups:
        for member in group:
            word = _normalize_with(converter, member)
            if " " not in word and len(word) > 1 and _CJK_CHAR_RE.search(word):
                segmenter.add_word(word, None, None)

    bare = _Tables(segmenter, converter, {}, frozenset(), 1)
    synonyms: dict[tuple[str, ...], str] = {}
    for group in groups:
        analysed = (tuple(token for token, _ in _tokens(bare, member)) for member in group)
        # A member of nothing but punctuation has no tokens and joins nothing.
        phrases = [phrase for phrase in analysed if phrase]
        for phrase in phrases:
            # The first group that claims a phrase keeps it; tests check there is none.
            synonyms.setdefault(phrase, "".join(phrases[0]))
    heads = frozenset(phrase[0] for phrase in synonyms if len(phrase) > 1)
    longest = max((len(phrase) for phrase in synonyms), default=1)
    return _Tables(segmenter, converter, synonyms, heads, longest)


def _data_lines(name: str) -> Iterator[str]:
    for line in (_DATA / name).read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            yield line


def _normalize(tables: _Tables, text: str) -> str:
    return _normalize_with(tables.converter, text)


def _normalize_with(converter: opencc.OpenCC, text: str) -> str:
    if not text:
        return ""
    text = _FORMAT_RE.sub("", _CONTROL_RE.sub(" ", text))
    # NFKC can produce control characters again (it never produces surrogates); they are
    # harmless to OpenCC and fall out later as non-word characters.
    text = unicodedata.normalize("NFKC", text)
    text = converter.convert(text)
    return text.translate(_VARIANTS).lower()


def _tokens(tables: _Tables, text: str) -> list[tuple[str, int]]:
    """Segmented tokens, each with the kind of gap before it; punctuation dropped."""
    norm = _normalize(tables, text)
    out: list[tuple[str, int]] = []
    end = 0
    for match in _CHUNK_RE.finditer(norm):
        gap = norm[end : match.start()]
        kind = _ADJACENT if not gap else (_SPACE if _JOINER_RE.fullmatch(gap) else _BREAK)
        chunk = match.group()
        end = match.end()
        if match.lastgroup != "seg":
            pieces = [chunk]
        elif chunk.isalnum():
            pieces = tables.segmenter.cut(chunk, _HMM)
        else:
            # Unassigned code points inside the CJK blocks are no word characters.
            pieces = [
                piece
                for part in _WORD_RE.findall(chunk)
                for piece in tables.segmenter.cut(part, _HMM)
            ]
        for piece in pieces:
            # The segmenter only ever sees word characters, so every piece is a token;
            # only runaway ones (pasted base64, a keyboard held down) are dropped: they
            # match nothing, and PostgreSQL refuses to index words past 2,047 bytes.
            if len(piece) > MAX_TOKEN_CHARS:
                kind = _BREAK
                continue
            out.append((piece, kind))
            kind = _ADJACENT
    return out


def _canonical_tokens(tables: _Tables, text: str) -> list[tuple[str, int]]:
    tokens = _tokens(tables, text)
    synonyms = tables.synonyms
    heads = tables.phrase_heads
    out: list[tuple[str, int]] = []
    i = 0
    count = len(tokens)
    while i < count:
        token, kind = tokens[i]
        if token in heads:
            # Longest phrase first; a phrase never spans punctuation.
            for size in range(min(tables.max_phrase, count - i), 1, -1):
                window = tokens[i : i + size]
                if any(gap == _BREAK for _, gap in window[1:]):
                    continue
                canonical = synonyms.get(tuple(piece for piece, _ in window))
                if canonical is not None:
                    out.append((canonical, kind))
                    i += size
                    break
            else:
                out.append((synonyms.get((token,), token), kind))
                i += 1
            continue
        out.append((synonyms.get((token,), token), kind))
        i += 1
    return out


def _drop_stop_words(tokens: list[tuple[str, int]]) -> list[tuple[str, int]]:
    kept: list[tuple[str, int]] = []
    dropped = False
    for token, kind in tokens:
        if token in STOP_WORDS:
            dropped = True
            continue
        # A dropped word still separates its neighbours: no bigram bridges it.
        kept.append((token, _BREAK if dropped else kind))
        dropped = False
    return kept
