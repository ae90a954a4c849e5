"""The chat widget embedded on the exchange's own pages (another origin than kefu's):
its screenshot uploads and downloads are allowed across origins for the configured
origins only, never with cookies, and nothing else is; the help center's search, for
the widget's suggestions, is public to every origin."""

from __future__ import annotations

import base64
from pathlib import Path

import pydantic
import pytest
from starlette.testclient import TestClient

from kefu.settings import Settings
from tests.chat_support import contact_token
from tests.factories import auth

SITE = "https://www.kx-exchange.example"
PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
)


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """The suite's settings, with the exchange's site allowed to embed the widget."""
    # Validated again: the trailing slash is normalised away.
    return Settings(**(settings.model_dump() | {"widget_origins": [SITE + "/"]}))


def preflight(client: TestClient, path: str, origin: str, method: str = "POST") -> object:
    return client.options(
        path,
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": method,
            "Access-Control-Request-Headers": "authorization, accept-language",
        },
    )


def test_the_widget_uploads_and_fetches_a_screenshot_from_the_host_page(
    client: TestClient,
) -> None:
    answer = preflight(client, "/api/v1/attachments", SITE)
    assert answer.status_code == 200  # type: ignore[attr-defined]
    headers = answer.headers  # type: ignore[attr-defined]
    assert headers["access-control-allow-origin"] == SITE
    assert "authorization" in headers["access-control-allow-headers"].lower()
    assert "access-control-allow-credentials" not in headers  # headers, never cookies

    customer = auth(contact_token("20000001")) | {"Origin": SITE}
    up = client.post(
        "/api/v1/attachments", files={"file": ("截图.png", PNG, "image/png")}, headers=customer
    )
    assert up.status_code == 201, up.text
    assert up.headers["access-control-allow-origin"] == SITE
    down = client.get(f"/api/v1/attachments/{up.json()['id']}", headers=customer)
    assert down.status_code == 200 and down.content == PNG
    assert down.headers["access-control-allow-origin"] == SITE


def test_another_origin_is_refused_as_problem_json(client: TestClient) -> None:
    answer = preflight(client, "/api/v1/attachments", "https://kx-exchange.example.evil.test")
    assert answer.status_code == 403  # type: ignore[attr-defined]
    assert answer.headers["content-type"] == "application/problem+json"  # type: ignore[attr-defined]
    assert "access-control-allow-origin" not in answer.headers  # type: ignore[attr-defined]
    # A request a page may send without asking first is answered (nothing is changed
    # by it that the credential would not allow anyway), but no browser lets the page
    # read the answer.
    customer = auth(contact_token("20000001")) | {"Origin": "null"}
    r = client.post(
        "/api/v1/attachments", files={"file": ("截图.png", PNG, "image/png")}, headers=customer
    )
    assert r.status_code == 201 and "access-control-allow-origin" not in r.headers


def test_the_help_center_search_is_public_to_every_origin(client: TestClient) -> None:
    r = client.get("/api/v1/helpcenter/search", params={"q": "提现", "suggest": 1})
    assert r.status_code == 200 and r.headers["access-control-allow-origin"] == "*"


def test_headers_beyond_the_widgets_are_refused_as_problem_json(client: TestClient) -> None:
    answer = client.options(
        "/api/v1/attachments",
        headers={
            "Origin": SITE,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "x-kefu-admin",
        },
    )
    assert answer.status_code == 400
    assert answer.headers["content-type"] == "application/problem+json"
    assert answer.json()["detail"] == "跨域请求不允许使用该方法或请求头"


def test_only_the_widgets_endpoints_are_open_to_the_host_page(client: TestClient) -> None:
    # The ticket API, the console and the attachment-sounding neighbours stay same-origin.
    for path in ("/api/v1/tickets", "/agent/login", "/api/v1/attachmentsx"):
        answer = preflight(client, path, SITE, method="GET")
        assert "access-control-allow-origin" not in answer.headers, path  # type: ignore[attr-defined]
    tickets = client.get(
        "/api/v1/tickets", headers=auth(contact_token("20000001")) | {"Origin": SITE}
    )
    assert tickets.status_code == 200
    assert "access-control-allow-origin" not in tickets.headers


@pytest.mark.parametrize(
    "origin", ["www.kx-exchange.example", "https://www.kx-exchange.example/chat", "ftp://x.example"]
)
def test_a_widget_origin_is_an_origin(origin: str, tmp_path: Path) -> None:
    with pytest.raises(pydantic.ValidationError):
        Settings(data_dir=tmp_path, widget_origins=[origin])
