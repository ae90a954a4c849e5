"""``Idempotency-Key`` on POST: the stored response is written in the same transaction
as the change, so a retried request either replays it or the change never happened."""

from __future__ import annotations

import hashlib
from collections.abc import Callable

import orjson
from fastapi import Request
from pydantic import BaseModel
from sqlalchemy.orm import Session
from starlette.responses import Response

from kefu.domain.errors import Conflict, ValidationFailed
from kefu.models import IdempotencyRecord

MAX_KEY = 200


def _request_hash(request: Request, body: BaseModel | None) -> str:
    digest = hashlib.sha256(request.method.encode() + b" " + request.url.path.encode())
    if body is not None:
        digest.update(orjson.dumps(body.model_dump(mode="json"), option=orjson.OPT_SORT_KEYS))
    return digest.hexdigest()


def run_idempotent(
    request: Request,
    db: Session,
    principal_key: str,
    body: BaseModel | None,
    status_code: int,
    fn: Callable[[], BaseModel],
) -> Response:
    key = request.headers.get("idempotency-key")
    if key is None:
        return _json(fn(), status_code)
    key = key.strip()
    if not key or len(key) > MAX_KEY or not key.isprintable():
        raise ValidationFailed("invalid Idempotency-Key", field="Idempotency-Key")
    fingerprint = _request_hash(request, body)
    existing = db.get(IdempotencyRecord, (principal_key, key))
    if existing is not None:
        if existing.request_hash != fingerprint:
            raise Conflict("Idempotency-Key was used for a different request")
        return Response(
            existing.response_body,
            status_code=existing.status_code,
            media_type="application/json",
            headers={"Idempotent-Replayed": "true"},
        )
    result = fn()
    payload = orjson.dumps(result.model_dump(mode="json"))
    db.add(
        IdempotencyRecord(
            principal=principal_key,
            key=key,
            request_hash=fingerprint,
            status_code=status_code,
            response_body=payload.decode(),
        )
    )
    return Response(payload, status_code=status_code, media_type="application/json")


def _json(model: BaseModel, status_code: int) -> Response:
    return Response(
        orjson.dumps(model.model_dump(mode="json")),
        status_code=status_code,
        media_type="application/json",
    )
