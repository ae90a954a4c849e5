"""DLP detectors (kefu.domain.dlp): the labelled case file as a metric, then one rule at a time.

Values are generated here with their real checksums (BIP-39, Base58Check, Luhn, ISO 7064),
from fixed seeds, so every run tests the same strings.
"""

from __future__ import annotations

import json
import random
from collections import Counter
from collections.abc import Callable, Iterable
from itertools import pairwise
from pathlib import Path
from typing import Any

import base58
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mnemonic import Mnemonic

from kefu.domain.dlp import (
    PII_KINDS,
    SECRET_KINDS,
    Finding,
    FindingKind,
    lint_outbound,
    mask_for_display,
    mask_secrets,
    scan,
)

CASES = Path(__file__).resolve().parents[1] / "fixtures" / "dlp_cases.jsonl"
MIN_PRECISION = 0.97
MIN_RECALL = 0.97

EN = Mnemonic("english")
ZH_S = Mnemonic("chinese_simplified")
ZH_T = Mnemonic("chinese_traditional")
MARKERS = {
    FindingKind.SEED_PHRASE: "[已屏蔽：助记词]",
    FindingKind.PRIVATE_KEY: "[已屏蔽：私钥]",
    FindingKind.PASSWORD: "[已屏蔽：密码]",
    FindingKind.OTP_CODE: "[已屏蔽：验证码]",
}


def found(text: str, known_txids: Iterable[str] = ()) -> list[tuple[str, str]]:
    """(kind, exact substring) of every finding."""
    return [(f.kind.value, text[f.start : f.end]) for f in scan(text, known_txids=known_txids)]


