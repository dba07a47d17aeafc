"""The job runner, for real: threads and processes on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select, text

from stayflow.db import transaction, utcnow
from stayflow.jobs.models import DEAD, QUEUED, RUNNING, SUCCEEDED, Job
from stayflow.jobs.registry import Registry, load_handlers
from stayflow.jobs.service import enqueue
from stayflow.jobs.worker import Worker, backoff_delay

PLUGIN = "tests.jobs.handlers"


@pytest.fixture
def registry() -> Registry:
    return load_handlers([PLUGIN])


@pytest.fixture
def effects_table(engine):
    with engine.begin() as conn:
        conn.execute(text("DROP TABLE IF EXISTS test_job_effects"))
        conn.execute(text("CREATE TABLE test_job_effects (job_id BIGINT NOT NULL)"))
    yield
    with engine.begin() as conn:
        conn.execute(text("DROP TABLE test_job_effects"))


def _jobs(session_factory) -> list[Job]:
    """The test's own jobs, leaving out the schedules a worker process enqueues by itself."""
    with session_factory() as db:
        return list(db.scalars(select(Job).where(Job.name.like("test.%")).order_by(Job.id)))


def _worker_env(settings, **extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        STAYFLOW_DATABASE_URL=settings.database_url,
        STAYFLOW_SECRET_KEY=settings.secret_key,
        STAYFLOW_JOB_MODULES=PLUGIN,
        STAYFLOW_LOG_JSON="false",
        STAYFLOW_WORKER_POLL_INTERVAL="0.05",
        PYTHONPATH=str(Path(__file__).resolve().parents[2]),
        **extra,
    )
    return env


def _start_worker_process(settings, **extra: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "stayflow.cli.main", "worker"],
        env=_worker_env(settings, **extra),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )


def _wait_until_running(proc: subprocess.Popen[bytes], timeout: float = 30) -> None:
    """Read the worker's output until it says it runs (bounded by lines and time)."""
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout
    for _ in range(200):
        line = proc.stdout.readline().decode()
        if "running" in line or not line or time.monotonic() > deadline:
            break
    assert "running" in line, f"worker did not start: {line!r}"


