"""Errors the core raises; ``kefu.web.errors`` maps each to problem+json.

Each error carries a stable ``code`` (the problem ``type`` suffix) and a message key
translated at the edge, so the core never formats user-facing text.
"""

from __future__ import annotations

from typing import Any


class KefuError(Exception):
    status = 400
    code = "bad-request"

    def __init__(self, message: str, **params: Any) -> None:
        super().__init__(message)
        self.message = message
        self.params = params


class NotFound(KefuError):
    status = 404
    code = "not-found"


class PermissionDenied(KefuError):
    status = 403
    code = "permission-denied"


class NotAuthenticated(KefuError):
    status = 401
    code = "not-authenticated"


class InvalidTransition(KefuError):
    status = 409
    code = "invalid-transition"


class Conflict(KefuError):
    status = 409
    code = "conflict"


class ValidationFailed(KefuError):
    status = 422
    code = "validation-failed"


class RateLimited(KefuError):
    status = 429
    code = "rate-limited"

    def __init__(self, message: str, retry_after_seconds: int, **params: Any) -> None:
        super().__init__(message, **params)
        self.retry_after_seconds = retry_after_seconds


class PayloadTooLarge(KefuError):
    status = 413
    code = "payload-too-large"
