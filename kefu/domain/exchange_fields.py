"""Format checks for the exchange fields a ticket carries (UID, TxID, order id, coin …).

A TxID field is also how DLP tells a transaction hash from a private key, so a value
accepted here is known to be public.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from kefu.domain.errors import ValidationFailed

_UID_RE = re.compile(r"^\d{5,20}$")
# Hex hashes (BTC/ETH/TRON/BSC …, optional 0x) and base58 signatures (Solana).
_TXID_RE = re.compile(r"^(?:0[xX])?[0-9a-fA-F]{64}$|^[1-9A-HJ-NP-Za-km-z]{80,90}$")
_ORDER_RE = re.compile(r"^[0-9A-Za-z_-]{4,64}$")
_COIN_RE = re.compile(r"^[A-Z0-9]{2,12}$")
_NETWORK_RE = re.compile(r"^[A-Z0-9][A-Z0-9 ._-]{1,23}$")
MAX_AMOUNT_DIGITS = 30
MAX_INTEGER_DIGITS = 20


@dataclass(frozen=True, slots=True)
class ExchangeFields:
    exchange_uid: str | None = None
    txid: str | None = None
    order_id: str | None = None
    coin: str | None = None
    network: str | None = None
    amount: str | None = None


def normalize_exchange_fields(fields: ExchangeFields) -> ExchangeFields:
    """Return the fields in canonical form, or raise ``ValidationFailed`` naming the field."""

    def clean(value: str | None) -> str | None:
        if value is None:
            return None
        value = value.strip()
        return value or None

    uid = clean(fields.exchange_uid)
    if uid is not None and not _UID_RE.match(uid):
        raise ValidationFailed("invalid exchange UID", field="exchange_uid")
    txid = clean(fields.txid)
    if txid is not None:
        if not _TXID_RE.match(txid):
            raise ValidationFailed("invalid TxID", field="txid")
        if not txid.startswith(("0x", "0X")) and len(txid) == 64:
            txid = txid.lower()
        elif len(txid) == 66:
            txid = "0x" + txid[2:].lower()
    order_id = clean(fields.order_id)
    if order_id is not None and not _ORDER_RE.match(order_id):
        raise ValidationFailed("invalid order id", field="order_id")
    coin = clean(fields.coin)
    if coin is not None:
        coin = coin.upper()
        if not _COIN_RE.match(coin):
            raise ValidationFailed("invalid coin", field="coin")
    network = clean(fields.network)
    if network is not None:
        network = network.upper()
        if not _NETWORK_RE.match(network):
            raise ValidationFailed("invalid network", field="network")
    amount = clean(fields.amount)
    if amount is not None:
        amount = _normalize_amount(amount)
    return ExchangeFields(uid, txid, order_id, coin, network, amount)


def _normalize_amount(text: str) -> str:
    text = text.replace(",", "")
    if len(text) > MAX_AMOUNT_DIGITS + 2:
        raise ValidationFailed("invalid amount", field="amount")
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise ValidationFailed("invalid amount", field="amount") from None
    if not value.is_finite() or value < 0:
        raise ValidationFailed("invalid amount", field="amount")
    # Bound the magnitude and precision: "1e999999" is short but would print a
    # million digits. 10^20 and 18 decimals cover every coin's supply and unit.
    exponent = value.as_tuple().exponent
    decimals = -exponent if isinstance(exponent, int) else 0
    if value != 0 and (value.adjusted() >= MAX_INTEGER_DIGITS or decimals > 18):
        raise ValidationFailed("invalid amount", field="amount")
    return format(value.normalize(), "f")
