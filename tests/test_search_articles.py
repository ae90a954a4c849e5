"""The in-memory article index: ranking, variants and typos, removal, hostile queries."""

from __future__ import annotations

import threading

import pytest

from kefu.infra.search.articles import ArticleIndex

ARTICLES = [
    (
        "kb-withdraw",
        "提币一直未到账怎么办",
        "请先在提币记录中查看状态，复制 TxID 到区块浏览器查询确认数。",
    ),
    (
        "kb-deposit",
        "充币未到账如何处理",
        "请确认充值网络与地址一致，TRC20 与 ERC20 不能混用；标签 memo 必须填写。",
    ),
    (
        "kb-2fa",
        "如何绑定谷歌验证",
        "下载 Google Authenticator，扫描二维码后输入六位验证码完成绑定。",
    ),
    ("kb-frozen", "账户被冻结怎么解冻", "出于安全原因账户可能被锁定，请提交申诉并完成人脸识别。"),
    (
        "kb-mnemonic",
        "助记词丢失还能找回钱包吗",
        "助记词是恢复钱包的唯一凭证，任何人索要助记词都是诈骗。",
    ),
    ("kb-funding", "资金费率是什么", "永续合约每八小时结算一次资金费率，多空双方互相支付。"),
    ("kb-fees", "提币手续费说明", "不同网络的矿工费不同，USDT 走 TRC20 通常最便宜。"),
    ("kb-c2c", "C2C 买币付款后商家不放币", "在订单页点击申诉，客服会介入处理；请勿在平台外交易。"),
]

HOSTILE_QUERIES = [
    "",
    "   ",
    "\n\t",
    "😀🔥💰",
    '" OR * NEAR(',
    "提币 AND (充币 OR NEAR(x y)) NOT * ^",
    "USDT提币привет😀café한국어",
    "\x00\x1b[31m\ud800\u202e",
    "提" * 10_000,
    "😀" * 10_000,
]


@pytest.fixture
def index() -> ArticleIndex:
    index = ArticleIndex()
    for doc_id, title, body in ARTICLES:
        index.add(doc_id, title, body)
    return index


def _ids(results: list[tuple[str, float]]) -> list[str]:
    return [doc_id for doc_id, _ in results]


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("提币没到账", "kb-withdraw"),
        ("充值没有到账", "kb-deposit"),
        ("怎么绑定谷歌验证器", "kb-2fa"),
        ("账号冻结了", "kb-frozen"),
        ("资金费率", "kb-funding"),
        ("商家不放币", "kb-c2c"),
    ],
)
def test_the_answering_article_ranks_first(index: ArticleIndex, query: str, expected: str) -> None:
    assert _ids(index.search(query))[0] == expected


def test_results_are_ranked_and_limited(index: ArticleIndex) -> None:
    results = index.search("提币 到账 手续费", limit=3)
    assert len(results) == 3
    scores = [score for _, score in results]
    assert scores == sorted(scores, reverse=True)
    assert all(score > 0 for score in scores)
    assert index.search("提币", limit=0) == []


def test_a_title_match_outranks_a_body_match() -> None:
    index = ArticleIndex()
    index.add("body", "账户安全设置", "如果需要解冻账户，请联系客服。" + "安全提示。" * 10)
    index.add("title", "解冻账户的步骤", "请按页面提示操作。" + "安全提示。" * 10)
    assert _ids(index.search("解冻账户")) == ["title", "body"]


@pytest.mark.parametrize(
    "query",
    [
        "如何綁定谷歌驗證",  # Traditional characters
        "怎么绑定Google Authenticator",  # the English name
        "２ＦＡ怎么绑定",  # full-width, and a synonym
        "如何帮定谷歌验正",  # two homophone typos: 帮定 for 绑定, 验正 for 验证
    ],
)
def test_variants_and_typos_still_find_the_article(index: ArticleIndex, query: str) -> None:
    assert _ids(index.search(query))[0] == "kb-2fa"


def test_synonyms_find_each_other(index: ArticleIndex) -> None:
    assert _ids(index.search("出金一直没到"))[0] == "kb-withdraw"
    assert _ids(index.search("账户被锁定"))[0] == "kb-frozen"


def test_remove_drops_the_article(index: ArticleIndex) -> None:
    index.remove("kb-withdraw")
    assert "kb-withdraw" not in _ids(index.search("提币未到账"))
    assert "kb-withdraw" not in index
    assert len(index) == len(ARTICLES) - 1
    index.remove("kb-withdraw")  # twice, or an unknown id: ignored
    index.remove("no-such-article")


def test_adding_an_id_again_replaces_the_article(index: ArticleIndex) -> None:
    index.add("kb-funding", "子账户如何划转", "在资产页选择划转。")
    assert len(index) == len(ARTICLES)
    assert "kb-funding" not in _ids(index.search("永续合约多空"))
    assert _ids(index.search("子账号划转"))[0] == "kb-funding"


def test_boost_orders_otherwise_equal_articles() -> None:
    index = ArticleIndex()
    index.add("plain", "如何提币", "")
    index.add("pinned", "如何提币", "", boost=2.0)
    index.add("weird", "如何提币", "", boost=float("nan"))
    assert _ids(index.search("提币"))[0] == "pinned"


@pytest.mark.parametrize("query", HOSTILE_QUERIES)
def test_hostile_queries_return_lists(index: ArticleIndex, query: str) -> None:
    results = index.search(query)
    assert isinstance(results, list)
    assert all(doc_id in index for doc_id, _ in results)


def test_empty_query_and_empty_index_give_nothing(index: ArticleIndex) -> None:
    assert index.search("") == []
    assert index.search("   ") == []
    assert ArticleIndex().search("提币") == []


def test_many_removals_compact_without_losing_articles() -> None:
    index = ArticleIndex()
    for number in range(2_500):
        index.add(f"tmp-{number}", f"临时文章 {number}", "过期内容")
    index.add("keep", "提币地址白名单", "开启白名单后只能向地址簿中的地址提币。")
    for number in range(2_500):
        index.remove(f"tmp-{number}")
    assert len(index) == 1
    assert index.search("过期内容") == []
    assert _ids(index.search("白名单")) == ["keep"]
    index.add("again", "白名单怎么关闭", "")
    assert set(_ids(index.search("白名单"))) == {"keep", "again"}


def test_concurrent_writers_and_readers(index: ArticleIndex) -> None:
    errors: list[BaseException] = []

    def write(worker: int) -> None:
        try:
            for number in range(100):
                index.add(f"w{worker}-{number}", "提币到账说明", "内容")
                index.remove(f"w{worker}-{number - 1}")
        except BaseException as error:  # any failure must reach the assertion below
            errors.append(error)

    def read() -> None:
        try:
            for _ in range(200):
                index.search("提币没到账")
        except BaseException as error:  # any failure must reach the assertion below
            errors.append(error)

    threads = [threading.Thread(target=write, args=(n,)) for n in range(2)]
    threads += [threading.Thread(target=read) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert len(index) == len(ARTICLES) + 2
