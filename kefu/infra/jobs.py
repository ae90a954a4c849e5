"""The contract between the outbox worker and job handlers (webhooks, email, …)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

# A handler gets the job id (stable across retries: a deduplication key) and payload.
Handler = Callable[[int, dict[str, Any]], Awaitable[None]]


class PermanentJobError(Exception):
    """Raised by a handler when retrying cannot help (a deleted webhook, a bad address)."""
