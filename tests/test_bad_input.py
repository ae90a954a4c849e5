"""Malformed, oversized and hostile input gets a 4xx problem+json, never a 500."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy.orm import Session
from starlette.testclient import TestClient

from tests.factories import auth, make_agent, make_token


@pytest.fixture
def h(db: Session) -> dict[str, str]:
    agent = make_agent(db)
    db.commit()
    return auth(make_token(db, agent))


def is_problem(r: Any, status: int) -> None:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    body = r.json()
    assert body["status"] == status and body["type"].startswith("https://") and body["detail"]


def test_bad_json(client: TestClient, h: dict[str, str]) -> None:
    r = client.post(
        "/api/v1/tickets", content=b"{not json", headers={**h, "Content-Type": "application/json"}
    )
    is_problem(r, 422)


def test_unknown_enum_value(client: TestClient, h: dict[str, str]) -> None:
    is_problem(
        client.post("/api/v1/tickets", json={"subject": "x", "kind": "bogus"}, headers=h), 422
    )


def test_unknown_field_is_refused(client: TestClient, h: dict[str, str]) -> None:
    is_problem(
        client.post("/api/v1/tickets", json={"subject": "x", "is_admin": True}, headers=h), 422
    )


def test_hundred_thousand_character_strings(client: TestClient, h: dict[str, str]) -> None:
    is_problem(client.post("/api/v1/tickets", json={"subject": "长" * 100_000}, headers=h), 422)
    is_problem(client.get("/api/v1/tickets?tag=" + "x" * 10_000, headers=h), 422)
    is_problem(client.get("/api/v1/tickets?tag=a%00b", headers=h), 400)


def test_null_bytes(client: TestClient, h: dict[str, str]) -> None:
    r = client.post("/api/v1/tickets", json={"subject": "a\x00b", "body": "c\x00d"}, headers=h)
    assert r.status_code in (201, 422), r.text
    if r.status_code == 201:
        msgs = client.get(f"/api/v1/tickets/{r.json()['number']}/messages", headers=h).json()
        assert "\x00" not in msgs["items"][0]["body"]


def test_oversized_body_is_413_before_parsing(client: TestClient, h: dict[str, str]) -> None:
    payload = b'{"subject": "' + b"x" * 2_000_000 + b'"}'
    r = client.post(
        "/api/v1/tickets", content=payload, headers={**h, "Content-Type": "application/json"}
    )
    is_problem(r, 413)


def test_lying_content_length(client: TestClient, h: dict[str, str]) -> None:
    r = client.post(
        "/api/v1/tickets",
        content=b'{"subject": "x"}',
        headers={**h, "Content-Type": "application/json", "Content-Length": "abc"},
    )
    assert 400 <= r.status_code < 500


def test_unknown_ticket_and_route(client: TestClient, h: dict[str, str]) -> None:
    is_problem(client.get("/api/v1/tickets/K00000000", headers=h), 404)
    is_problem(client.get("/api/v1/tickets/%27OR1=1--", headers=h), 404)
    is_problem(client.get("/api/v1/tickets/%00%27OR1=1", headers=h), 400)
    is_problem(client.get("/api/v1/nope", headers=h), 404)
    is_problem(client.delete("/api/v1/tickets", headers=h), 405)


def test_huge_integers_and_wrong_types(client: TestClient, h: dict[str, str]) -> None:
    is_problem(
        client.post("/api/v1/tickets", json={"subject": "x", "team_id": 10**30}, headers=h), 422
    )
    is_problem(client.post("/api/v1/tickets", json={"subject": ["x"]}, headers=h), 422)
    is_problem(client.post("/api/v1/tickets", json=[1, 2, 3], headers=h), 422)
    is_problem(client.get("/api/v1/tickets?limit=100000", headers=h), 422)
    is_problem(client.get("/api/v1/tickets?limit=abc", headers=h), 422)


def test_error_language_follows_accept_language(client: TestClient) -> None:
    zh = client.get("/api/v1/tickets", headers={"Accept-Language": "zh-CN,zh;q=0.9"})
    en = client.get("/api/v1/tickets", headers={"Accept-Language": "en-US,en;q=0.8"})
    assert zh.json()["detail"] == "请先登录"
    assert en.json()["detail"] == "authentication required"
    assert zh.headers["content-language"] == "zh-CN" and en.headers["content-language"] == "en"
    default = client.get("/api/v1/tickets")
    assert default.json()["detail"] == "请先登录"


def test_health_and_metrics(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    client.get("/api/v1/tickets")
    metrics = client.get("/metrics").text
    assert "kefu_http_requests_total" in metrics
    assert 'route="/api/v1/tickets"' in metrics