def _wait_for(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def test_enqueued_job_runs_only_if_its_transaction_commits(
    session_factory, registry, effects_table, tmp_path
):
    log = tmp_path / "runs.log"
    with pytest.raises(RuntimeError), transaction(session_factory) as db:
        enqueue(db, "test.record", {"log": str(log)})
        raise RuntimeError("the state change failed")
    with transaction(session_factory) as db:
        kept = enqueue(db, "test.record", {"log": str(log)})
    worker = Worker(session_factory, registry=registry, concurrency=1)
    assert worker.run_until_idle() == 1
    [job] = _jobs(session_factory)
    assert job.id == kept.id and job.status == SUCCEEDED and job.attempts == 1
    assert job.finished_at is not None and job.finished_at.tzinfo is not None
    assert log.read_text().count("\n") == 1
    with session_factory() as db:
        assert db.execute(text("SELECT job_id FROM test_job_effects")).scalars().all() == [job.id]


def test_unique_key_enqueues_once(session_factory, registry, tmp_path):
    with transaction(session_factory) as db:
        first = enqueue(db, "test.record", unique_key="nightly:2026-11-25")
        second = enqueue(db, "test.record", unique_key="nightly:2026-11-25")
    assert first is not None and second is None
    assert len(_jobs(session_factory)) == 1


def test_failing_job_backs_off_then_goes_dead(session_factory, registry, tmp_path):
    log = tmp_path / "flaky.log"
    with transaction(session_factory) as db:
        job = enqueue(db, "test.flaky", {"log": str(log)}, max_attempts=3)
    worker = Worker(session_factory, registry=registry, concurrency=1)
    delays = []
    for attempt in range(1, 4):
        before = utcnow()
        with session_factory() as db:
            db.execute(
                text("UPDATE jobs SET run_at = :now WHERE id = :id"), {"now": before, "id": job.id}
            )
            db.commit()
        assert worker.run_until_idle() == 1
        [row] = _jobs(session_factory)
        assert row.attempts == attempt
        assert f"boom on attempt {attempt}" in (row.last_error or "")
        if attempt < 3:
            assert row.status == QUEUED
            delays.append((row.run_at - before).total_seconds())
            # Not due yet: backing off means a second run now finds nothing to do.
            assert worker.run_until_idle() == 0
    [row] = _jobs(session_factory)
    assert row.status == DEAD and row.finished_at is not None
    assert log.read_text().splitlines() == ["try 1", "try 2", "try 3"]
    # test.flaky backs off from 0.2 s, capped at 1 s: attempt 1 waits at least 0.1 s, attempt 2
    # at least 0.2 s. The upper side is loose: the delay is measured from before the run.
    assert 0.1 <= delays[0] and 0.2 <= delays[1] <= 1.0 + 5, delays


def test_job_that_recovers_succeeds(session_factory, registry, tmp_path):
    log = tmp_path / "flaky.log"
    with transaction(session_factory) as db:
        enqueue(db, "test.flaky", {"log": str(log), "succeed_on": 2})
    worker = Worker(session_factory, registry=registry, concurrency=1)
    worker.run_until_idle()
    _wait_for(lambda: worker.run_until_idle() == 1, 5, "the retry to be due")
    [row] = _jobs(session_factory)
    assert row.status == SUCCEEDED and row.attempts == 2 and row.last_error is None


def test_backoff_grows_exponentially_with_jitter():
    for attempt in range(1, 8):
        ceiling = min(60.0, 1.0 * 2 ** (attempt - 1))
        samples = [backoff_delay(attempt, 1.0, 60.0) for _ in range(200)]
        assert all(ceiling / 2 <= s <= ceiling for s in samples)
        assert len({round(s, 6) for s in samples}) > 50  # jittered, not fixed


def test_retry_later_honours_the_delay_and_permanent_failure_is_dead_at_once(
    session_factory, registry
):
    with transaction(session_factory) as db:
        later = enqueue(db, "test.retry_later", {"delay": 30})
        doomed = enqueue(db, "test.permanent")
    started = utcnow()
    Worker(session_factory, registry=registry, concurrency=1).run_until_idle()
    by_id = {j.id: j for j in _jobs(session_factory)}
    assert by_id[later.id].status == QUEUED
    assert by_id[later.id].run_at - started >= timedelta(seconds=29)
    assert by_id[doomed.id].status == DEAD and by_id[doomed.id].attempts == 1
    assert "coupon SAVE20 does not exist" in (by_id[doomed.id].last_error or "")


def test_unknown_handler_goes_dead_with_a_message(session_factory, registry):
    with transaction(session_factory) as db:
        enqueue(db, "test.nobody_handles_this")
    Worker(session_factory, registry=registry).run_until_idle()
    [row] = _jobs(session_factory)
    assert row.status == DEAD and "no handler registered" in (row.last_error or "")


def test_two_worker_processes_never_run_one_job_twice(
    settings, session_factory, registry, effects_table, tmp_path
):
    """Two `stayflow worker` processes, four threads each, drain 400 jobs: each runs once."""
    log = tmp_path / "runs.log"
    total = 400
    procs = [_start_worker_process(settings) for _ in range(2)]
    try:
        for proc in procs:
            _wait_until_running(proc)
        with transaction(session_factory) as db:
            for _ in range(total):
                enqueue(db, "test.record", {"log": str(log), "sleep": 0.002})

        def drained() -> bool:
            with session_factory() as db:
                done = db.scalar(
                    text("SELECT count(*) FROM jobs WHERE status = 'succeeded' AND name = :n"),
                    {"n": "test.record"},
                )
            return done == total

        _wait_for(drained, 120, "both workers to drain the queue")
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
        for proc in procs:
            proc.wait(timeout=30)
    lines = log.read_text().splitlines()
    runs = Counter(line.split()[0] for line in lines)
    assert len(runs) == total
    assert max(runs.values()) == 1, [job for job, n in runs.items() if n > 1][:5]
    workers = Counter(line.split()[1] for line in lines)
    assert len(workers) == 2, f"both processes should have taken work: {workers}"
    with session_factory() as db:
        effects = db.execute(
            text("SELECT count(*), count(DISTINCT job_id) FROM test_job_effects")
        ).one()
    assert tuple(effects) == (total, total)
    for proc in procs:
        assert proc.returncode == 0


def test_killed_worker_leaves_a_job_that_another_finishes_after_the_lease(
    settings, session_factory, registry, tmp_path
):
    log = tmp_path / "slow.log"
    with transaction(session_factory) as db:
        job = enqueue(db, "test.slow", {"log": str(log), "seconds": 60})
    victim = _start_worker_process(settings, STAYFLOW_JOB_LEASE_SECONDS="2")
    try:
        _wait_for(lambda: log.exists() and "start" in log.read_text(), 30, "the job to start")
        os.kill(victim.pid, signal.SIGKILL)
        victim.wait(timeout=10)
    finally:
        if victim.poll() is None:
            victim.kill()
    [row] = _jobs(session_factory)
    assert row.status == RUNNING and row.attempts == 1
    with session_factory() as db:
        db.execute(
            text("UPDATE jobs SET payload = :p WHERE id = :id"),
            {"p": json.dumps({"log": str(log), "seconds": 0.1}), "id": job.id},
        )
        db.commit()
    rescuer = Worker(session_factory, registry=registry, concurrency=1, lease_seconds=2)
    # Still leased by the dead worker: not taken yet.
    rescuer.run_until_idle()
    [row] = _jobs(session_factory)
    assert row.status == RUNNING and row.attempts == 1

    def rescued() -> bool:
        rescuer.run_until_idle()
        return _jobs(session_factory)[0].status != RUNNING

    _wait_for(rescued, 10, "the lease to expire")
    [row] = _jobs(session_factory)
    assert row.status == SUCCEEDED and row.attempts == 2
    lines = log.read_text().splitlines()
    assert [line.split()[0] for line in lines] == ["start", "start", "done"]


def test_sigterm_finishes_the_running_job_and_loses_none(
    settings, session_factory, registry, tmp_path
):
    log = tmp_path / "slow.log"
    with transaction(session_factory) as db:
        for _ in range(6):
            enqueue(db, "test.slow", {"log": str(log), "seconds": 1.0})
    proc = _start_worker_process(settings, STAYFLOW_WORKER_CONCURRENCY="1")
    try:
        _wait_for(lambda: log.exists() and "start" in log.read_text(), 30, "a job to start")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    jobs = _jobs(session_factory)
    statuses = Counter(j.status for j in jobs)
    assert statuses[RUNNING] == 0, statuses
    assert statuses[SUCCEEDED] >= 1
    assert statuses[SUCCEEDED] + statuses[QUEUED] == 6
    # Handed-back jobs did not spend an attempt.
    assert all(j.attempts == 0 for j in jobs if j.status == QUEUED)
    Worker(session_factory, registry=registry, concurrency=1).run_until_idle()
    assert all(j.status == SUCCEEDED for j in _jobs(session_factory))


def test_schedules_enqueue_once_per_interval_across_workers(session_factory):
    schedules = Registry()
    schedules.handler("test.tick")(lambda ctx: None)
    schedules.schedule("tick", "test.tick", every_seconds=60)
    first = Worker(session_factory, registry=schedules)
    second = Worker(session_factory, registry=schedules)
    now = utcnow()
    assert first.enqueue_due_schedules(now) == 1
    assert second.enqueue_due_schedules(now) == 0
    assert second.enqueue_due_schedules(now + timedelta(seconds=60)) == 1
    assert len(_jobs(session_factory)) == 2


def test_in_process_worker_is_woken_by_a_commit(session_factory, registry, effects_table, tmp_path):
    log = tmp_path / "runs.log"
    worker = Worker(session_factory, registry=registry, concurrency=2, poll_interval=30)
    worker.start()
    try:
        with transaction(session_factory) as db:
            enqueue(db, "test.record", {"log": str(log)})
        _wait_for(lambda: log.exists(), 10, "the worker to be woken (it polls only every 30 s)")
    finally:
        worker.stop(timeout=10)
    _wait_for(lambda: _jobs(session_factory)[0].status == SUCCEEDED, 5, "the job to be marked done")


def test_on_dead_hears_of_every_death_once(session_factory, tmp_path):
    """A handler's last failure, and a lease lost on the last attempt, both reach on_dead."""
    heard: list[tuple[int, str]] = []
    hooks = Registry()

    def fail(ctx) -> None:
        raise RuntimeError("stripe said no")

    hooks.handler("test.doomed", on_dead=lambda factory, job, error: heard.append((job.id, error)))(
        fail
    )
    with transaction(session_factory) as db:
        failing = enqueue(db, "test.doomed", max_attempts=1)
        abandoned = enqueue(db, "test.doomed", max_attempts=1, delay=timedelta(hours=1))
    Worker(session_factory, registry=hooks).run_until_idle()
    assert heard == [(failing.id, "RuntimeError: stripe said no")]

    # A worker claims the second job on its last attempt, then dies without a word.
    with session_factory() as db:
        db.execute(
            text("UPDATE jobs SET run_at = :now WHERE id = :id"),
            {"now": utcnow(), "id": abandoned.id},
        )
        db.commit()
    doomed_worker = Worker(session_factory, registry=hooks)
    assert [j.id for j in doomed_worker.claim(1)] == [abandoned.id]
    # Its lease runs out: moved into the past in the table, rather than slept through.
    with session_factory() as db:
        db.execute(
            text("UPDATE jobs SET locked_until = :past WHERE id = :id"),
            {"past": utcnow() - timedelta(seconds=1), "id": abandoned.id},
        )
        db.commit()
    Worker(session_factory, registry=hooks).run_until_idle()
    assert heard[1] == (abandoned.id, "lease expired on the last attempt")
    assert len(heard) == 2
    assert {j.status for j in _jobs(session_factory)} == {DEAD}


def test_a_clock_jump_does_not_take_a_running_job_from_its_worker(
    session_factory, registry, tmp_path
):
    """``stayflow demo`` moves the process's clock a day at a time while jobs run: a lease is
    real time, so a job running across the jump stays with its worker (no second run)."""
    import threading
    from datetime import UTC, datetime

    from stayflow.db import set_clock

    jump = timedelta(0)
    set_clock(lambda: datetime.now(UTC) + jump)
    try:
        log = tmp_path / "slow.log"
        with transaction(session_factory) as db:
            enqueue(db, "test.slow", {"log": str(log), "seconds": 1.0})
        first = Worker(session_factory, registry=registry, concurrency=1, lease_seconds=30)
        [job] = first.claim(1)
        running = threading.Thread(target=first.execute, args=(job,))
        running.start()
        _wait_for(lambda: log.exists(), 5, "the job to start")
        jump = timedelta(days=1)
        other = Worker(session_factory, registry=registry, concurrency=1, lease_seconds=30)
        assert other.claim(1) == []
        running.join(10)
        assert not running.is_alive()
    finally:
        set_clock(None)
    [row] = _jobs(session_factory)
    assert row.status == SUCCEEDED and row.attempts == 1
    assert [line.split()[0] for line in log.read_text().splitlines()] == ["start", "done"]
