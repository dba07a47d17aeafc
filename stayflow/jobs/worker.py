"""The job runner: claims due jobs safely under concurrency, runs them, retries, leases.

Claiming is one ``UPDATE ... RETURNING`` over a sub-select; on PostgreSQL the
sub-select is ``FOR UPDATE SKIP LOCKED`` so concurrent workers never take the
same row, and on SQLite ``BEGIN IMMEDIATE`` makes the claim single-writer.
A claimed job carries a lease (``locked_until``) that a heartbeat extends; a
job whose worker died is taken back by another worker once the lease is over.
A handler runs in a session that also marks its job done, so its database
work and the job's completion commit together, and only while the lease is ours.

Jobs of handlers registered with ``lane=True`` (webhook deliveries: each waits on someone
else's server, up to its timeout) never run in the slots. The worker's lane claims them
apart and runs each on its own thread, up to ``lane_concurrency`` at once, so a slow one
holds up neither the jobs claimed with it nor the slots billing actions and syncs need.
"""

from __future__ import annotations

import logging
import os
import random
import socket
import threading
import time
import traceback
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import and_, event, select, text, true, update
from sqlalchemy.orm import Session, sessionmaker

from stayflow.db import utcnow
from stayflow.jobs.models import DEAD, QUEUED, RUNNING, SUCCEEDED, Job
from stayflow.jobs.registry import Registry, load_handlers
from stayflow.jobs.service import ENQUEUED_FLAG, enqueue

log = logging.getLogger("stayflow.jobs")


class RetryLater(Exception):
    """Raised by a handler to be retried after ``delay`` seconds (e.g. Retry-After)."""

    def __init__(self, message: str, delay: float | None = None) -> None:
        super().__init__(message)
        self.delay = delay


class PermanentFailure(Exception):
    """Raised by a handler when retrying cannot help: the job goes dead at once."""


@dataclass(frozen=True)
class ClaimedJob:
    id: int
    name: str
    payload: dict[str, Any]
    attempts: int
    max_attempts: int
    app_pk: int | None


@dataclass
class JobContext:
    db: Session
    job: ClaimedJob
    worker: JobExecutor

    @property
    def payload(self) -> dict[str, Any]:
        return self.job.payload


def _relax_durability(db: Session) -> None:
    """Let the job runner's own bookkeeping commit without waiting for the disk (PostgreSQL).

    Losing such a commit in a database crash only means a job runs again, which the
    outbox allows anyway (handlers are idempotent); the enqueue itself, written by the
    request that causes it, stays fully durable.
    """
    if db.get_bind().dialect.name == "postgresql":
        db.execute(text("SET LOCAL synchronous_commit TO OFF"))


def lease_now() -> datetime:
    """Now for leases: real time, never the process's movable clock (``stayflow demo``'s).

    A lease says whether a worker is still alive, which only real time can tell: read on a
    clock that jumps a day while a job runs, every running job's lease would seem to have
    run out and another worker would start it again. Lease columns are only ever compared
    with this clock, so they stay consistent whatever ``utcnow()`` says.
    """
    return datetime.now(UTC)


def backoff_delay(attempt: int, base: float, cap: float) -> float:
    """Exponential backoff with jitter: between half and all of base * 2^(attempt-1)."""
    ceiling = min(cap, base * (2.0 ** max(0, attempt - 1)))
    return ceiling / 2 + random.uniform(0, ceiling / 2)


