"""Enqueuing outbound work as outbox rows in the caller's transaction.

Delivery (claiming, retries, backoff, dead letters) is ``kefu.workers.outbox``.
See docs/subsystems/outbox.md.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from kefu.domain.clock import utcnow
from kefu.models import Job


def do_enqueue_job(
    session: Session,
    kind: str,
    payload: dict[str, Any],
    *,
    run_at: datetime | None = None,
    max_attempts: int = 12,
) -> Job:
    job = Job(kind=kind, payload=payload, run_at=run_at or utcnow(), max_attempts=max_attempts)
    session.add(job)
    return job
