"""The live-chat socket. The protocol lives in kefu/web/chat.py and docs/chat-protocol.md."""

from __future__ import annotations

import logging

from fastapi import APIRouter, WebSocket

router = APIRouter(tags=["chat"])


class _NoFrames(logging.Filter):
    """websockets logs every frame at DEBUG on uvicorn's logger ("< TEXT '{...}'"): what
    customers type, before kefu has masked a pasted seed phrase or code. Nothing
    unscreened is logged (issue 6), so frame records are dropped; the rest stay."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.msg not in ("< %s", "> %s")


logging.getLogger("uvicorn.error").addFilter(_NoFrames())


@router.websocket("/chat/ws")
async def chat_socket(ws: WebSocket) -> None:
    await ws.app.state.chat.serve(ws)
