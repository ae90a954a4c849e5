"""The official-channel registry and the public verify endpoint, through the API."""

from __future__ import annotations

from typing import Any

import pytest
from mnemonic import Mnemonic
from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.testclient import TestClient

from kefu.domain.access import Role
from kefu.models import VerifyLookup
from tests.factories import auth, make_agent, make_token
from tests.secret_evidence import all_text_in_database


@pytest.fixture
def admin_h(db: Session) -> dict[str, str]:
    admin = make_agent(db, role=Role.ADMIN)
    db.commit()
    return auth(make_token(db, admin, ["read", "write", "admin"]))


def add(client: TestClient, h: dict[str, str], kind: str, value: str) -> Any:
    return client.post("/api/v1/official-channels", json={"kind": kind, "value": value}, headers=h)


def test_registry_and_verify(client: TestClient, admin_h: dict[str, str], db: Session) -> None:
    assert add(client, admin_h, "domain", "https://KX-Exchange.example/").status_code == 201
    assert add(client, admin_h, "telegram", "@KXExchange_Official").status_code == 201
    phone = add(client, admin_h, "phone", "400-000-0000")
    assert phone.json()["value"] == "+864000000000"
    assert add(client, admin_h, "domain", "kx-exchange.example").status_code == 409
    assert add(client, admin_h, "phone", "not a phone").status_code == 422
    assert add(client, admin_h, "fax", "123").status_code == 422
    listed = client.get("/api/v1/official-channels", headers=admin_h).json()["items"]
    assert {(c["kind"], c["value"]) for c in listed} >= {("domain", "kx-exchange.example")}

    # Public: no credentials needed.
    ok = client.get("/api/v1/verify", params={"q": "https://www.kx-exchange.example/login"}).json()
    assert ok["verdict"] == "official"
    assert ok["kind"] == "domain"
    assert ok["matched"] == "kx-exchange.example"
    fake = client.get("/api/v1/verify", params={"q": "t.me/KXExchange_0fficial"}).json()
    assert fake["verdict"] == "impersonation"
    assert "仿冒" in fake["reason"]
    unknown = client.get("/api/v1/verify", params={"q": "+1 (555) 010-9999"}).json()
    assert unknown["verdict"] == "unknown"
    assert client.get("/api/v1/verify", params={"q": "x" * 501}).status_code == 422
    assert client.get("/api/v1/verify").json()["verdict"] == "unknown"
    # Every lookup is counted for abuse analytics.
    verdicts = [r.verdict.value for r in db.scalars(select(VerifyLookup).order_by(VerifyLookup.id))]
    assert verdicts[:3] == ["official", "impersonation", "unknown"]

    # Removing an entry makes it unknown.
    tg = next(c for c in listed if c["kind"] == "telegram")
    assert (
        client.delete(f"/api/v1/official-channels/{tg['id']}", headers=admin_h).status_code == 204
    )
    gone = client.get("/api/v1/verify", params={"q": "@KXExchange_Official"}).json()
    assert gone["verdict"] != "official"


def test_registry_is_admin_only(client: TestClient, db: Session) -> None:
    agent = make_agent(db)
    db.commit()
    h = auth(make_token(db, agent))
    assert client.get("/api/v1/official-channels", headers=h).status_code == 403
    assert add(client, h, "domain", "evil.example").status_code == 403
    assert client.get("/api/v1/official-channels").status_code == 401


def test_verify_is_rate_limited(client: TestClient) -> None:
    codes = [client.get("/api/v1/verify", params={"q": "a.com"}).status_code for _ in range(31)]
    assert codes[:30] == [200] * 30
    assert codes[30] == 429


def test_the_verify_page_is_rate_limited_and_says_so_in_chinese(client: TestClient) -> None:
    pages = [client.get("/verify", params={"q": "a.com"}) for _ in range(31)]
    assert [p.status_code for p in pages[:30]] == [200] * 30
    limited = pages[30]
    assert limited.status_code == 429
    assert limited.headers["content-type"].startswith("text/html")
    assert int(limited.headers["retry-after"]) > 0
    assert "您的网络查询过于频繁，请稍等一分钟再试。" in limited.text
    # No verdict is shown for a lookup that was not made.
    assert "data-verdict" not in limited.text
    assert 'value="a.com"' in limited.text  # what they typed stays in the box
    # The page and the API share the counter: the API is limited as well now.
    assert client.get("/api/v1/verify", params={"q": "a.com"}).status_code == 429
    english = client.get("/verify", params={"q": "a.com"}, headers={"Accept-Language": "en"})
    assert "Too many checks from your network" in english.text


def test_a_seed_phrase_pasted_into_the_check_is_not_kept(client: TestClient, db: Session) -> None:
    """Customers paste the whole scam message into the check, seed phrase and all: the
    lookup is still counted, with the secret masked."""
    seed = Mnemonic("english").to_mnemonic(bytes(range(16)))
    pasted = f"客服说要验证钱包 t.me/KXExchange_Help 助记词 {seed}"
    assert client.get("/api/v1/verify", params={"q": pasted}).status_code == 200
    page = client.get("/verify", params={"q": f"登录密码：Hunter2024! {pasted}"})
    assert page.status_code == 200
    queries = list(db.scalars(select(VerifyLookup.query).order_by(VerifyLookup.id)))
    assert len(queries) == 2
    assert all("[已屏蔽：助记词]" in q for q in queries)
    assert "[已屏蔽：密码]" in queries[1]
    stored = all_text_in_database(db)
    assert seed not in stored
    assert "Hunter2024!" not in stored
