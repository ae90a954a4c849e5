"""Attachments: upload, sniffed types, cleaned names, and who may download."""

from __future__ import annotations

import base64
from typing import Any

import pytest
from sqlalchemy.orm import Session
from starlette.testclient import TestClient

from kefu.actions.attachments import sanitize_filename
from tests.factories import auth, make_agent, make_contact, make_team, make_token

PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
)


@pytest.fixture
def two_teams(db: Session) -> dict[str, Any]:
    t1, t2 = make_team(db), make_team(db)
    a1, a2 = make_agent(db, teams=[t1]), make_agent(db, teams=[t2])
    db.commit()
    return {
        "t1": t1,
        "t2": t2,
        "h1": auth(make_token(db, a1)),
        "h2": auth(make_token(db, a2)),
    }


def upload(client: TestClient, h: dict[str, str], data: bytes, name: str, ctype: str) -> Any:
    return client.post("/api/v1/attachments", files={"file": (name, data, ctype)}, headers=h)


def test_upload_attach_and_download(
    client: TestClient, two_teams: dict[str, Any], db: Session
) -> None:
    h1 = two_teams["h1"]
    r = upload(client, h1, PNG, "../../截图\u202egnp.exe", "application/x-msdownload")
    assert r.status_code == 201, r.text
    att = r.json()
    assert att["content_type"] == "image/png"  # sniffed from the bytes, not the claim
    assert att["filename"] == "截图gnp.exe"
    assert "/" not in att["filename"] and "\u202e" not in att["filename"]
    t = client.post(
        "/api/v1/tickets",
        json={
            "subject": "截图",
            "body": "见附件",
            "team_id": two_teams["t1"].id,
            "attachment_ids": [att["id"]],
        },
        headers=h1,
    )
    assert t.status_code == 201, t.text
    t = t.json()
    msgs = client.get(f"/api/v1/tickets/{t['number']}/messages", headers=h1).json()["items"]
    assert [a["id"] for a in msgs[0]["attachments"]] == [att["id"]]
    dl = client.get(att["url"], headers=h1)
    assert dl.status_code == 200 and dl.content == PNG
    assert dl.headers["x-content-type-options"] == "nosniff"
    assert "sandbox" in dl.headers["content-security-policy"]
    # Another team's agent can neither download it nor re-attach it elsewhere.
    assert client.get(att["url"], headers=two_teams["h2"]).status_code == 404
    assert client.get(att["url"]).status_code == 401
    steal = client.post(
        "/api/v1/tickets",
        json={"subject": "x", "body": "y", "attachment_ids": [att["id"]]},
        headers=two_teams["h2"],
    )
    assert steal.status_code == 422
    # Re-attaching an attached file to a second message is refused too.
    again = client.post(
        f"/api/v1/tickets/{t['number']}/messages",
        json={"body": "再发", "attachment_ids": [att["id"]]},
        headers=h1,
    )
    assert again.status_code == 422


def test_unattached_upload_is_private_to_uploader(
    client: TestClient, two_teams: dict[str, Any]
) -> None:
    att = upload(client, two_teams["h1"], b"hello", "a.txt", "text/plain").json()
    assert client.get(att["url"], headers=two_teams["h1"]).status_code == 200
    assert client.get(att["url"], headers=two_teams["h2"]).status_code == 404


def test_attachment_on_internal_note_is_hidden_from_contact(
    client: TestClient, two_teams: dict[str, Any], db: Session
) -> None:
    import time

    import jwt

    token = jwt.encode(
        {"sub": "77770001", "aud": "kefu", "exp": int(time.time()) + 600},
        "test-contact-jwt-key-of-32-bytes!",
        algorithm="HS256",
    )
    hc = auth(token)
    t = client.post("/api/v1/tickets", json={"subject": "问题", "body": "请看"}, headers=hc).json()
    h1 = two_teams["h1"]
    note_file = upload(client, h1, PNG, "internal.png", "image/png").json()
    public_file = upload(client, h1, b"public", "reply.txt", "text/plain").json()
    url = f"/api/v1/tickets/{t['number']}/messages"
    client.post(
        url,
        json={"body": "内部", "is_internal": True, "attachment_ids": [note_file["id"]]},
        headers=h1,
    )
    client.post(url, json={"body": "回复", "attachment_ids": [public_file["id"]]}, headers=h1)
    assert client.get(public_file["url"], headers=hc).status_code == 200
    assert client.get(note_file["url"], headers=hc).status_code == 404
    make_contact(db)


