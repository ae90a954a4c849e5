"""The Chinese text analyser: folding, segmentation, synonyms, stop words, hostile input."""

from __future__ import annotations

import re
import threading
from importlib import resources

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kefu.domain import text as text_module
from kefu.domain.text import (
    analyze,
    analyze_features,
    analyze_query,
    normalize,
    segmented,
    warm_up,
)

HOSTILE = [
    "",
    "   ",
    "\t\n\r",
    "😀🔥💰",
    "\x00\x01\x1b[31m\x7f\x9f",
    "\ud800\udfff孤立代理",
    '" OR * NEAR(',
    "提币 AND NOT 充币 OR NEAR(a b) * ^ - : \" ' ( )",
    "'; DROP TABLE articles; --",
    "<script>alert(1)</script>",
    "\u200b\u200d\ufeff\u202e",
    "𠀀𪚥𰻞",  # CJK extensions B and later
    "提" * 10_000,
    "a" * 10_000,
    "USDT提币😀" * 1_000,
]


@pytest.fixture(autouse=True, scope="module")
def _loaded() -> None:
    # Load the dictionaries once, outside any timing or hypothesis deadline.
    warm_up()


def _data_lines(name: str) -> list[str]:
    text = (resources.files("kefu.domain") / "data" / name).read_text(encoding="utf-8")
    return [line.strip() for line in text.splitlines() if line.strip() and line[0] != "#"]


def test_nfkc_makes_full_width_half_width() -> None:
    assert normalize("ＡＢＣ１２３，ＵＳＤＴ！") == "abc123,usdt!"
    assert analyze("ＵＳＤＴ　ＴＲＣ２０") == analyze("usdt trc20") == ["usdt", "trc20"]


def test_traditional_folds_to_simplified() -> None:
    assert normalize("帳戶") == "账户"
    assert analyze("提幣") == ["提币"]
    assert analyze("帳戶被凍結了") == analyze("账户被冻结了")
    # A Simplified text is left as it is (no Taiwan phrase rewriting: 么 stays 么).
    assert normalize("怎么提币") == "怎么提币"


def test_withdrawal_is_found_inside_a_sentence() -> None:
    # The reason for pre-segmented storage (DESIGN.md): default FTS tokenisers miss this.
    assert analyze("提现")[0] in analyze("如何提现到银行卡")
    assert analyze("提现")[0] in segmented("如何提现到银行卡").split(" ")


@pytest.mark.parametrize(
    ("text", "word"),
    [
        ("忘记助记词怎么办", "助记词"),
        ("如何绑定谷歌验证", "谷歌验证"),
        ("资金费率多久结算一次", "资金费率"),
        ("在哪里设置防钓鱼码", "防钓鱼码"),
        ("合约爆仓了还能申诉吗", "合约"),
    ],
)
def test_exchange_words_stay_whole(text: str, word: str) -> None:
    assert analyze(word)[0] in analyze(text)


def test_every_dictionary_word_stays_whole() -> None:
    for line in _data_lines("exchange_dict.txt"):
        word = line.split()[0]
        assert len(analyze(word)) == 1, word


@pytest.mark.parametrize(
    "group",
    [
        ["提币", "提现", "取款", "出金", "提幣"],
        ["充值", "充币", "入金", "存币"],
        ["谷歌验证", "Google Authenticator", "2FA", "二次验证", "双重验证", "身份验证器"],
        ["U", "USDT", "泰达币", "ｕｓｄｔ"],
        ["被盗", "盗号", "被黑", "hacked", "stolen"],
        ["冻结", "锁定", "凍結"],
    ],
)
def test_synonyms_map_together(group: list[str]) -> None:
    assert len({tuple(analyze(member)) for member in group}) == 1
    assert len({tuple(analyze_query(member)) for member in group}) == 1


def test_synonyms_match_inside_sentences() -> None:
    assert analyze_query("我的Google Authenticator丢了") == analyze_query("我的谷歌验证丢了")
    assert set(analyze_query("出金多久到帳")) >= set(analyze("提币到账"))


def test_each_synonym_member_alone_becomes_its_canonical() -> None:
    seen: dict[str, str] = {}
    for line in _data_lines("synonyms.txt"):
        members = [member.strip() for member in line.split(",") if member.strip()]
        canonical = analyze(members[0])
        assert len(canonical) == 1, line
        for member in members:
            assert analyze(member) == canonical, member
            key = normalize(member)
            # A member in two groups would silently join the groups.
            assert seen.setdefault(key, canonical[0]) == canonical[0], member


def test_stop_words_dropped_from_queries_only() -> None:
    assert analyze_query("请问我怎么提币呢") == ["提币"]
    assert "怎么" in analyze("怎么提币")
    # Negations and question words carry the intent and stay.
    assert {"为什么", "不能"} <= set(analyze_query("为什么不能提币"))
    assert "还" in analyze_query("花呗怎么还")
    # A query of nothing but stop words is kept rather than emptied.
    assert analyze_query("怎么办") == ["怎么办"]


def test_punctuation_dropped_ascii_and_numbers_kept() -> None:
    tokens = analyze("USDT-TRC20 提币 100 个，到账了吗？！")
    assert {"usdt", "trc20", "100", "提币"} <= set(tokens)
    assert all(re.fullmatch(r"\w+", token) for token in tokens)


def test_other_scripts_stay_whole() -> None:
    assert analyze("привет café") == ["привет", "café"]


def test_unassigned_code_points_in_cjk_blocks_are_dropped() -> None:
    assert analyze("提币\U0002fa1e地址") == ["提币", "地址"]


def test_features_give_characters_and_bigrams() -> None:
    features = analyze_features("提币地址，USDT")
    assert features.words == ["提币", "地址", "usdt"]
    assert features.chars == ["提", "币", "地", "址", "usdt"]
    assert features.bigrams == ["提币", "币地", "地址"]
    # No bigram bridges a dropped stop word or punctuation.
    query = analyze_features("提币的地址", query=True)
    assert "币地" not in query.bigrams
    assert "币地" not in analyze_features("提币，地址").bigrams


@pytest.mark.parametrize("text", HOSTILE)
def test_hostile_input_never_raises(text: str) -> None:
    for tokens in (analyze(text), analyze_query(text)):
        assert isinstance(tokens, list)
        assert all(token and re.fullmatch(r"\w+", token) for token in tokens)
    assert isinstance(segmented(text), str)
    analyze_features(text, query=True)


@settings(max_examples=300, deadline=None)
@given(st.text())
def test_any_text_gives_clean_tokens(text: str) -> None:
    tokens = analyze(text)
    assert all(token and re.fullmatch(r"\w+", token) for token in tokens)
    assert set(analyze_query(text)) <= set(tokens)
    stored = segmented(text)
    # Safe to store for FTS5/tsvector: words and single spaces only, no operators.
    assert re.fullmatch(r"(\w+( \w+)*)?", stored)
    assert stored == " ".join(tokens)


def test_tables_load_lazily_and_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(text_module, "_tables", None)
    loads: list[int] = []
    real_load = text_module._load_tables

    def counting_load() -> object:
        loads.append(1)
        return real_load()

    monkeypatch.setattr(text_module, "_load_tables", counting_load)
    results: list[list[str]] = []
    threads = [threading.Thread(target=lambda: results.append(analyze("提幣"))) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert loads == [1]
    assert results == [["提币"]] * 4
