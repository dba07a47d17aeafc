"""Delivering one endpoint's queue, in order, by one job at a time.

Each endpoint has at most one delivery job (``WebhookEndpoint.pending_job_id``), so its
events go out in order and one at a time, and an endpoint in trouble holds up only its
own queue: a failed attempt reschedules the endpoint's job for the delivery's next
attempt and frees the worker. No database transaction is open during an HTTP request.

Retries follow ``Settings.webhooks_retry_schedule`` (by default immediately, 5 s, 5 min,
30 min, 2 h, 5 h, 10 h, 10 h, each with +-10 % jitter); ``Retry-After`` on 429/502/503
replaces the scheduled wait. 410 disables the endpoint. An endpoint failing for 5 days,
with failures counted at least 12 h apart at least three times, is disabled.
"""

from __future__ import annotations

import json
import logging
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import insert, select, text, update
from sqlalchemy.orm import Session, sessionmaker

from stayflow.crypto import Encryptor
from stayflow.db import utcnow
from stayflow.events import service as events_service
from stayflow.events.models import Event
from stayflow.events.schemas import WebhookEndpointDisabled
from stayflow.jobs import service as jobs_service
from stayflow.settings import Settings
from stayflow.webhooks import signing, slack
from stayflow.webhooks.fanout import DELIVER_JOB
from stayflow.webhooks.models import (
    DISABLED_FAILING,
    DISABLED_GONE,
    FAILED,
    PENDING,
    SLACK,
    SUCCEEDED,
    WebhookAttempt,
    WebhookDelivery,
    WebhookEndpoint,
)
from stayflow.webhooks.transport import Sender, SendResult

log = logging.getLogger("stayflow.webhooks")

Clock = Callable[[], datetime]
MAX_RETRY_AFTER = 24 * 3600.0
# Deliveries read per query; an endpoint disabled meanwhile may still get these few.
READ_BATCH = 20
# An endpoint slower than this on average gets at most half a worker slot (see _pause_after).
SLOW_ANSWER_SECONDS = 1.0


@dataclass(frozen=True)
class DeliveryConfig:
    schedule: tuple[float, ...] = (0, 5, 300, 1800, 7200, 18000, 36000, 36000)
    timeout: float = 15.0
    allow_private: bool = False
    # How much one job run may do before it yields its worker slot to others.
    max_per_run: int = 100
    seconds_per_run: float = 2.0
    jitter: float = 0.1
    disable_after: timedelta = timedelta(days=5)
    strike_gap: timedelta = timedelta(hours=12)
    min_strikes: int = 3

    @classmethod
    def from_settings(cls, settings: Settings) -> DeliveryConfig:
        return cls(
            schedule=settings.webhooks_retry_schedule_seconds,
            timeout=settings.webhooks_timeout_seconds,
            allow_private=settings.webhooks_allow_private,
        )


_senders: dict[tuple[float, bool], Sender] = {}
_senders_lock = threading.Lock()


def sender_for(config: DeliveryConfig) -> Sender:
    """One pooled client per (timeout, guard) in the process."""
    key = (config.timeout, config.allow_private)
    with _senders_lock:
        found = _senders.get(key)
        if found is None:
            found = Sender(timeout=config.timeout, allow_private=config.allow_private)
            _senders[key] = found
        return found


def render_body(event: Event) -> bytes:
    stamp = event.created_at.isoformat().replace("+00:00", "Z")
    document = {"type": event.type, "timestamp": stamp, "data": event.data}
    return json.dumps(document, separators=(",", ":"), ensure_ascii=False).encode()


@dataclass(frozen=True)
class _Work:
    delivery_pk: int
    event_id: int
    msg_id: str
    next_attempt_at: datetime
    url: str
    secrets: list[str]
    legacy: bool
    body: bytes
    signed: bool = True


def endpoint_secrets(ep: WebhookEndpoint, encryptor: Encryptor, now: datetime) -> list[str]:
    """The current secret, then the previous one while its overlap lasts."""
    found = [encryptor.decrypt(ep.secret_encrypted)]
    if (
        ep.previous_secret_encrypted
        and ep.previous_secret_expires_at is not None
        and ep.previous_secret_expires_at > now
    ):
        found.append(encryptor.decrypt(ep.previous_secret_encrypted))
    return found


def _read_batch(
    factory: sessionmaker[Session],
    endpoint_pk: int,
    encryptor: Encryptor,
    now: datetime,
    batch: int,
) -> tuple[WebhookEndpoint | None, list[_Work]]:
    """The endpoint (detached) and its next pending deliveries, oldest first."""
    with factory() as db:
        ep = db.get(WebhookEndpoint, endpoint_pk)
        if ep is None:
            return None, []
        work: list[_Work] = []
        if ep.enabled:
            rows = db.execute(
                select(WebhookDelivery, Event)
                .join(Event, Event.id == WebhookDelivery.event_id)
                .where(
                    WebhookDelivery.endpoint_pk == endpoint_pk,
                    WebhookDelivery.status == PENDING,
                )
                .order_by(WebhookDelivery.id)
                .limit(batch)
            ).all()
            if rows:
                secrets_ = endpoint_secrets(ep, encryptor, now)
                work = [
                    _Work(
                        d.id,
                        d.event_id,
                        d.msg_id,
                        d.next_attempt_at,
                        ep.url,
                        secrets_,
                        ep.legacy_signature,
                        slack.body(e.type, e.data) if ep.kind == SLACK else render_body(e),
                        signed=ep.kind != SLACK,
                    )
                    for d, e in rows
                ]
        db.expunge(ep)
        db.rollback()
        return ep, work


