"""Enqueue 10,000 no-op jobs and drain them with 1 and 4 worker processes, on SQLite and PostgreSQL.

    python bench/jobs.py [--jobs 10000] [--workers 1,4] [--backends sqlite,postgres]

Prints jobs/s for enqueueing and for each drain. PostgreSQL is 127.0.0.1:5432 (user postgres);
the benchmark creates and drops its own database. Each worker is a process claiming in batches.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import tempfile
import time
from pathlib import Path

from _support import create_database, drop_database
from sqlalchemy import func, select, text

from stayflow.db import make_engine, make_session_factory, migrate, transaction
from stayflow.jobs.models import SUCCEEDED, Job
from stayflow.jobs.service import enqueue
from stayflow.jobs.worker import Worker
from stayflow.settings import Settings

SECRET = "bench-" + "k" * 40


def _drain(url: str, batch: int, deadline: float) -> None:
    engine = make_engine(Settings(database_url=url, secret_key=SECRET))
    worker = Worker(make_session_factory(engine), concurrency=1, batch_size=batch)
    idle_rounds = 0
    while time.time() < deadline and idle_rounds < 3:
        if worker.run_until_idle(max_jobs=100_000, timeout=deadline - time.time()) == 0:
            idle_rounds += 1
            time.sleep(0.05)
        else:
            idle_rounds = 0
    engine.dispose()


def run(url: str, jobs: int, workers: int, batch: int) -> tuple[float, float]:
    engine = make_engine(Settings(database_url=url, secret_key=SECRET))
    factory = make_session_factory(engine)
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM jobs"))
    started = time.perf_counter()
    with transaction(factory) as db:
        for _ in range(jobs):
            enqueue(db, "jobs.noop")
    enqueue_rate = jobs / (time.perf_counter() - started)
    engine.dispose()
    ctx = mp.get_context("fork")
    deadline = time.time() + 600
    started = time.perf_counter()
    procs = [ctx.Process(target=_drain, args=(url, batch, deadline)) for _ in range(workers)]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(timeout=620)
    elapsed = time.perf_counter() - started
    engine = make_engine(Settings(database_url=url, secret_key=SECRET))
    with engine.connect() as conn:
        done = conn.scalar(select(func.count()).select_from(Job).where(Job.status == SUCCEEDED))
    engine.dispose()
    if done != jobs:
        raise SystemExit(f"only {done} of {jobs} jobs succeeded")
    # Worker start-up (imports, connections) is inside the measured time, as in real life.
    return enqueue_rate, jobs / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--workers", default="1,4")
    parser.add_argument("--backends", default="sqlite,postgres")
    parser.add_argument("--batch", type=int, default=4)
    args = parser.parse_args()
    worker_counts = [int(w) for w in args.workers.split(",")]
    print(f"jobs={args.jobs} batch={args.batch} cores={mp.cpu_count()}")
    print(f"{'backend':<10} {'workers':>7} {'enqueue/s':>10} {'drain jobs/s':>13}")
    for backend in args.backends.split(","):
        tmp = tempfile.TemporaryDirectory()
        url = create_database(backend, Path(tmp.name))
        try:
            engine = make_engine(Settings(database_url=url, secret_key=SECRET))
            migrate(engine)
            engine.dispose()
            for workers in worker_counts:
                enqueue_rate, drain_rate = run(url, args.jobs, workers, args.batch)
                print(f"{backend:<10} {workers:>7} {enqueue_rate:>10.0f} {drain_rate:>13.0f}")
        finally:
            drop_database(url)
            tmp.cleanup()


if __name__ == "__main__":
    main()
