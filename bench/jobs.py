"""Enqueue no-op jobs and drain them with 1 and 4 worker processes, on SQLite and PostgreSQL.

    python bench/jobs.py [--jobs 10000] [--single 1000] [--threads 8] [--workers 1,4]
                         [--backends sqlite,postgres]

Three enqueue rates, because they answer different questions:
  - one job per transaction, one client: what a request that enqueues pays (a commit each);
  - one job per transaction from --threads clients at once: requests in parallel;
  - --jobs jobs in one transaction: a bulk import (a commit shared by all, so far cheaper).
Then the drain rate: --jobs jobs run by 1 and by 4 worker processes, claiming in batches.

Durability, printed with the figures: enqueue commits are durable (PostgreSQL's default
synchronous_commit on; SQLite WAL with synchronous=NORMAL, durable against a process crash
but not a power loss). The worker's own bookkeeping (claim, finish) commits with
synchronous_commit OFF on PostgreSQL: not durable, a crash may run a job again (the outbox
allows it). PostgreSQL is 127.0.0.1:5432 (user postgres); the benchmark creates and drops
its own database.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import tempfile
import threading
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
DURABILITY = {"sqlite": "WAL, synchronous=NORMAL", "postgres": "synchronous_commit on"}
WORKER_DURABILITY = {
    "sqlite": "WAL, synchronous=NORMAL",
    "postgres": "synchronous_commit OFF, not durable",
}


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


def enqueue_rates(url: str, jobs: int, single: int, threads: int) -> tuple[float, float, float]:
    """(one per transaction, one per transaction from ``threads`` clients, all in one)."""
    engine = make_engine(Settings(database_url=url, secret_key=SECRET))
    factory = make_session_factory(engine)
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM jobs"))
    started = time.perf_counter()
    for _ in range(single):
        with transaction(factory) as db:
            enqueue(db, "jobs.noop")
    one_each = single / (time.perf_counter() - started)

    def client(count: int) -> None:
        for _ in range(count):
            with transaction(factory) as db:
                enqueue(db, "jobs.noop")

    clients = [threading.Thread(target=client, args=(single // threads,)) for _ in range(threads)]
    started = time.perf_counter()
    for thread in clients:
        thread.start()
    for thread in clients:
        thread.join(timeout=600)
    parallel = (single // threads) * threads / (time.perf_counter() - started)

    with engine.begin() as conn:
        conn.execute(text("DELETE FROM jobs"))
    started = time.perf_counter()
    with transaction(factory) as db:
        for _ in range(jobs):
            enqueue(db, "jobs.noop")
    bulk = jobs / (time.perf_counter() - started)
    engine.dispose()
    return one_each, parallel, bulk


def drain_rate(url: str, jobs: int, workers: int, batch: int) -> float:
    engine = make_engine(Settings(database_url=url, secret_key=SECRET))
    factory = make_session_factory(engine)
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM jobs"))
    with transaction(factory) as db:
        for _ in range(jobs):
            enqueue(db, "jobs.noop")
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
    return jobs / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--jobs", type=int, default=10_000, help="bulk enqueue and drain size")
    parser.add_argument("--single", type=int, default=1000, help="one-per-transaction enqueues")
    parser.add_argument("--threads", type=int, default=8, help="parallel enqueue clients")
    parser.add_argument("--workers", default="1,4")
    parser.add_argument("--backends", default="sqlite,postgres")
    parser.add_argument("--batch", type=int, default=4)
    args = parser.parse_args()
    worker_counts = [int(w) for w in args.workers.split(",")]
    print(
        f"jobs={args.jobs} single={args.single} threads={args.threads} batch={args.batch} "
        f"cores={mp.cpu_count()}"
    )
    for backend in args.backends.split(","):
        tmp = tempfile.TemporaryDirectory()
        url = create_database(backend, Path(tmp.name))
        try:
            engine = make_engine(Settings(database_url=url, secret_key=SECRET))
            migrate(engine)
            engine.dispose()
            one_each, parallel, bulk = enqueue_rates(url, args.jobs, args.single, args.threads)
            print(f"{backend}: enqueue (durable commits: {DURABILITY[backend]})")
            rows = [
                ("one job per transaction, 1 client", one_each, "what a request pays"),
                (f"one job per transaction, {args.threads} clients", parallel, "requests at once"),
                (f"{args.jobs} jobs in one transaction", bulk, "bulk only"),
            ]
            for label, rate, note in rows:
                print(f"  {label:<40} {rate:>8.0f} jobs/s  ({note})")
            for workers in worker_counts:
                rate = drain_rate(url, args.jobs, workers, args.batch)
                label = f"drain, {workers} worker process(es)"
                print(
                    f"  {label:<40} {rate:>8.0f} jobs/s  "
                    f"(bookkeeping commits: {WORKER_DURABILITY[backend]})"
                )
        finally:
            drop_database(url)
            tmp.cleanup()


if __name__ == "__main__":
    main()