def deliver_endpoint(
    factory: sessionmaker[Session],
    endpoint_pk: int,
    *,
    config: DeliveryConfig,
    encryptor: Encryptor,
    sender: Sender | None = None,
    clock: Clock = utcnow,
    job_id: int | None = None,
) -> str:
    """Send the endpoint's due deliveries in order; returns why it stopped.

    ``job_id`` is the running job's id: a job that no longer owns the endpoint does nothing.
    Deliveries are read a few at a time; each attempt is recorded in its own short
    transaction, and any failure re-reads the endpoint before going on.
    """
    sender = sender or sender_for(config)
    started = time.monotonic()
    handled = 0
    ep: WebhookEndpoint | None = None
    for _round in range(config.max_per_run + 2):
        now = clock()
        ep, batch = _read_batch(factory, endpoint_pk, encryptor, now, READ_BATCH)
        if ep is None:
            return "deleted"
        if job_id is not None and ep.pending_job_id != job_id:
            return "not_owner"
        if not ep.enabled:
            # Re-enabling queues a new job; nothing to do until then.
            _release(factory, endpoint_pk, None)
            return "disabled"
        if not batch:
            if _release(factory, endpoint_pk, ep.enqueued_seq):
                return "idle"
            continue  # more was queued meanwhile
        complete = len(batch) < READ_BATCH  # the batch holds every pending delivery
        for index, work in enumerate(batch):
            now = clock()
            if work.next_attempt_at > now:
                wait = (work.next_attempt_at - now).total_seconds()
                _reschedule(factory, ep.app_pk, endpoint_pk, wait)
                return "waiting"
            elapsed = time.monotonic() - started
            if handled >= config.max_per_run or elapsed > config.seconds_per_run:
                _reschedule(factory, ep.app_pk, endpoint_pk, _pause_after(elapsed, handled))
                return "yielded"
            stamp = int(now.timestamp())
            headers = (
                signing.headers(work.secrets, work.msg_id, stamp, work.body, legacy=work.legacy)
                if work.signed
                else {}
            )
            result = sender.post(work.url, work.body, headers)
            handled += 1
            released = False
            with factory() as db:
                _relax_durability(db)
                if result.succeeded and ep.failing_since is None:
                    recorded = _record_success(db, ep, work, result, now)
                    if recorded and complete and index == len(batch) - 1:
                        # The last one: stop in the same transaction unless more came.
                        released = _release_in(db, endpoint_pk, ep.enqueued_seq)
                else:
                    record_attempt(db, config, endpoint_pk, work.delivery_pk, result, now, clock())
                    recorded = False
                db.commit()
            if released:
                return "idle"
            if not recorded:
                break  # the endpoint's state moved: read it again
    if ep is not None:
        _reschedule(factory, ep.app_pk, endpoint_pk, 0.0)
    return "yielded"


def _pause_after(elapsed: float, handled: int) -> float:
    """How long a job that used up its time waits before its next run.

    An endpoint answering in more than ``SLOW_ANSWER_SECONDS`` on average then waits as long
    as it ran, so it holds at most half a worker slot; others go again at once.
    """
    if handled and elapsed / handled > SLOW_ANSWER_SECONDS:
        return min(elapsed, 30.0)
    return 0.0


def _relax_durability(db: Session) -> None:
    """Record an attempt without waiting for the disk (PostgreSQL).

    Losing such a commit in a database crash only means the event is delivered again,
    which at-least-once delivery (and the receiver's dedup on webhook-id) allows.
    """
    if db.get_bind().dialect.name == "postgresql":
        db.execute(text("SET LOCAL synchronous_commit TO OFF"))


def _record_success(
    db: Session, ep: WebhookEndpoint, work: _Work, result: SendResult, at: datetime
) -> bool:
    """The common case in two statements; False when the delivery is no longer pending."""
    changed = db.execute(
        update(WebhookDelivery)
        .where(WebhookDelivery.id == work.delivery_pk, WebhookDelivery.status == PENDING)
        .values(
            status=SUCCEEDED,
            attempts=WebhookDelivery.attempts + 1,
            last_status_code=result.status_code,
            last_error=None,
            finished_at=at,
        )
        .execution_options(synchronize_session=False)
    )
    if int(getattr(changed, "rowcount", 0) or 0) != 1:
        return False
    db.execute(
        insert(WebhookAttempt).values(
            app_pk=ep.app_pk,
            endpoint_pk=ep.id,
            delivery_pk=work.delivery_pk,
            event_id=work.event_id,
            msg_id=work.msg_id,
            at=at,
            status_code=result.status_code,
            latency_ms=result.latency_ms,
            response=result.response,
            error=None,
            succeeded=True,
        )
    )
    return True