class JobExecutor:
    """Runs claimed jobs and records their outcomes; no threads of its own.

    ``Worker`` adds the claiming loops; a request that runs its own job at once (the billing
    actions' first attempt) uses an executor directly with ``reserve_unique``.
    """

    def __init__(
        self,
        session_factory: sessionmaker[Session],
        *,
        lease_seconds: float = 60.0,
        worker_id: str | None = None,
        registry: Registry | None = None,
        services: dict[str, Any] | None = None,
    ) -> None:
        self.session_factory = session_factory
        self.lease = timedelta(seconds=lease_seconds)
        self.worker_id = worker_id or f"{socket.gethostname()}:{os.getpid()}:{id(self):x}"
        self.registry = registry or load_handlers()
        # Shared objects handlers may need (settings, encryptor, clients), by name.
        self.services: dict[str, Any] = services or {}
        self._held: set[int] = set()
        self._held_lock = threading.Lock()

    def reserve_unique(self, db: Session, unique_key: str) -> ClaimedJob | None:
        """Claim the queued job with this unique key inside the caller's transaction.

        Called in the transaction that enqueues the job, the claim commits with the job
        itself: no worker ever sees it queued, so the caller owns its first attempt. Should
        the caller die before running it, the lease runs out and any worker takes it back.
        """
        row = db.execute(
            update(Job)
            .where(Job.unique_key == unique_key, Job.status == QUEUED)
            .values(
                status=RUNNING,
                locked_by=self.worker_id,
                locked_until=lease_now() + self.lease,
                attempts=Job.attempts + 1,
            )
            .returning(Job.id, Job.name, Job.payload, Job.attempts, Job.max_attempts, Job.app_pk)
            .execution_options(synchronize_session=False)
        ).first()
        if row is None:
            return None
        with self._held_lock:
            self._held.add(row[0])
        return ClaimedJob(row[0], row[1], dict(row[2] or {}), row[3], row[4], row[5])

    def _forget(self, jobs: list[ClaimedJob]) -> None:
        with self._held_lock:
            self._held.difference_update(j.id for j in jobs)

    # --- running -------------------------------------------------------------

    def execute(self, job: ClaimedJob) -> str:
        """Run one claimed job and record its outcome; returns the resulting status."""
        try:
            return self._execute(job)
        finally:
            self._forget([job])

    def _execute(self, job: ClaimedJob) -> str:
        spec = self.registry.get(job.name)
        if spec is None:
            return self._fail(job, f"no handler registered for {job.name!r}", permanent=True)
        if job.attempts > job.max_attempts:
            return self._fail(job, "lease expired on the last attempt", permanent=True)
        started = time.monotonic()
        db = self.session_factory()
        try:
            spec.func(JobContext(db=db, job=job, worker=self))
            _relax_durability(db)
            finished = db.execute(
                update(Job)
                .where(Job.id == job.id, Job.locked_by == self.worker_id)
                .values(
                    status=SUCCEEDED,
                    finished_at=utcnow(),
                    locked_by=None,
                    locked_until=None,
                    last_error=None,
                )
                .execution_options(synchronize_session=False)
            )
            if finished.rowcount != 1:  # type: ignore[attr-defined]
                # Our lease ran out and another worker owns the job now: undo our work.
                db.rollback()
                log.warning("jobs.lease_lost", extra={"job_id": job.id, "job": job.name})
                return RUNNING
            db.commit()
        except RetryLater as exc:
            db.rollback()
            return self._fail(job, str(exc) or "retry requested", delay=exc.delay)
        except PermanentFailure as exc:
            db.rollback()
            return self._fail(job, str(exc) or exc.__class__.__name__, permanent=True)
        except Exception as exc:
            db.rollback()
            detail = "".join(traceback.format_exception_only(type(exc), exc)).strip()
            log.warning("jobs.failed", extra={"job_id": job.id, "job": job.name, "error": detail})
            return self._fail(job, detail)
        finally:
            db.close()
        log.debug(
            "jobs.succeeded",
            extra={
                "job_id": job.id,
                "job": job.name,
                "ms": round((time.monotonic() - started) * 1000, 1),
            },
        )
        return SUCCEEDED

    def _fail(
        self, job: ClaimedJob, error: str, *, permanent: bool = False, delay: float | None = None
    ) -> str:
        spec = self.registry.get(job.name)
        base, cap = (spec.backoff_base, spec.backoff_max) if spec else (2.0, 3600.0)
        now = utcnow()
        dead = permanent or job.attempts >= job.max_attempts
        values: dict[str, Any] = {
            "locked_by": None,
            "locked_until": None,
            "last_error": error[:4000],
        }
        if dead:
            values.update(status=DEAD, finished_at=now)
        else:
            wait = delay if delay is not None else backoff_delay(job.attempts, base, cap)
            values.update(status=QUEUED, run_at=now + timedelta(seconds=max(0.0, wait)))
        with self.session_factory() as db:
            _relax_durability(db)
            changed = db.execute(
                update(Job)
                .where(Job.id == job.id, Job.locked_by == self.worker_id)
                .values(**values)
                .execution_options(synchronize_session=False)
            )
            db.commit()
        if not dead:
            return QUEUED
        log.error("jobs.dead", extra={"job_id": job.id, "job": job.name, "error": error[:500]})
        if spec is not None and spec.on_dead is not None and changed.rowcount == 1:  # type: ignore[attr-defined]
            # However the job died (a handler's last failure, a lease lost on its last
            # attempt), its domain hears of it once, to record and report the failure.
            try:
                spec.on_dead(self.session_factory, job, error)
            except Exception:
                log.exception("jobs.on_dead_failed", extra={"job_id": job.id, "job": job.name})
        return DEAD


