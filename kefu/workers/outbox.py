"""The outbox worker: claims due jobs, runs their handler, retries with backoff.

Delivery is at-least-once. A job is claimed under a lease (``locked_until``) and its
attempt is counted at claim time, so a process killed mid-job leaves a running job
whose lease expires and is claimed again, and a job that kills its worker every time
still reaches the dead-letter state. On PostgreSQL, ``FOR UPDATE SKIP LOCKED`` lets
many ``kefu worker`` processes claim without blocking each other; on SQLite the write
lock taken by ``BEGIN IMMEDIATE`` serialises claims. See docs/subsystems/outbox.md.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import socket
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session, sessionmaker

from kefu.domain.clock import utcnow
from kefu.infra.jobs import Handler, PermanentJobError
from kefu.models import Job
from kefu.models.outbox import JobStatus

log = logging.getLogger(__name__)


LEASE_SECONDS = 60
MAX_BACKOFF_SECONDS = 3600


def backoff_seconds(attempts: int) -> float:
    """Exponential backoff with full jitter: 2, 4, 8 … seconds, capped at an hour."""
    ceiling = float(min(MAX_BACKOFF_SECONDS, 2 ** max(attempts, 1)))
    return ceiling / 2 + random.uniform(0, ceiling / 2)  # noqa: S311  # jitter, not crypto


def worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


@dataclass(frozen=True, slots=True)
class ClaimedJob:
    id: int
    kind: str
    payload: dict[str, Any]
    attempts: int
    max_attempts: int


def claim_jobs(
    session: Session, *, owner: str, limit: int = 20, lease_seconds: int = LEASE_SECONDS
) -> list[ClaimedJob]:
    """Claim up to ``limit`` due jobs in the caller's transaction."""
    now = utcnow()
    due = or_(
        (Job.status == JobStatus.PENDING) & (Job.run_at <= now),
        (Job.status == JobStatus.RUNNING) & (Job.locked_until < now),
    )
    stmt = select(Job).where(due).order_by(Job.run_at, Job.id).limit(limit)
    if session.bind is not None and session.bind.dialect.name == "postgresql":
        stmt = stmt.with_for_update(skip_locked=True)
    jobs = list(session.scalars(stmt).all())
    claimed = []
    for job in jobs:
        if job.status is JobStatus.RUNNING and job.attempts >= job.max_attempts:
            # Its last attempt's lease ran out: the worker died running it, every time
            # (a job that crashes its process). Dead-lettered, not claimed forever.
            job.status = JobStatus.DEAD
            job.locked_until = None
            job.last_error = f"the worker running it stopped before finishing, {job.attempts} times"
            continue
        job.status = JobStatus.RUNNING
        job.locked_until = now + timedelta(seconds=lease_seconds)
        job.locked_by = owner
        job.attempts += 1
        claimed.append(
            ClaimedJob(job.id, job.kind, dict(job.payload), job.attempts, job.max_attempts)
        )
    session.flush()
    return claimed


def finish_job(
    session: Session, job: ClaimedJob, *, owner: str, error: str | None, permanent: bool = False
) -> None:
    """Record a job's outcome, unless its lease was lost to another worker meanwhile."""
    now = utcnow()
    values: dict[str, Any]
    if error is None:
        values = {
            "status": JobStatus.DONE,
            "done_at": now,
            "locked_until": None,
            "last_error": None,
        }
    elif permanent or job.attempts >= job.max_attempts:
        values = {"status": JobStatus.DEAD, "locked_until": None, "last_error": error[:4000]}
    else:
        values = {
            "status": JobStatus.PENDING,
            "locked_until": None,
            "last_error": error[:4000],
            "run_at": now + timedelta(seconds=backoff_seconds(job.attempts)),
        }
    session.execute(
        update(Job)
        .where(Job.id == job.id, Job.locked_by == owner, Job.status == JobStatus.RUNNING)
        .values(**values)
        .execution_options(synchronize_session=False)
    )


class OutboxWorker:
    def __init__(
        self,
        sessions: sessionmaker[Session],
        handlers: Mapping[str, Handler],
        *,
        poll_seconds: float = 0.5,
        batch: int = 20,
        concurrency: int = 8,
        lease_seconds: int = LEASE_SECONDS,
    ) -> None:
        self.sessions = sessions
        self.handlers = handlers
        self.poll_seconds = poll_seconds
        self.batch = batch
        self.lease_seconds = lease_seconds
        self.owner = worker_id()
        self._sem = asyncio.Semaphore(concurrency)
        self._stop = asyncio.Event()
        self._wake = asyncio.Event()
        self._inflight: set[asyncio.Task[None]] = set()

    def wake(self) -> None:
        """Called after a commit that wrote jobs, so they go out without waiting a poll."""
        self._wake.set()

    def _claim(self) -> list[ClaimedJob]:
        with self.sessions.begin() as session:
            return claim_jobs(
                session, owner=self.owner, limit=self.batch, lease_seconds=self.lease_seconds
            )

    def _finish(self, outcomes: list[tuple[ClaimedJob, str | None, bool]]) -> None:
        # One transaction for the whole batch: one write-lock acquisition on SQLite.
        with self.sessions.begin() as session:
            for job, error, permanent in outcomes:
                finish_job(session, job, owner=self.owner, error=error, permanent=permanent)

    async def run_once(self) -> int:
        """Claim and run one batch; returns how many jobs were run."""
        jobs = await asyncio.to_thread(self._claim)
        if not jobs:
            return 0
        outcomes = await asyncio.gather(*(self._run_job(job) for job in jobs))
        await asyncio.to_thread(self._finish, list(outcomes))
        return len(jobs)

    async def _run_job(self, job: ClaimedJob) -> tuple[ClaimedJob, str | None, bool]:
        async with self._sem:
            handler = self.handlers.get(job.kind)
            error: str | None = None
            permanent = False
            if handler is None:
                error, permanent = f"no handler for job kind {job.kind!r}", True
            else:
                try:
                    await handler(job.id, job.payload)
                except PermanentJobError as exc:
                    error, permanent = f"permanent: {exc}", True
                except Exception as exc:  # any failure is retried; the job must not be lost
                    error = f"{type(exc).__name__}: {exc}"
            if error is not None:
                log.warning(
                    "job failed", extra={"job_id": job.id, "kind": job.kind, "error": error}
                )
            return job, error, permanent

    async def run_forever(self) -> None:
        while not self._stop.is_set():
            try:
                ran = await self.run_once()
            except Exception:  # the database may be briefly unavailable; keep polling
                log.exception("outbox poll failed")
                ran = 0
            if ran:
                continue
            self._wake.clear()
            waiters = [
                asyncio.ensure_future(self._wake.wait()),
                asyncio.ensure_future(self._stop.wait()),
            ]
            _, pending = await asyncio.wait(
                waiters, timeout=self.poll_seconds, return_when=asyncio.FIRST_COMPLETED
            )
            for task in pending:
                task.cancel()

    def stop(self) -> None:
        self._stop.set()


__all__ = ["Handler", "OutboxWorker", "PermanentJobError", "claim_jobs", "finish_job"]
