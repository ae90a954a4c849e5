"""A live kefu server for chat tests: uvicorn on a real port in a thread, a real
database of its own (a fresh SQLite file, or a PostgreSQL database emptied per test),
memory or Redis pub/sub, and a small websocket client that keeps every frame."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import jwt
import uvicorn
import websockets
from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from kefu.infra.db import make_engine, make_sessionmaker
from kefu.infra.migrate import upgrade
from kefu.models import Base
from kefu.settings import Settings
from kefu.web.http import HttpProtocol
from tests.processes import free_port

JWT_KEY = "test-contact-jwt-key-of-32-bytes!"
PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
# Re-created by the first test that needs it: a run beside another (a helper's, a
# benchmark's) names a database of its own.
PG_CHAT = os.environ.get(
    "KEFU_TEST_PG_CHAT_URL", "postgresql://postgres@127.0.0.1:5432/kefu_chat_test"
)
PG_CHAT_NAME = PG_CHAT.rsplit("/", 1)[1]


_pg_ready = False


def database_for(backend: str, tmp_path: Path) -> str:
    """A migrated, empty database for one test."""
    global _pg_ready
    if backend == "sqlite":
        url = f"sqlite:///{tmp_path / 'chat.db'}"
        upgrade(url)
        return url
    if not _pg_ready:
        admin = make_engine(PG_ADMIN)
        with admin.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{PG_CHAT_NAME}" WITH (FORCE)'))
            conn.execute(text(f'CREATE DATABASE "{PG_CHAT_NAME}"'))
        admin.dispose()
        upgrade(PG_CHAT)
        _pg_ready = True
    engine = make_engine(PG_CHAT)
    names = ", ".join(t.name for t in Base.metadata.sorted_tables)
    with engine.begin() as conn:
        conn.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
    engine.dispose()
    return PG_CHAT


@dataclass
class LiveServer:
    url: str
    ws_url: str
    engine: Engine
    sessions: sessionmaker[Session]
    settings: Settings


def contact_token(uid: str, **claims: Any) -> str:
    """The identity token the exchange's backend would sign for customer ``uid``."""
    payload = {"sub": uid, "aud": "kefu", "exp": int(time.time()) + 600, **claims}
    return jwt.encode(payload, JWT_KEY, algorithm="HS256")


@contextlib.contextmanager
def live_server(database_url: str, data_dir: Path, redis_url: str | None) -> Iterator[LiveServer]:
    from kefu.web.app import create_app

    settings = Settings(
        data_dir=data_dir,
        database_url=database_url,
        redis_url=redis_url,
        secret_key="chat-test-secret",  # type: ignore[arg-type]
        run_workers=False,
        run_smtp=False,
        contact_jwt_key=JWT_KEY,  # type: ignore[arg-type]
        log_json=False,
    )
    app = create_app(settings)
    port = free_port()
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=port,
        http=HttpProtocol,  # as `kefu serve` runs
        log_config=None,
        access_log=False,
        ws_max_size=65536,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("test server did not start")
        time.sleep(0.02)
    engine = make_engine(database_url)
    try:
        yield LiveServer(
            url=f"http://127.0.0.1:{port}",
            ws_url=f"ws://127.0.0.1:{port}/api/v1/chat/ws",
            engine=engine,
            sessions=make_sessionmaker(engine),
            settings=settings,
        )
    finally:
        server.should_exit = True
        thread.join(20)
        engine.dispose()


class Client:
    """One chat socket. ``expect`` waits for a frame matching the given fields and
    returns it; every frame seen stays in ``frames``."""

    opened: ClassVar[list[Client]] = []

    def __init__(self, ws: websockets.ClientConnection) -> None:
        self.ws = ws
        Client.opened.append(self)
        self.frames: list[dict[str, Any]] = []
        self._cursor = 0

    @classmethod
    async def connect(cls, url: str, **hello: Any) -> Client:
        ws = await websockets.connect(url, max_size=2**20)
        client = cls(ws)
        await client.send({"type": "hello", **hello})
        return client

    async def send(self, frame: dict[str, Any]) -> None:
        await self.ws.send(json.dumps(frame, ensure_ascii=False))

    async def expect(self, wait: float = 10.0, **fields: Any) -> dict[str, Any]:
        for frame in self.frames[self._cursor :]:
            if all(frame.get(k) == v for k, v in fields.items()):
                self.frames.remove(frame)
                return frame
        deadline = asyncio.get_running_loop().time() + wait
        while True:
            remaining = deadline - asyncio.get_running_loop().time()
            if remaining <= 0:
                raise AssertionError(f"no frame like {fields}; seen {self.frames}")
            raw = await asyncio.wait_for(self.ws.recv(), remaining)
            frame = json.loads(raw)
            if all(frame.get(k) == v for k, v in fields.items()):
                return frame
            self.frames.append(frame)

    async def quiet(self, seconds: float = 0.3) -> list[dict[str, Any]]:
        """Frames that arrive within ``seconds`` (to check nothing more comes)."""
        with contextlib.suppress(TimeoutError):
            while True:
                raw = await asyncio.wait_for(self.ws.recv(), seconds)
                self.frames.append(json.loads(raw))
        return self.frames

    async def close(self) -> None:
        await self.ws.close()

    @classmethod
    async def close_all(cls) -> None:
        for client in cls.opened:
            with contextlib.suppress(Exception):
                await client.close()
        cls.opened.clear()


def run(coro: Any) -> Any:
    """Run one test scenario with a 60 s bound, closing every socket it opened."""

    async def bounded() -> Any:
        try:
            return await asyncio.wait_for(coro, 60)
        finally:
            await Client.close_all()

    return asyncio.run(bounded())
