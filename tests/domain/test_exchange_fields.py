"""Format checks on the exchange fields a ticket carries."""

from __future__ import annotations

import pytest

from kefu.domain.errors import ValidationFailed
from kefu.domain.exchange_fields import ExchangeFields, normalize_exchange_fields

TXID = "8f3c" + "a1" * 30


def test_valid_fields_are_normalised() -> None:
    out = normalize_exchange_fields(
        ExchangeFields(
            exchange_uid=" 12345678 ",
            txid=TXID.upper(),
            order_id="ORD-2026-001",
            coin="usdt",
            network="trc20",
            amount="1,000.50",
        )
    )
    assert out == ExchangeFields("12345678", TXID, "ORD-2026-001", "USDT", "TRC20", "1000.5")


def test_eth_style_txid_keeps_prefix() -> None:
    out = normalize_exchange_fields(ExchangeFields(txid="0X" + TXID.upper()))
    assert out.txid == "0x" + TXID


def test_solana_signature_is_a_txid() -> None:
    sig = "5" + "Kq3" * 29
    assert normalize_exchange_fields(ExchangeFields(txid=sig)).txid == sig


def test_blank_values_become_none() -> None:
    assert normalize_exchange_fields(ExchangeFields(coin="  ", amount="")) == ExchangeFields()


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("exchange_uid", "abc"),
        ("exchange_uid", "12"),
        ("txid", "0x" + "ab" * 20),  # an address, not a transaction
        ("txid", "zz" * 32),
        ("order_id", "a b"),
        ("coin", "U$DT"),
        ("network", "-bad"),
        ("amount", "-1"),
        ("amount", "NaN"),
        ("amount", "Infinity"),
        ("amount", "1e999999"),
        ("amount", "9" * 40),
        ("amount", "一百"),
    ],
)
def test_bad_values_name_their_field(field: str, value: str) -> None:
    with pytest.raises(ValidationFailed) as info:
        normalize_exchange_fields(ExchangeFields(**{field: value}))
    assert info.value.params["field"] == field