class Worker(JobExecutor):
    def __init__(
        self,
        session_factory: sessionmaker[Session],
        *,
        concurrency: int = 4,
        batch_size: int = 4,
        lane_concurrency: int = 32,
        poll_interval: float = 0.5,
        lease_seconds: float = 60.0,
        worker_id: str | None = None,
        registry: Registry | None = None,
        services: dict[str, Any] | None = None,
    ) -> None:
        if concurrency < 1 or batch_size < 1:
            raise ValueError("concurrency and batch_size must be at least 1")
        if lane_concurrency < 0:
            raise ValueError("lane_concurrency must not be negative")
        super().__init__(
            session_factory,
            lease_seconds=lease_seconds,
            worker_id=worker_id,
            registry=registry,
            services=services,
        )
        self.concurrency = concurrency
        self.batch_size = batch_size
        self.poll_interval = poll_interval
        self._stop = threading.Event()
        self._wake = threading.Condition()
        self._threads: list[threading.Thread] = []
        self._last_buckets: dict[str, int] = {}
        # The lane: jobs of lane handlers, each on its own thread (0 runs them in the slots).
        self.lane_concurrency = lane_concurrency
        self.lane_names = self.registry.lane_names() if lane_concurrency else frozenset()
        self._lane_wake = threading.Condition()
        self._lane_kicked = False
        self._lane_running = 0
        self._lane_threads: set[threading.Thread] = set()
        event.listen(session_factory, "after_commit", self._after_commit)

    # --- lifecycle -----------------------------------------------------------

    def _after_commit(self, session: Session) -> None:
        names = session.info.pop(ENQUEUED_FLAG, None)
        if not names:
            return
        # Wake only who runs what was enqueued: a delivery queued does not send every slot
        # to the database (on SQLite each claim takes the write lock), nor a billing job the lane.
        if not isinstance(names, set) or names - self.lane_names:
            self._notify_slots()
        if not isinstance(names, set) or names & self.lane_names:
            self._notify_lane()

    def notify(self) -> None:
        self._notify_slots()
        self._notify_lane()

    def _notify_slots(self) -> None:
        with self._wake:
            self._wake.notify_all()

    def _notify_lane(self) -> None:
        with self._lane_wake:
            self._lane_kicked = True
            self._lane_wake.notify_all()

    def start(self) -> None:
        """Run slots, the heartbeat and the scheduler in background threads."""
        self._stop.clear()
        for index in range(self.concurrency):
            self._spawn(self._slot_loop, f"stayflow-worker-{index}")
        self.lane_names = self.registry.lane_names() if self.lane_concurrency else frozenset()
        if self.lane_names:
            self._spawn(self._lane_loop, "stayflow-lane")
        self._spawn(self._heartbeat_loop, "stayflow-heartbeat")
        self._spawn(self._schedule_loop, "stayflow-scheduler")
        log.info("jobs.worker.started", extra={"worker_id": self.worker_id})

    def _spawn(self, target: Any, name: str) -> None:
        thread = threading.Thread(target=target, name=name, daemon=True)
        thread.start()
        self._threads.append(thread)

    def stop(self, timeout: float = 30.0) -> None:
        """Stop claiming, let running jobs finish, hand back jobs claimed but not started."""
        self._stop.set()
        self.notify()
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        self._threads = [t for t in self._threads if t.is_alive()]
        # The lane's jobs started when claimed; each finishes its current request.
        with self._lane_wake:
            lane_threads = list(self._lane_threads)
        for thread in lane_threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        event.remove(self.session_factory, "after_commit", self._after_commit)
        log.info("jobs.worker.stopped", extra={"worker_id": self.worker_id})

    def run_until_idle(self, max_jobs: int = 10_000, timeout: float = 60.0) -> int:
        """Run due jobs in this thread until none is due (tests and one-shot commands)."""
        done = 0
        deadline = time.monotonic() + timeout
        while done < max_jobs and time.monotonic() < deadline:
            jobs = self.claim(min(self.batch_size, max_jobs - done))
            if not jobs:
                break
            for job in jobs:
                self.execute(job)
                done += 1
        return done

    # --- claiming ------------------------------------------------------------

    def claim(self, limit: int, *, lane: bool | None = None) -> list[ClaimedJob]:
        """Take up to ``limit`` due jobs: first any whose worker's lease ran out, then queued ones.

        ``lane`` True takes only lane jobs, False only the others, None any job.
        Two statements, each an ordered walk of the (status, run_at) index, so a claim costs
        the same with ten jobs queued or a million.
        """
        now, lease_start = utcnow(), lease_now()
        rows: list[Any] = []
        names = sorted(self.lane_names)
        if lane is True:
            only: Any = Job.name.in_(names)
        elif lane is False and names:
            only = Job.name.not_in(names)
        else:
            only = true()
        with self.session_factory() as db:
            _relax_durability(db)
            for due in (
                and_(Job.status == RUNNING, Job.locked_until < lease_start),
                and_(Job.status == QUEUED, Job.run_at <= now),
            ):
                wanted = limit - len(rows)
                if wanted <= 0:
                    break
                ids = (
                    select(Job.id)
                    .where(due, only)
                    .order_by(Job.status, Job.run_at)
                    .limit(wanted)
                    .with_for_update(skip_locked=True)
                    .scalar_subquery()
                )
                rows.extend(
                    db.execute(
                        update(Job)
                        .where(Job.id.in_(ids))
                        .values(
                            status=RUNNING,
                            locked_by=self.worker_id,
                            locked_until=lease_start + self.lease,
                            attempts=Job.attempts + 1,
                        )
                        .returning(
                            Job.id,
                            Job.name,
                            Job.payload,
                            Job.attempts,
                            Job.max_attempts,
                            Job.app_pk,
                        )
                        .execution_options(synchronize_session=False)
                    ).all()
                )
            db.commit()
        jobs = [ClaimedJob(r[0], r[1], dict(r[2] or {}), r[3], r[4], r[5]) for r in rows]
        jobs.sort(key=lambda j: j.id)
        with self._held_lock:
            self._held.update(j.id for j in jobs)
        return jobs

    def _release(self, jobs: list[ClaimedJob]) -> None:
        """Hand back jobs claimed but not started (on shutdown), without using an attempt."""
        if not jobs:
            return
        with self.session_factory() as db:
            _relax_durability(db)
            for job in jobs:
                db.execute(
                    update(Job)
                    .where(Job.id == job.id, Job.locked_by == self.worker_id)
                    .values(
                        status=QUEUED, locked_by=None, locked_until=None, attempts=job.attempts - 1
                    )
                )
            db.commit()
        self._forget(jobs)

    # --- loops ---------------------------------------------------------------

    def _slot_loop(self) -> None:
        while not self._stop.is_set():
            try:
                jobs = self.claim(self.batch_size, lane=False)
            except Exception:
                log.exception("jobs.claim_failed")
                self._stop.wait(self.poll_interval)
                continue
            if not jobs:
                # Idle slots poll in turn, so together they ask the database about once per
                # poll_interval, not once per slot (on SQLite each ask takes the write lock).
                # A commit that enqueues in this process wakes them at once.
                with self._wake:
                    if not self._stop.is_set():
                        self._wake.wait(self.poll_interval * self.concurrency)
                continue
            for index, job in enumerate(jobs):
                if self._stop.is_set():
                    self._release(jobs[index:])
                    break
                self.execute(job)

    def _lane_loop(self) -> None:
        """Claim lane jobs as threads free up and start each on its own thread at once."""
        while not self._stop.is_set():
            with self._lane_wake:
                while self._lane_running >= self.lane_concurrency and not self._stop.is_set():
                    self._lane_wake.wait(self.poll_interval)
                wanted = self.lane_concurrency - self._lane_running
                # A commit that enqueues a lane job from now on makes the wait below return.
                self._lane_kicked = False
            if self._stop.is_set():
                break
            try:
                jobs = self.claim(wanted, lane=True)
            except Exception:
                log.exception("jobs.claim_failed")
                self._stop.wait(self.poll_interval)
                continue
            for job in jobs:
                self._lane_start(job)
            if len(jobs) == wanted:
                continue  # there may be more due: claim again when a thread is free
            with self._lane_wake:
                if not self._lane_kicked and not self._stop.is_set():
                    # Idle, the lane asks the database half as often as the slots together
                    # (on SQLite each ask takes the write lock): new work enqueued in this
                    # process wakes it at once; another process's, and retries coming due,
                    # wait at most twice the poll interval.
                    self._lane_wake.wait(self.poll_interval * 2)

    def _lane_start(self, job: ClaimedJob) -> None:
        thread = threading.Thread(
            target=self._lane_run, args=(job,), name=f"stayflow-lane-{job.id}", daemon=True
        )
        with self._lane_wake:
            self._lane_running += 1
            self._lane_threads.add(thread)
        try:
            thread.start()
        except RuntimeError:
            log.exception("jobs.lane_thread_failed", extra={"job_id": job.id})
            self._lane_done(thread)
            self._release([job])

    def _lane_run(self, job: ClaimedJob) -> None:
        try:
            self.execute(job)
        except Exception:
            # execute records the handler's failures itself; this is the bookkeeping failing
            # (a lost database): the lease runs out and the job is taken back.
            log.exception("jobs.lane_job_failed", extra={"job_id": job.id, "job": job.name})
        finally:
            self._lane_done(threading.current_thread())

    def _lane_done(self, thread: threading.Thread) -> None:
        with self._lane_wake:
            if self._lane_running >= self.lane_concurrency:
                self._lane_wake.notify_all()  # the claimer waits for a free thread
            self._lane_running -= 1
            self._lane_threads.discard(thread)

    def _heartbeat_loop(self) -> None:
        interval = max(0.2, self.lease.total_seconds() / 3)
        while not self._stop.wait(interval):
            with self._held_lock:
                held = list(self._held)
            if not held:
                continue
            try:
                with self.session_factory() as db:
                    db.execute(
                        update(Job)
                        .where(
                            Job.id.in_(held), Job.locked_by == self.worker_id, Job.status == RUNNING
                        )
                        .values(locked_until=lease_now() + self.lease)
                        .execution_options(synchronize_session=False)
                    )
                    db.commit()
            except Exception:
                log.exception("jobs.heartbeat_failed")

    def enqueue_due_schedules(self, now: datetime | None = None) -> int:
        """Enqueue each schedule once per interval, across all workers (unique key)."""
        now = now or utcnow()
        created = 0
        for schedule in self.registry.schedules.values():
            bucket = int(now.timestamp() // schedule.interval_seconds)
            if self._last_buckets.get(schedule.name) == bucket:
                continue
            with self.session_factory() as db:
                job = enqueue(
                    db,
                    schedule.handler,
                    schedule.payload,
                    unique_key=f"schedule:{schedule.name}:{bucket}",
                )
                db.commit()
            self._last_buckets[schedule.name] = bucket
            created += job is not None
        return created

    def _schedule_loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.enqueue_due_schedules()
            except Exception:
                log.exception("jobs.schedule_failed")
            self._stop.wait(1.0)
