"""Help-center rules: categories, article states, article ids. Pure."""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from enum import StrEnum


class ArticleStatus(StrEnum):
    DRAFT = "draft"
    PUBLISHED = "published"
    ARCHIVED = "archived"


@dataclass(frozen=True, slots=True)
class Category:
    slug: str
    name_zh: str
    name_en: str
    icon: str

    def name(self, locale: str) -> str:
        return self.name_zh if locale == "zh-CN" else self.name_en


# The six doors a customer of an exchange knocks on, in the order they are shown.
CATEGORIES: tuple[Category, ...] = (
    Category("account", "账户注册", "Account & sign-up", "👤"),
    Category("kyc", "身份认证", "Identity verification (KYC)", "🪪"),
    Category("deposit_withdrawal", "充值提现", "Deposits & withdrawals", "💸"),
    Category("trading", "交易规则", "Trading rules", "📈"),
    Category("security", "安全设置", "Security", "🔐"),
    Category("support", "客服与投诉", "Support & complaints", "💬"),
)
CATEGORY_BY_SLUG = {c.slug: c for c in CATEGORIES}
DEFAULT_CATEGORY = "support"

_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$")


def is_valid_article_id(article_id: str) -> bool:
    """Ids are kept as imported (a knowledge base's own keys), so they are URL-safe tokens."""
    return bool(_ID_RE.match(article_id))


def new_article_id() -> str:
    return "kb-" + secrets.token_hex(5)


def normalize_category(slug: str | None) -> str:
    if slug is None:
        return DEFAULT_CATEGORY
    slug = slug.strip().lower()
    return slug if slug in CATEGORY_BY_SLUG else DEFAULT_CATEGORY