def _release(factory: sessionmaker[Session], endpoint_pk: int, seq: int | None) -> bool:
    """Give up the endpoint's job slot unless more work arrived (``seq`` moved)."""
    with factory() as db:
        released = _release_in(db, endpoint_pk, seq)
        db.commit()
    return released


def _release_in(db: Session, endpoint_pk: int, seq: int | None) -> bool:
    query = update(WebhookEndpoint).where(WebhookEndpoint.id == endpoint_pk)
    if seq is not None:
        query = query.where(WebhookEndpoint.enqueued_seq == seq)
    result = db.execute(
        query.values(pending_job_id=None).execution_options(synchronize_session=False)
    )
    return int(getattr(result, "rowcount", 0) or 0) == 1


def _reschedule(
    factory: sessionmaker[Session], app_pk: int, endpoint_pk: int, delay: float
) -> None:
    with factory() as db:
        job = jobs_service.enqueue(
            db,
            DELIVER_JOB,
            {"endpoint_pk": endpoint_pk},
            app_pk=app_pk,
            delay=timedelta(seconds=max(0.0, delay)),
        )
        assert job is not None
        db.execute(
            update(WebhookEndpoint)
            .where(WebhookEndpoint.id == endpoint_pk)
            .values(pending_job_id=job.id)
            .execution_options(synchronize_session=False)
        )
        db.commit()


def retry_delay(config: DeliveryConfig, attempts: int, result: SendResult) -> float:
    if result.retry_after is not None:
        return min(result.retry_after, MAX_RETRY_AFTER)
    base = config.schedule[min(attempts, len(config.schedule) - 1)]
    return base * random.uniform(1 - config.jitter, 1 + config.jitter)


def record_attempt(
    db: Session,
    config: DeliveryConfig,
    endpoint_pk: int,
    delivery_pk: int,
    result: SendResult,
    at: datetime,
    now: datetime,
) -> None:
    """Log the attempt and move the delivery (and the endpoint's failure streak) on."""
    delivery = db.get(WebhookDelivery, delivery_pk)
    ep = db.get(WebhookEndpoint, endpoint_pk)
    if delivery is None or ep is None:
        return
    db.add(
        WebhookAttempt(
            app_pk=delivery.app_pk,
            endpoint_pk=endpoint_pk,
            delivery_pk=delivery_pk,
            event_id=delivery.event_id,
            msg_id=delivery.msg_id,
            at=at,
            status_code=result.status_code,
            latency_ms=result.latency_ms,
            response=result.response,
            error=result.error,
            succeeded=result.succeeded,
        )
    )
    if delivery.status != PENDING:
        return
    delivery.attempts += 1
    delivery.last_status_code = result.status_code
    delivery.last_error = result.error
    if result.succeeded:
        delivery.status = SUCCEEDED
        delivery.finished_at = now
        ep.failing_since = None
        ep.failure_strikes = 0
        ep.last_strike_at = None
        return
    if result.status_code == 410:
        delivery.status = FAILED
        delivery.finished_at = now
        disable(db, ep, DISABLED_GONE, now)
        return
    if delivery.attempts >= len(config.schedule):
        delivery.status = FAILED
        delivery.finished_at = now
    else:
        wait = retry_delay(config, delivery.attempts, result)
        delivery.next_attempt_at = now + timedelta(seconds=wait)
    _note_failure(db, config, ep, now)


def _note_failure(db: Session, config: DeliveryConfig, ep: WebhookEndpoint, now: datetime) -> None:
    if ep.failing_since is None:
        ep.failing_since = now
        ep.failure_strikes = 1
        ep.last_strike_at = now
        return
    if ep.last_strike_at is None or now - ep.last_strike_at >= config.strike_gap:
        ep.failure_strikes += 1
        ep.last_strike_at = now
    if now - ep.failing_since >= config.disable_after and ep.failure_strikes >= config.min_strikes:
        disable(db, ep, DISABLED_FAILING, now)


def disable(db: Session, ep: WebhookEndpoint, reason: str, now: datetime) -> None:
    """Stop delivering to the endpoint and tell the app (an event in its log)."""
    if not ep.enabled:
        return
    ep.enabled = False
    ep.disabled_reason = reason
    ep.disabled_at = now
    db.flush()
    events_service.emit(
        db,
        ep.app_pk,
        WebhookEndpointDisabled(
            endpoint_id=ep.endpoint_id,
            url=ep.url,
            reason=reason,
            failing_since=ep.failing_since,
        ),
    )
    log.warning(
        "webhooks.endpoint_disabled", extra={"endpoint_id": ep.endpoint_id, "reason": reason}
    )