# --- generators of real values --------------------------------------------------------
def phrase(m: Mnemonic, seed: int, strength: int = 128) -> list[str]:
    return m.to_mnemonic(random.Random(seed).randbytes(strength // 8)).split(" ")


def bad_phrase(m: Mnemonic, seed: int, n: int = 12) -> list[str]:
    rng = random.Random(seed)
    while True:
        words = [rng.choice(m.wordlist) for _ in range(n)]
        if not m.check(" ".join(words)):
            return words


def hex64(seed: int) -> str:
    return random.Random(seed).randbytes(32).hex()


def b58check(payload: bytes) -> str:
    return base58.b58encode_check(payload).decode()


def wif(seed: int, *, compressed: bool = True, testnet: bool = False) -> str:
    payload = bytes([0xEF if testnet else 0x80]) + random.Random(seed).randbytes(32)
    return b58check(payload + (b"\x01" if compressed else b""))


def extended_key(version: str, seed: int, *, private: bool = True) -> str:
    rng = random.Random(seed)
    body = bytes.fromhex(version) + bytes([1]) + rng.randbytes(8) + rng.randbytes(32)
    key = b"\x00" + rng.randbytes(32) if private else b"\x02" + rng.randbytes(32)
    return b58check(body + key)


def luhn(prefix: str, length: int, seed: int) -> str:
    rng = random.Random(seed)
    body = prefix + "".join(str(rng.randrange(10)) for _ in range(length - len(prefix) - 1))
    for check in "0123456789":
        digits = body + check
        total = sum(
            (int(c) * 2 - 9 if int(c) > 4 else int(c) * 2) if i % 2 else int(c)
            for i, c in enumerate(reversed(digits))
        )
        if total % 10 == 0:
            return digits
    raise AssertionError


def id_card(region: str = "110101", birth: str = "19900307", seq: str = "123") -> str:
    body = region + birth + seq
    weights = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
    return body + "10X98765432"[sum(int(a) * w for a, w in zip(body, weights, strict=True)) % 11]


# --- (1) the case file as a metric -----------------------------------------------------
def load_cases() -> list[dict[str, Any]]:
    return [json.loads(line) for line in CASES.read_text(encoding="utf-8").splitlines() if line]


def test_case_file_is_large_and_mostly_hard_negatives() -> None:
    cases = load_cases()
    negatives = [c for c in cases if not c["expect"]]
    assert len(cases) >= 320
    assert len(negatives) * 2 >= len(cases)
    for case in cases:
        for expected in case["expect"]:
            assert expected["value"] in case["text"], case
            assert expected["kind"] in set(FindingKind), case


def test_precision_and_recall_on_case_file() -> None:
    tp = fp = fn = 0
    misses = []
    for case in load_cases():
        text = str(case["text"])
        got = Counter(found(text, known_txids=case.get("known_txids", ())))
        want = Counter((e["kind"], e["value"]) for e in case["expect"])
        tp += sum((got & want).values())
        fp += sum((got - want).values())
        fn += sum((want - got).values())
        if got != want:
            misses.append(
                f"{case['note']}: {text!r} extra={dict(got - want)} missed={dict(want - got)}"
            )
    precision, recall = tp / (tp + fp), tp / (tp + fn)
    print(f"precision={precision:.4f} recall={recall:.4f} tp={tp} fp={fp} fn={fn}")
    print("\n".join(misses))
    assert precision >= MIN_PRECISION, misses
    assert recall >= MIN_RECALL, misses


def test_masked_case_texts_hold_no_secret() -> None:
    for case in load_cases():
        text = str(case["text"])
        txids = list(case.get("known_txids", ()))
        masked, _ = mask_secrets(text, scan(text, known_txids=txids))
        again = scan(masked, known_txids=txids)
        assert not [f for f in again if f.kind in SECRET_KINDS], (text, masked)


# --- (2) seed phrases ------------------------------------------------------------------
def test_english_phrase_in_a_message() -> None:
    words = " ".join(phrase(EN, 1))
    text = f"Hi, my wallet was drained. My seed phrase was {words}. Please help!"
    assert found(text) == [("seed_phrase", words)]


@pytest.mark.parametrize("strength", [128, 160, 192, 224, 256])
def test_english_phrase_every_length(strength: int) -> None:
    words = " ".join(phrase(EN, strength, strength))
    assert found(words) == [("seed_phrase", words)]


def test_english_phrase_with_invalid_checksum_is_still_a_phrase() -> None:
    words = " ".join(bad_phrase(EN, 2))
    assert found(f"is this right? {words}") == [("seed_phrase", words)]


@pytest.mark.parametrize(
    "layout",
    [
        lambda w: "\n".join(f"{i + 1}. {x}" for i, x in enumerate(w)),
        lambda w: " ".join(f"{i + 1}.{x}" for i, x in enumerate(w)),
        lambda w: ", ".join(w),
        lambda w: "、".join(w),
        lambda w: " ".join(x.upper() for x in w),
    ],
    ids=["numbered-lines", "numbered-inline", "commas", "chinese-commas", "upper-case"],
)
def test_english_phrase_separators(layout: Callable[[list[str]], str]) -> None:
    words = phrase(EN, 3)
    text = f"助记词 {layout(words)}"
    assert [f.kind for f in scan(text)] == [FindingKind.SEED_PHRASE]
    masked, _ = mask_secrets(text)
    assert masked.endswith("[已屏蔽：助记词]")
    assert not [w for w in words if w in masked.lower()]


def test_english_wordlist_words_before_and_after_are_trimmed_by_checksum() -> None:
    words = " ".join(phrase(EN, 4))
    text = f"seed: {words}. help"
    assert found(text) == [("seed_phrase", words)]


@pytest.mark.parametrize(
    "text",
    [
        "I am able to access my account above, but about an hour ago the balance was gone.",
        "abandon ability able about above absent absorb abstract absurd abuse access",  # 11
        "Write down your recovery phrase on paper and keep it offline, never online.",
        "Please help me, I cannot find my deposit and the network was TRC20 this time.",
    ],
)
def test_english_prose_is_not_a_phrase(text: str) -> None:
    assert found(text) == []


@pytest.mark.parametrize("wordlist", [ZH_S, ZH_T], ids=["simplified", "traditional"])
def test_chinese_contiguous_phrase_after_a_cue(wordlist: Mnemonic) -> None:
    chars = "".join(phrase(wordlist, 5))
    assert found(f"我的助记词是{chars}，请帮我找回资产") == [("seed_phrase", chars)]


@pytest.mark.parametrize("wordlist", [ZH_S, ZH_T], ids=["simplified", "traditional"])
def test_chinese_checksum_valid_phrase_needs_no_cue(wordlist: Mnemonic) -> None:
    chars = "".join(phrase(wordlist, 6))
    assert found(chars) == [("seed_phrase", chars)]


def test_chinese_phrase_followed_by_prose_without_punctuation() -> None:
    chars = "".join(phrase(ZH_S, 7))
    assert found(f"我的助记词是{chars}请帮我找回") == [("seed_phrase", chars)]


def test_chinese_separated_single_characters_need_no_cue() -> None:
    chars = " ".join(bad_phrase(ZH_S, 8))
    assert found(chars) == [("seed_phrase", chars)]


def test_separated_single_characters_after_a_word() -> None:
    chars = " ".join(ZH_S.to_mnemonic(bytes(range(16, 32))).split(" "))
    text = f"谷歌验证码 482913，还有 {chars} 谢谢"
    assert found(text) == [("otp_code", "482913"), ("seed_phrase", chars)]


def test_issue_example_first_twelve_words() -> None:
    assert found("助记词：的一是在不了有和人这中大") == [
        ("seed_phrase", "的一是在不了有和人这中大")
    ]
    spaced = "的 一 是 在 不 了 有 和 人 这 中 大"
    assert found(spaced) == [("seed_phrase", spaced)]


@pytest.mark.parametrize("entropy", [bytes(16), bytes([0x80]) * 16, bytes(32)])
def test_chinese_low_entropy_test_vectors_after_a_cue(entropy: bytes) -> None:
    chars = "".join(ZH_S.to_mnemonic(entropy).split(" "))  # "的的的的的的的的的的的在"
    assert found(f"助记词：{chars}") == [("seed_phrase", chars)]


def test_chinese_invalid_checksum_without_cue_or_separators_is_not_flagged() -> None:
    # 12 random wordlist characters: only a cue, a checksum or separators make it a phrase.
    chars = "".join(bad_phrase(ZH_S, 9))
    assert found(chars) == []
    assert found(f"助记词：{chars}") == [("seed_phrase", chars)]


@pytest.mark.parametrize(
    "text",
    [
        "我的助记词丢了，还能找回资产吗？我记得是在去年注册的账户",
        "助记词被盗了，钱包里的币全部被转走了，怎么办",
        "有人冒充客服让我把助记词发给他，这是骗子吗",
        "恢复词导入以后显示的地址和原来的不一样，是不是我抄错了",
        "助記詞被盜了，錢包裡的幣全部被轉走了，怎麼辦",
        "你好 我想问一下 提币什么时候到 谢谢",
        "的 一 是 在 不 了",
    ],
)
def test_chinese_prose_is_not_a_phrase(text: str) -> None:
    assert found(text) == []


# --- private keys ----------------------------------------------------------------------
@pytest.mark.parametrize(
    "template",
    ["我的私钥是{k}", "private key: {k}", "导出的私钥 {k}", "{k} 这是我的私钥", "privkey={k}"],
)
def test_hex_key_with_key_context(template: str) -> None:
    key = hex64(10)
    assert found(template.format(k=key)) == [("private_key", key)]


def test_hex_key_with_0x_prefix() -> None:
    key = "0x" + hex64(11)
    assert found(f"import this secret key {key}") == [("private_key", key)]


@pytest.mark.parametrize(
    "template",
    ["TxID: {k}", "提币哈希 {k} 一直没到账", "{k}", "区块浏览器显示 {k} 已确认", "tx {k}"],
)
def test_hex_without_key_context_is_a_transaction(template: str) -> None:
    assert found(template.format(k=hex64(12))) == []


def test_nearest_label_decides_between_key_and_txid() -> None:
    tx = hex64(13)
    assert found(f"私钥没有泄露，我只是想查这笔提币 TxID {tx}") == []


def test_known_txids_are_never_keys() -> None:
    tx = hex64(14)
    assert found(f"私钥 {tx}", known_txids=[tx]) == []
    assert found(f"私钥 0x{tx}", known_txids=["0x" + tx.upper()]) == []
    assert found(f"私钥 {tx}", known_txids=[hex64(15)]) == [("private_key", tx)]


@pytest.mark.parametrize(
    ("compressed", "testnet"), [(True, False), (False, False), (True, True), (False, True)]
)
def test_wif_keys(compressed: bool, testnet: bool) -> None:
    key = wif(16, compressed=compressed, testnet=testnet)
    assert found(f"钱包 {key}") == [("private_key", key)]


def test_wif_with_a_typo_is_not_a_key() -> None:
    key = wif(17)
    broken = key[:10] + ("A" if key[10] != "A" else "B") + key[11:]
    assert found(broken) == []


@pytest.mark.parametrize("version", ["0488ADE4", "04358394", "049D7878", "04B2430C"])
def test_extended_private_keys(version: str) -> None:
    key = extended_key(version, 18)
    assert found(f"backup {key}") == [("private_key", key)]


@pytest.mark.parametrize("version", ["0488B21E", "04B24746", "049D7CB2"])
def test_extended_public_keys_are_public(version: str) -> None:
    assert found(f"我的xpub {extended_key(version, 19, private=False)}") == []


def test_corrupted_xprv_is_not_a_key() -> None:
    key = extended_key("0488ADE4", 20)
    assert found(key[:30] + ("a" if key[30] != "a" else "b") + key[31:]) == []


@pytest.mark.parametrize(
    "address",
    [
        "0x" + "ab" * 20,
        b58check(b"\x00" + bytes(range(20))),
        b58check(b"\x05" + bytes(range(20))),
        b58check(b"\x41" + bytes(range(20))),
        "bc1qar0srrr7xfkvy5l643lydnw9re59gtzzwf5mdq",
    ],
    ids=["eth", "p2pkh", "p2sh", "tron", "bech32"],
)
def test_addresses_are_not_keys(address: str) -> None:
    assert found(f"私钥对应的地址是 {address}") == []


# --- passwords -------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("密码是abc123，谢谢", "abc123"),
        ("登录密码：Xy!9kk", "Xy!9kk"),
        ("资金密码 123456", "123456"),
        ("password: hunter2", "hunter2"),
        ("my pwd is qwerty99", "qwerty99"),
        ("pass: Tr0ub4dor&3", "Tr0ub4dor&3"),
        ("新密码改成了Abc@2024", "Abc@2024"),
        ('登录密码为 "P@ssw0rd"，麻烦看看', "P@ssw0rd"),
        ("Password is S3cure#Pass.", "S3cure#Pass"),
    ],
)
def test_password_value_only(text: str, value: str) -> None:
    assert found(text) == [("password", value)]