@pytest.mark.parametrize(
    ("data", "name", "ctype"),
    [
        (b"<script>alert(1)</script>", "x.html", "text/html"),
        (b"MZ\x90\x00" + b"\x00" * 100, "a.exe", "application/octet-stream"),
        (b"", "empty.txt", "text/plain"),
        (b"\xff\xfe\x00\x00garbage", "bin.txt", "text/plain"),
    ],
)
def test_disallowed_files_are_refused(
    client: TestClient, two_teams: dict[str, Any], data: bytes, name: str, ctype: str
) -> None:
    r = upload(client, two_teams["h1"], data, name, ctype)
    assert r.status_code == 422
    assert r.headers["content-type"].startswith("application/problem+json")


def test_oversized_upload_is_413(
    client: TestClient, two_teams: dict[str, Any], settings: Any
) -> None:
    big = PNG + b"\x00" * (settings.max_upload_bytes + 1)
    r = upload(client, two_teams["h1"], big, "big.png", "image/png")
    assert r.status_code == 413


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("report.pdf", "report.pdf"),
        ("C:\\Users\\me\\交易记录.png", "交易记录.png"),
        ("....", "attachment"),
        ("\x00\x01evil\x7f.txt", "evil.txt"),
        ("ｆｕｌｌ．ｐｄｆ", "full.pdf"),
        ("a" * 300 + ".png", "a" * 146 + ".png"),
        ("\u200b\u2066doc\u2069.pdf", "doc.pdf"),
    ],
)
def test_sanitize_filename(raw: str, expected: str) -> None:
    assert sanitize_filename(raw) == expected


def test_a_zip_with_overlapping_entries_is_refused(
    client: TestClient, two_teams: dict[str, Any]
) -> None:
    """CVE-2024-0450: this Python's zipfile reads overlapping entries without complaint,
    so kefu checks the central directory itself before keeping an archive."""
    from tests.test_email_attachments import duplicate_zip, overlapping_zip, plain_zip

    for data, reason in (
        (overlapping_zip(), "overlapping_entries"),
        (duplicate_zip(), "duplicate_entry"),
    ):
        r = upload(client, two_teams["h1"], data, "记录.zip", "application/zip")
        assert r.status_code == 422, r.text
        assert r.headers["content-type"].startswith("application/problem+json")
        assert r.json()["reason"] == reason
        assert "压缩包" in r.json()["detail"]
    fine = upload(
        client, two_teams["h1"], plain_zip(**{"截图.png": PNG}), "截图.zip", "application/zip"
    )
    assert fine.status_code == 201, fine.text
    assert fine.json()["content_type"] == "application/zip"


def test_an_uploaded_eml_is_screened_part_by_part(
    client: TestClient, two_teams: dict[str, Any], settings: Any
) -> None:
    from email import message_from_bytes

    from tests.test_email_attachments import SEED, phishing_mail

    raw = phishing_mail().as_bytes()
    r = upload(client, two_teams["h1"], raw, "可疑.eml", "message/rfc822")
    assert r.status_code == 201, r.text
    kept = client.get(r.json()["url"], headers=two_teams["h1"]).content
    texts = [
        part.get_payload(decode=True).decode()
        for part in message_from_bytes(kept).walk()
        if part.get_content_maintype() == "text"
    ]
    assert any("[已屏蔽：助记词]" in t for t in texts)
    assert all(SEED not in t for t in texts)
    for path in settings.files_dir.rglob("*"):
        if path.is_file():
            for part in message_from_bytes(path.read_bytes()).walk():
                payload = part.get_payload(decode=True)
                assert not isinstance(payload, bytes) or SEED.encode() not in payload
