"""The live-chat socket. The protocol lives in kefu/web/chat.py and docs/chat-protocol.md."""

from __future__ import annotations

from fastapi import APIRouter, WebSocket

router = APIRouter(tags=["chat"])


@router.websocket("/chat/ws")
async def chat_socket(ws: WebSocket) -> None:
    await ws.app.state.chat.serve(ws)
