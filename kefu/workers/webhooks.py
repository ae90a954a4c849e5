"""Delivering ticket events to webhooks, signed with HMAC-SHA256.

Receivers get ``X-Kefu-Delivery`` (the job id, stable across retries, so they can
drop duplicates of an at-least-once delivery) and ``X-Kefu-Signature``.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
from typing import Any

import httpx
import orjson
from sqlalchemy.orm import Session, sessionmaker

from kefu.models import Webhook
from kefu.workers.outbox import Handler, PermanentJobError


def sign(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def make_webhook_handler(sessions: sessionmaker[Session], client: httpx.AsyncClient) -> Handler:
    async def deliver(job_id: int, payload: dict[str, Any]) -> None:
        def load() -> tuple[str, str] | None:
            with sessions() as session:
                hook = session.get(Webhook, payload["webhook_id"])
                return (hook.url, hook.secret) if hook is not None and hook.is_active else None

        # The database is sync; keep it off the event loop.
        found = await asyncio.to_thread(load)
        if found is None:
            raise PermanentJobError("webhook removed or inactive")
        url, secret = found
        body = orjson.dumps({"event": payload["event"], "data": payload["data"]})
        response = await client.post(
            url,
            content=body,
            headers={
                "Content-Type": "application/json",
                "User-Agent": "kefu-webhooks/1",
                "X-Kefu-Event": payload["event"],
                "X-Kefu-Delivery": str(job_id),
                "X-Kefu-Signature": sign(secret, body),
            },
            timeout=10.0,
        )
        if response.status_code in (410,):
            raise PermanentJobError("receiver answered 410 Gone")
        response.raise_for_status()

    return deliver
