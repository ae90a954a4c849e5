"""Screenshots in a live chat, over real websockets and HTTP against a live server: a
visitor uploads with the visitor token the socket gave them, sends the id in a ``msg``,
the agent sees the file described in the message frame, both download what is on the
chat, and refused files (too large, wrong type, someone else's) are answered clearly
and leave nothing stored."""

from __future__ import annotations

import io
import struct
import zipfile
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from kefu.models import Attachment, Message
from tests.chat_support import (
    Client,
    LiveServer,
    contact_token,
    database_for,
    live_server,
    run,
)
from tests.conftest import DB_BACKENDS
from tests.factories import make_agent, make_team, make_token

MAX_UPLOAD = 200_000


def png(width: int = 2, height: int = 2, shade: int = 0) -> bytes:
    """A real PNG (the type is sniffed from the bytes)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    raw = b"".join(b"\x00" + bytes([shade, 80, 160]) * width for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(raw))
        + chunk(b"IEND", b"")
    )


def a_zip() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as archive:
        archive.writestr("notes.txt", "订单截图在这里")
    return buf.getvalue()


@pytest.fixture(params=DB_BACKENDS)
def server(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[LiveServer]:
    # A small upload limit, so "too large" costs a test nothing.
    monkeypatch.setenv("KEFU_MAX_UPLOAD_BYTES", str(MAX_UPLOAD))
    url = database_for(request.param, tmp_path)
    with live_server(url, tmp_path, None) as live:
        yield live


def seed(live: LiveServer) -> dict[str, Any]:
    with live.sessions.begin() as db:
        team = make_team(db, "general")
        agent = make_agent(db, teams=[team])
        return {"agent_token": make_token(db, agent), "agent_id": agent.id}


def stored_files(live: LiveServer) -> list[Path]:
    root = live.settings.files_dir
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


def attachment_count(live: LiveServer) -> int:
    with live.sessions() as db:
        return int(db.scalar(select(func.count()).select_from(Attachment)) or 0)


async def upload(
    http: httpx.AsyncClient,
    data: bytes,
    *,
    name: str = "screenshot.png",
    content_type: str = "image/png",
    headers: dict[str, Any],
) -> httpx.Response:
    return await http.post(
        "/api/v1/attachments", files={"file": (name, data, content_type)}, headers=headers
    )


async def open_chat(live: LiveServer, agent_token: str) -> tuple[Client, str, str, Client]:
    """A visitor in a live chat with an agent: (visitor, visitor token, ticket, agent)."""
    visitor = await Client.connect(live.ws_url)
    await visitor.expect(type="welcome")
    await visitor.send(
        {"type": "start", "topic": "other", "text": "转人工，提币没到账", "id": "s1"}
    )
    token = (await visitor.expect(type="visitor"))["visitor"]
    number = (await visitor.expect(type="started"))["ticket"]
    agent = await Client.connect(live.ws_url, token=agent_token)
    welcome = await agent.expect(type="welcome")
    assert "image/png" in welcome["limits"]["attachment_types"]
    assert welcome["limits"]["max_upload_bytes"] == MAX_UPLOAD
    await agent.send({"type": "presence", "status": "online", "id": "p"})
    await visitor.expect(type="state", chat_state="active")
    await agent.send({"type": "watch", "ticket": number})
    await agent.expect(type="message", seq=1)
    return visitor, token, number, agent


def test_a_visitor_sends_a_screenshot_and_both_sides_see_and_fetch_it(
    server: LiveServer,
) -> None:
    ids = seed(server)
    shot = png(shade=10)
    agent_auth = {"Authorization": f"Bearer {ids['agent_token']}"}

    async def scenario() -> dict[str, Any]:
        visitor, token, number, agent = await open_chat(server, ids["agent_token"])
        mine = {"X-Kefu-Visitor": token}
        async with httpx.AsyncClient(base_url=server.url) as http:
            r = await upload(http, shot, name="转账截图.png", headers=mine)
            assert r.status_code == 201, r.text
            uploaded = r.json()
            assert uploaded["content_type"] == "image/png" and uploaded["size"] == len(shot)

            # Only the id goes in the frame; words are optional with a file.
            await visitor.send(
                {"type": "msg", "ticket": number, "id": "f1", "attachments": [uploaded["id"]]}
            )
            seq = (await visitor.expect(type="ack", id="f1"))["seq"]
            heard = await agent.expect(type="message", seq=seq)
            assert heard["attachments"] == [uploaded["id"]]
            (described,) = heard["files"]
            assert described == {
                "id": uploaded["id"],
                "filename": "转账截图.png",
                "content_type": "image/png",
                "size": len(shot),
                "url": f"/api/v1/attachments/{uploaded['id']}",
            }
            echo = await visitor.expect(type="message", seq=seq)
            assert echo["files"] == heard["files"]

            # The agent downloads the customer's screenshot, the customer their own.
            got = await http.get(described["url"], headers=agent_auth)
            assert got.status_code == 200 and got.content == shot
            assert got.headers["content-type"] == "image/png"
            got = await http.get(described["url"], headers=mine)
            assert got.status_code == 200 and got.content == shot

            # The agent answers with an image of their own; the visitor may fetch it.
            reply_png = png(shade=200)
            r = await upload(http, reply_png, name="步骤.png", headers=agent_auth)
            assert r.status_code == 201, r.text
            reply_id = r.json()["id"]
            await agent.send(
                {
                    "type": "msg",
                    "ticket": number,
                    "id": "a1",
                    "text": "请按图中步骤操作",
                    "attachments": [reply_id],
                }
            )
            reply_seq = (await agent.expect(type="ack", id="a1"))["seq"]
            shown = await visitor.expect(type="message", seq=reply_seq)
            assert shown["body"] == "请按图中步骤操作"
            assert [f["id"] for f in shown["files"]] == [reply_id]
            got = await http.get(shown["files"][0]["url"], headers=mine)
            assert got.status_code == 200 and got.content == reply_png

            # A file on an internal note stays with the agents.
            r = await upload(http, png(shade=99), name="内部.png", headers=agent_auth)
            note_file = r.json()["id"]
            await agent.send(
                {
                    "type": "msg",
                    "ticket": number,
                    "id": "n1",
                    "text": "内部：核对截图",
                    "internal": True,
                    "attachments": [note_file],
                }
            )
            await agent.expect(type="ack", id="n1")
            denied = await http.get(f"/api/v1/attachments/{note_file}", headers=mine)
            assert denied.status_code == 404
            assert denied.headers["content-type"].startswith("application/problem+json")

            # Another customer sees none of it, and cannot attach it either.
            other = await Client.connect(server.ws_url, token=contact_token("30000001"))
            await other.expect(type="welcome")
            await other.send({"type": "start", "topic": "other", "text": "你好", "id": "o1"})
            other_number = (await other.expect(type="started"))["ticket"]
            stranger = {"Authorization": f"Bearer {contact_token('30000001')}"}
            for fid in (uploaded["id"], reply_id):
                r = await http.get(f"/api/v1/attachments/{fid}", headers=stranger)
                assert r.status_code == 404
            await other.send(
                {
                    "type": "msg",
                    "ticket": other_number,
                    "id": "o2",
                    "text": "看这个",
                    "attachments": [uploaded["id"]],
                }
            )
            error = await other.expect(type="error", ref="o2")
            assert error["code"] == "validation-failed"
            assert error["message"] == "附件不存在"

        # A reconnect replays the files described too.
        again = await Client.connect(server.ws_url, visitor=token, resume={number: seq - 1})
        replayed = await again.expect(type="message", seq=seq)
        assert replayed["files"] == heard["files"]
        return {"number": number, "seq": seq, "file": uploaded["id"], "note_file": note_file}

    out = run(scenario())
    with server.sessions() as db:
        message = db.scalar(
            select(Message).where(Message.seq == out["seq"], Message.client_msg_id == "f1")
        )
        assert message is not None and message.body == ""
        assert [a.id for a in message.attachments] == [out["file"]]
        note = db.get(Attachment, out["note_file"])
        assert note is not None and note.message_id is not None


def test_refused_files_are_explained_and_leave_nothing_stored(server: LiveServer) -> None:
    ids = seed(server)
    agent_auth = {"Authorization": f"Bearer {ids['agent_token']}"}

    async def scenario() -> None:
        visitor, token, number, agent_side = await open_chat(server, ids["agent_token"])
        mine = {"X-Kefu-Visitor": token}
        before_rows, before_files = attachment_count(server), stored_files(server)
        async with httpx.AsyncClient(base_url=server.url) as http:
            # Too large: 413, in the caller's language.
            big = png() + b"\x00" * MAX_UPLOAD
            r = await upload(http, big, headers=mine | {"Accept-Language": "zh-CN"})
            assert r.status_code == 413
            assert r.headers["content-type"].startswith("application/problem+json")
            assert r.json()["detail"] == "文件过大"
            r = await upload(http, big, headers=mine | {"Accept-Language": "en"})
            assert r.status_code == 413 and r.json()["detail"] == "file too large"

            # A visitor's file is a screenshot or a PDF: a zip is refused by its bytes,
            # whatever the name and the declared type say.
            r = await upload(
                http, a_zip(), name="shot.png", headers=mine | {"Accept-Language": "zh-CN"}
            )
            assert r.status_code == 422
            assert r.json()["detail"] == "不支持该文件类型"
            assert r.json()["content_type"] == "application/zip"

            # A forged or broken visitor token is not a credential.
            forged = token[:-1] + ("0" if token[-1] != "0" else "1")
            # "²³" are Latin-1 header bytes, and str.isdigit() says yes to them.
            for bad in (forged.encode(), "v1.²³.abc".encode("latin-1"), b"x"):
                r = await upload(http, png(), headers={"X-Kefu-Visitor": bad})
                assert r.status_code == 401, bad
                assert r.headers["content-type"].startswith("application/problem+json")
            assert attachment_count(server) == before_rows
            assert stored_files(server) == before_files

            # A PDF (a bank statement) is taken, and reaches the agent described.
            pdf = b"%PDF-1.4\n1 0 obj <<>> endobj\ntrailer <<>>\n%%EOF\n"
            r = await upload(
                http, pdf, name="流水.pdf", content_type="application/pdf", headers=mine
            )
            assert r.status_code == 201, r.text
            await visitor.send(
                {"type": "msg", "ticket": number, "id": "pdf", "attachments": [r.json()["id"]]}
            )
            seq = (await visitor.expect(type="ack", id="pdf"))["seq"]
            (described,) = (await agent_side.expect(type="message", seq=seq))["files"]
            assert (described["filename"], described["content_type"]) == (
                "流水.pdf",
                "application/pdf",
            )

            # The API keeps a zip for an agent, but a chat takes no zip: the msg is
            # refused and nothing is stored on the ticket.
            r = await upload(
                http, a_zip(), name="logs.zip", content_type="application/zip", headers=agent_auth
            )
            assert r.status_code == 201, r.text
            zip_id = r.json()["id"]
            await agent_side.send(
                {"type": "msg", "ticket": number, "id": "z1", "attachments": [zip_id]}
            )
            error = await agent_side.expect(type="error", ref="z1")
            assert error["code"] == "validation-failed"
            assert error["message"] == "该类型的文件不能在会话中发送（仅支持图片和 PDF）"
            assert error["details"]["content_type"] == "application/zip"

        # Bad frames: not a list, too many, not ids; and no text without a file.
        await visitor.send({"type": "msg", "ticket": number, "id": "b1", "attachments": "1"})
        assert (await visitor.expect(type="error", ref="b1"))["code"] == "invalid_frame"
        await visitor.send(
            {"type": "msg", "ticket": number, "id": "b2", "attachments": [1, 2, 3, 4, 5, 6]}
        )
        assert (await visitor.expect(type="error", ref="b2"))["code"] == "invalid_frame"
        await visitor.send({"type": "msg", "ticket": number, "id": "b3", "attachments": [True]})
        assert (await visitor.expect(type="error", ref="b3"))["code"] == "invalid_frame"
        await visitor.send({"type": "msg", "ticket": number, "id": "b4", "attachments": []})
        assert (await visitor.expect(type="error", ref="b4"))["code"] == "invalid_frame"
        # The socket is still fine.
        await visitor.send({"type": "msg", "ticket": number, "id": "ok", "text": "还在吗"})
        await visitor.expect(type="ack", id="ok")

    run(scenario())
    with server.sessions() as db:
        ids_seen = set(db.scalars(select(Message.client_msg_id)))
        assert {"z1", "b1", "b2", "b3", "b4"}.isdisjoint(ids_seen)
        assert "ok" in ids_seen


def test_a_visitor_token_with_unicode_digits_is_refused_at_hello(server: LiveServer) -> None:
    # "²".isdigit() is True but int("²") raises: hello must answer, not crash.
    async def scenario() -> None:
        bad = await Client.connect(server.ws_url, visitor="v1.²³.0123456789abcdef")
        error = await bad.expect(type="error")
        assert error["code"] == "not_authenticated"

    run(scenario())