@pytest.mark.parametrize(
    "text",
    [
        "忘记密码了",
        "密码错误",
        "how do I reset my password",
        "密码重置邮件没收到",
        "my password is wrong",
        "密码要求8-20位，必须包含字母和数字",
        "password: ********",
        "First pass: check the logs",
        "The passport: E12345678 was rejected",
        "重置密码链接：https://example.com/reset?token=abc123",
    ],
)
def test_not_a_password(text: str) -> None:
    assert found(text) == []


# --- 2FA codes -------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("验证码 123456", "123456"),
        ("谷歌验证码：654321，麻烦快点", "654321"),
        ("我的谷歌验证是112233", "112233"),
        ("2FA code 987654", "987654"),
        ("GA码 246810", "246810"),
        ("短信码12345678刚收到", "12345678"),
        ("Google Authenticator: 135 790", "135 790"),
        ("864209 是我的谷歌验证码", "864209"),
        ("验证码是１２３４５６", "１２３４５６"),
    ],
)
def test_otp_code(text: str, value: str) -> None:
    assert found(text) == [("otp_code", value)]


@pytest.mark.parametrize(
    "text",
    [
        "订单号 123456",
        "验证码一直收不到，订单号 654321",
        "验证码 123456 USDT 没到",
        "UID 12345678",
        "我在 2024-01-15 12:30:45 收到验证码",
        "余额 888888 元不见了",
        "价格 123456.78",
    ],
)
def test_not_an_otp_code(text: str) -> None:
    assert found(text) == []


