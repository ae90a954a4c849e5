"""The outbox: jobs written with the change, delivered at least once, retried with
backoff, dead-lettered, and re-claimed after a worker dies mid-job."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import threading
from collections.abc import Iterator
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from kefu.actions.outbox import do_enqueue_job
from kefu.actions.webhooks import do_create_webhook
from kefu.domain.access import SYSTEM, Actor, ActorKind, Role
from kefu.domain.clock import utcnow
from kefu.models import Job
from kefu.models.outbox import JobStatus
from kefu.workers.outbox import (
    OutboxWorker,
    PermanentJobError,
    backoff_seconds,
    claim_jobs,
    finish_job,
)
from kefu.workers.webhooks import make_webhook_handler
from tests.factories import make_ticket

ADMIN = Actor(kind=ActorKind.AGENT, id=None, role=Role.ADMIN)


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def test_backoff_grows_and_is_capped() -> None:
    for attempts in range(1, 20):
        value = backoff_seconds(attempts)
        ceiling = min(3600, 2**attempts)
        assert ceiling / 2 <= value <= ceiling


def test_success_marks_done(sessions: sessionmaker[Session], db: Session) -> None:
    do_enqueue_job(db, "echo", {"n": 1})
    db.commit()
    seen: list[dict[str, Any]] = []

    async def echo(job_id: int, payload: dict[str, Any]) -> None:
        seen.append(payload)

    worker = OutboxWorker(sessions, {"echo": echo})
    assert run(worker.run_once()) == 1
    assert seen == [{"n": 1}]
    job = db.scalars(select(Job)).one()
    db.refresh(job)
    assert job.status is JobStatus.DONE and job.done_at is not None and job.attempts == 1
    assert run(worker.run_once()) == 0


def test_failure_retries_with_backoff_then_dead_letters(
    sessions: sessionmaker[Session], db: Session
) -> None:
    do_enqueue_job(db, "flaky", {}, max_attempts=3)
    db.commit()

    async def flaky(job_id: int, payload: dict[str, Any]) -> None:
        raise ConnectionError("receiver down")

    worker = OutboxWorker(sessions, {"flaky": flaky})
    job = db.scalars(select(Job)).one()
    for attempt in (1, 2):
        assert run(worker.run_once()) == 1
        db.refresh(job)
        assert job.status is JobStatus.PENDING and job.attempts == attempt
        assert "receiver down" in (job.last_error or "")
        assert job.run_at > utcnow()  # backed off: not due yet
        assert run(worker.run_once()) == 0
        job.run_at = utcnow() - timedelta(seconds=1)  # time passes
        db.commit()
    assert run(worker.run_once()) == 1
    db.refresh(job)
    assert job.status is JobStatus.DEAD and job.attempts == 3


def test_permanent_error_and_unknown_kind_dead_letter_at_once(
    sessions: sessionmaker[Session], db: Session
) -> None:
    do_enqueue_job(db, "gone", {})
    do_enqueue_job(db, "no-such-kind", {})
    db.commit()

    async def gone(job_id: int, payload: dict[str, Any]) -> None:
        raise PermanentJobError("receiver deleted")

    run(OutboxWorker(sessions, {"gone": gone}).run_once())
    jobs = db.scalars(select(Job).order_by(Job.id)).all()
    for job in jobs:
        db.refresh(job)
    assert [j.status for j in jobs] == [JobStatus.DEAD, JobStatus.DEAD]


def test_job_of_a_dead_worker_is_reclaimed_after_its_lease(db: Session) -> None:
    do_enqueue_job(db, "x", {})
    db.flush()
    first = claim_jobs(db, owner="dead-worker", lease_seconds=60)
    assert len(first) == 1
    # The worker dies here: nothing finishes the job. Another worker finds nothing …
    assert claim_jobs(db, owner="w2") == []
    # … until the lease runs out.
    job = db.get(Job, first[0].id)
    assert job is not None
    job.locked_until = utcnow() - timedelta(seconds=1)
    db.flush()
    again = claim_jobs(db, owner="w2")
    assert [j.id for j in again] == [first[0].id]
    assert again[0].attempts == 2
    # The dead worker waking up late cannot overwrite the new owner's outcome.
    finish_job(db, first[0], owner="dead-worker", error=None)
    db.refresh(job)
    assert job.status is JobStatus.RUNNING and job.locked_by == "w2"
    finish_job(db, again[0], owner="w2", error=None)
    db.refresh(job)
    assert job.status is JobStatus.DONE


def test_a_job_that_kills_its_worker_every_time_is_dead_lettered(db: Session) -> None:
    do_enqueue_job(db, "crashes", {}, max_attempts=2)
    db.flush()
    for attempt in (1, 2):
        claimed = claim_jobs(db, owner=f"worker-{attempt}")
        assert [c.attempts for c in claimed] == [attempt]
        # The process dies mid-job; the lease runs out.
        job = db.get(Job, claimed[0].id)
        assert job is not None
        job.locked_until = utcnow() - timedelta(seconds=1)
        db.flush()
    # The last attempt died too: no third run, the job is dead and says why.
    assert claim_jobs(db, owner="worker-3") == []
    db.refresh(job)
    assert job.status is JobStatus.DEAD
    assert job.locked_until is None
    assert "stopped before finishing, 2 times" in (job.last_error or "")


def test_jobs_roll_back_with_the_change(sessions: sessionmaker[Session]) -> None:
    with sessions() as s:
        do_enqueue_job(s, "x", {})
        s.rollback()
    with sessions() as s:
        assert s.scalars(select(Job)).all() == []


class Receiver(BaseHTTPRequestHandler):
    received: ClassVar[list[tuple[dict[str, str], bytes]]] = []
    fail_first = 0

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        type(self).received.append((dict(self.headers.items()), body))
        if type(self).fail_first > 0:
            type(self).fail_first -= 1
            self.send_response(503)
        else:
            self.send_response(204)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def receiver() -> Iterator[str]:
    Receiver.received = []
    Receiver.fail_first = 1
    server = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hook"
    server.shutdown()
    server.server_close()


def test_webhooks_are_signed_retried_and_deduplicable(
    sessions: sessionmaker[Session], db: Session, receiver: str
) -> None:
    hook = do_create_webhook(db, ADMIN, url=receiver, events=["ticket.created"])
    ticket = make_ticket(db)
    db.commit()
    jobs = db.scalars(select(Job)).all()
    assert len(jobs) == 1  # only the subscribed event, not message.created

    async def go() -> None:
        async with httpx.AsyncClient() as http:
            worker = OutboxWorker(
                sessions, {"webhook.deliver": make_webhook_handler(sessions, http)}
            )
            await worker.run_once()  # the receiver answers 503
            job = jobs[0]
            with sessions() as s:
                row = s.get(Job, job.id)
                assert row is not None and row.status is JobStatus.PENDING
                row.run_at = utcnow()
                s.commit()
            await worker.run_once()

    run(go())
    assert len(Receiver.received) == 2
    headers, body = Receiver.received[-1]
    assert json.loads(body)["data"]["ticket"] == ticket.number
    expected = "sha256=" + hmac.new(hook.secret.encode(), body, hashlib.sha256).hexdigest()
    assert headers["X-Kefu-Signature"] == expected
    assert headers["X-Kefu-Event"] == "ticket.created"
    # The same delivery id on the retry lets the receiver drop duplicates.
    assert Receiver.received[0][0]["X-Kefu-Delivery"] == headers["X-Kefu-Delivery"]


def test_internal_note_payload_is_marked(db: Session) -> None:
    from kefu.actions.messages import NewMessage, do_add_message
    from kefu.domain.tickets import Channel

    do_create_webhook(db, ADMIN, url="http://127.0.0.1:9/x", events=["message.created"])
    ticket = make_ticket(db, body="")
    do_add_message(
        db, SYSTEM, ticket, NewMessage(body="内部备注", channel=Channel.WEB, is_internal=True)
    )
    job = db.scalars(select(Job)).one()
    assert job.payload["internal"] is True