# --- ID cards --------------------------------------------------------------------------
def test_id_card_with_valid_check_digit() -> None:
    number = id_card()
    assert found(f"身份证号 {number}") == [("id_card", number)]


def test_id_card_ending_in_x() -> None:
    seq = next(s for s in (f"{i:03d}" for i in range(1000)) if id_card(seq=s).endswith("X"))
    number = id_card(seq=seq)
    assert found(f"身份证：{number}") == [("id_card", number)]
    assert found(f"身份证：{number.lower()}") == [("id_card", number.lower())]


@pytest.mark.parametrize(
    "number",
    [
        id_card()[:-1] + ("0" if id_card()[-1] != "0" else "1"),  # check digit
        id_card(birth="19900230")[:17] + "0",  # 30 February
        id_card(birth="20991231"),  # born in the future
        id_card(region="990101"),  # no such province
    ],
    ids=["check-digit", "impossible-date", "future", "province"],
)
def test_not_an_id_card(number: str) -> None:
    assert ("id_card", number) not in found(f"身份证 {number}")


def test_old_fifteen_digit_id_card() -> None:
    assert found("老身份证 110101900307123") == [("id_card", "110101900307123")]


def test_id_card_wins_over_a_luhn_valid_reading() -> None:
    number = next(
        n
        for n in (id_card(seq=f"{i:03d}") for i in range(1000))
        if n.isdigit() and luhn(n[:-1], 18, 0) == n
    )
    assert found(number) == [("id_card", number)]


# --- bank cards ------------------------------------------------------------------------
@pytest.mark.parametrize(
    "number",
    [
        luhn("622202", 19, 21),
        luhn("4", 16, 22),
        " ".join(luhn("6222", 16, 23)[i : i + 4] for i in range(0, 16, 4)),
        "-".join(luhn("5", 16, 24)[i : i + 4] for i in range(0, 16, 4)),
    ],
    ids=["unionpay-19", "visa", "spaced", "dashed"],
)
def test_bank_card(number: str) -> None:
    assert found(f"卡号 {number}") == [("bank_card", number)]


def test_not_a_bank_card() -> None:
    card = luhn("6222", 16, 25)
    broken = card[:-1] + str((int(card[-1]) + 3) % 10)
    assert found(f"卡号 {broken}") == []  # Luhn
    assert found(f"订单号 {luhn('6', 19, 26)}") == []  # order id
    assert found(f"UID {luhn('4', 16, 27)}") == []  # UID
    assert found(f"提币 {luhn('4', 13, 28)} USDT") == []  # amount
    stamp = next(s for s in (str(1700000000000 + i) for i in range(20)) if luhn(s[:-1], 13, 0) == s)
    assert found(f"created_at={stamp}") == []  # ms timestamp


# --- phones and emails -----------------------------------------------------------------
@pytest.mark.parametrize(
    "number",
    ["13812345678", "+86 13812345678", "+86-13812345678", "008613812345678", "138 1234 5678",
     "138-1234-5678", "+1 415 555 2671", "+44 20 7946 0958"],
)  # fmt: skip
def test_phone(number: str) -> None:
    assert found(f"电话 {number}") == [("phone", number)]


@pytest.mark.parametrize(
    "text",
    ["1138123456789", "13812345678901", "UID: 13812345678", "订单号13812345678",
     "提币 13812345678 USDT", "price 13800000000.5"],
)  # fmt: skip
def test_not_a_phone(text: str) -> None:
    assert found(text) == []


def test_email() -> None:
    assert found("注册邮箱：zhang.san@example.com，谢谢") == [("email", "zhang.san@example.com")]
    assert found("关注 @kefu_official 获取公告，或 user@localhost") == []


# --- overlaps, offsets, masking ---------------------------------------------------------
def test_secret_wins_over_pii_on_overlap() -> None:
    assert found("密码是13812345678") == [("password", "13812345678")]
    assert found("交易密码 zhang@example.com") == [("password", "zhang@example.com")]


def test_findings_are_sorted_and_disjoint() -> None:
    text = f"手机13812345678 密码Qw12345! 私钥 {hex64(30)} 邮箱 a@b.com 验证码 123456"
    spans = scan(text)
    assert [f.kind for f in spans] == [
        FindingKind.PHONE,
        FindingKind.PASSWORD,
        FindingKind.PRIVATE_KEY,
        FindingKind.EMAIL,
        FindingKind.OTP_CODE,
    ]
    assert all(a.end <= b.start for a, b in pairwise(spans))


def test_offsets_index_the_original_text_with_astral_characters() -> None:
    text = "😀😀🙏 验证码 654321 🐳 邮箱 z@example.com"
    spans = scan(text)
    assert [(f.start, f.end) for f in spans] == [
        (text.index("654321"), text.index("654321") + 6),
        (text.index("z@"), len(text)),
    ]


def test_kind_sets() -> None:
    assert set(FindingKind) == SECRET_KINDS | PII_KINDS
    assert not SECRET_KINDS & PII_KINDS
    assert {k.value for k in SECRET_KINDS} == {"seed_phrase", "private_key", "password", "otp_code"}


def test_mask_secrets_replaces_secrets_and_keeps_pii() -> None:
    key = hex64(31)
    words = " ".join(phrase(EN, 32))
    text = f"助记词 {words}，私钥 {key}，密码是abc123，验证码 654321，手机 13812345678"
    masked, findings = mask_secrets(text)
    assert masked == (
        "助记词 [已屏蔽：助记词]，私钥 [已屏蔽：私钥]，密码是[已屏蔽：密码]，"
        "验证码 [已屏蔽：验证码]，手机 13812345678"
    )
    assert [text[f.start : f.end] for f in findings] == [
        words, key, "abc123", "654321", "13812345678",
    ]  # fmt: skip
    assert scan(masked) == [Finding(FindingKind.PHONE, masked.index("138"), len(masked))]


def test_mask_secrets_with_given_findings_masks_only_those() -> None:
    text = "验证码 123456 和 654321"
    given_findings = [Finding(FindingKind.OTP_CODE, 4, 10)]
    assert mask_secrets(text, given_findings) == (
        "验证码 [已屏蔽：验证码] 和 654321",
        given_findings,
    )


def test_mask_for_display_formats() -> None:
    card = luhn("622202", 16, 33)
    number = id_card()
    text = f"卡 {card} 证 {number} 手机 13812345678 邮箱 zhang@example.com 密码是abc123"
    shown = mask_for_display(text, scan(text))
    assert shown == (
        f"卡 {card[:4]} **** **** {card[-4:]} 证 110101********{number[-4:]} "
        "手机 138****5678 邮箱 z***@example.com 密码是[已屏蔽：密码]"
    )


def test_mask_for_display_phone_with_country_code_and_spaced_card() -> None:
    card = " ".join(luhn("6222", 16, 34)[i : i + 4] for i in range(0, 16, 4))
    text = f"+86 138 1234 5678 / {card}"
    assert (
        mask_for_display(text, scan(text)) == f"+86 138****5678 / {card[:4]} **** **** {card[-4:]}"
    )


# --- lint_outbound ---------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("请提供您的助记词以便核实", "seed_phrase"),
        ("please send us your 2FA code", "otp_code"),
        ("请把助记词发给我，我帮您恢复", "seed_phrase"),
        ("对不起，请告诉我您的资金密码", "password"),
        ("为了验证身份，请回复您的谷歌验证码", "otp_code"),
        ("Please share your recovery phrase with us to verify ownership", "seed_phrase"),
        ("What is your private key?", "private_key"),
        ("请在下方链接输入您的助记词完成验证", "seed_phrase"),
        ("We will never ask for your password. Please send us your 2FA code.", "otp_code"),
    ],
)
def test_lint_asks_for_secret(text: str, kind: str) -> None:
    problems = lint_outbound(text)
    assert [(p.code, p.kind) for p in problems] == [("asks_for_secret", kind)]
    assert "官方客服绝不会索要" in problems[0].message
    assert 0 <= problems[0].start < problems[0].end <= len(text)


@pytest.mark.parametrize(
    "text",
    [
        "我们绝不会索要您的助记词",
        "请勿向任何人透露密码",
        "never share your seed phrase",
        "We will never ask for your private key, password or 2FA code.",
        "如有人向您索要验证码，那是骗子",
        "我们已发送验证码到您的手机，请查收",
        "请在App中输入谷歌验证码完成提币",
        "如需重置密码，请点击忘记密码",
        "请提供您的UID和提币TxID",
        "We will send you a verification code",
        "请确认您是否收到了验证码",
        "请不要把助记词、私钥、验证码告诉任何人",
        "Do not share your password with anyone.",
    ],
)
def test_lint_negated_or_harmless(text: str) -> None:
    assert lint_outbound(text) == []


@pytest.mark.parametrize(
    ("text", "kind", "span"),
    [
        ("加我微信 kefu_8899 详细沟通", "wechat", "加我微信 kefu_8899"),
        ("有问题加我微信", "wechat", "加我微信"),
        ("微信号：kefu_8899", "wechat", "微信号：kefu_8899"),
        ("请通过 t.me/support_helper 联系我", "telegram", "t.me/support_helper"),
        ("我的电报 @coin_helper_01", "telegram", "电报 @coin_helper_01"),
        ("WhatsApp: +1 415 555 2671", "whatsapp", "WhatsApp: +1 415 555 2671"),
        ("https://wa.me/14155552671", "whatsapp", "https://wa.me/14155552671"),
        ("QQ号 123456789", "qq", "QQ号 123456789"),
    ],
)
def test_lint_off_platform_contact(text: str, kind: str, span: str) -> None:
    problems = lint_outbound(text)
    assert [(p.code, p.kind, text[p.start : p.end]) for p in problems] == [
        ("off_platform_contact", kind, span)
    ]
    assert "官方渠道" in problems[0].message


def test_lint_official_contacts_and_warnings_pass() -> None:
    assert lint_outbound("官方 Telegram 频道：t.me/OurExchange", official=["@OurExchange"]) == []
    assert lint_outbound("如有人让您加微信 abc12345，那是骗子") == []
    assert lint_outbound("我们不会通过 WhatsApp 联系您") == []


# --- (3) properties --------------------------------------------------------------------
FRAGMENTS = [
    "abandon", "ability", "zoo", "的", "一", "是", "助记词", "私钥", "密码", "验证码", "password:",
    " ", "\n", "，", "、", ":", "1.", "0x", "123456", "13812345678", "+86", "@", ".com", "x",
    "订单号", "USDT", "😀", "\u0130", "ＡＢ", "１２３", "6222", "-", hex64(40), wif(41),
]  # fmt: skip


def check_invariants(text: str) -> None:
    findings = scan(text)
    assert all(0 <= f.start < f.end <= len(text) for f in findings)
    assert all(a.end <= b.start for a, b in pairwise(findings))
    masked, returned = mask_secrets(text, findings)
    assert returned == findings
    secrets = [f for f in findings if f.kind in SECRET_KINDS]
    outside = "\0".join(
        text[a:b]
        for a, b in zip(
            [0, *(f.end for f in secrets)], [*(f.start for f in secrets), len(text)], strict=True
        )
    )
    marker_chars = set("".join(MARKERS.values()))
    for f in secrets:
        value = text[f.start : f.end]
        if value not in outside and not set(value) & marker_chars:
            assert value not in masked
    mask_for_display(text, findings)


@settings(max_examples=300, deadline=None, database=None)
@given(st.text(max_size=400))
def test_scan_never_raises_and_spans_are_sane(text: str) -> None:
    check_invariants(text)


@settings(
    max_examples=300, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow]
)
@given(st.lists(st.sampled_from(FRAGMENTS), max_size=60).map("".join))
def test_scan_invariants_on_detector_shaped_text(text: str) -> None:
    check_invariants(text)
    lint_outbound(text)


# --- (4) linear time -------------------------------------------------------------------
ADVERSARIAL = {
    "zeros": "0" * 100_000,
    "abandon": "abandon " * 20_000,
    "mima": "密码" * 50_000,
    "de": "的" * 100_000,
    "de-spaced": "的 " * 50_000,
    "cue-and-chars": "助记词的一是" * 16_667,
    "digits-spaced": "1 " * 50_000,
    "card-groups": "6222 " * 20_000,
    "at-signs": "a@" * 50_000,
    "email-dots": "a." * 50_000 + "@",
    "password-labels": "password: " * 10_000,
    "otp": "验证码 123456 " * 8_000,
    "hex": "a" * 100_000,
    "newlines": "\n" * 100_000,
    "seed-words": "seed " * 20_000,
    "label-gaps": "abandon: " * 12_000,
    "system-sends": "已发送验证码" * 16_667,
    "asks": "请提供密码" * 20_000,
}


@pytest.mark.parametrize("text", ADVERSARIAL.values(), ids=ADVERSARIAL.keys())
def test_adversarial_100k_inputs_finish(text: str) -> None:
    text = text[:100_000]
    findings = scan(text)
    assert all(0 <= f.start < f.end <= len(text) for f in findings)
    mask_secrets(text, findings)
    lint_outbound(text)
