"""Outbound webhooks: 10,000 events to 10 endpoints, one slow (2 s) and one down.

    python bench/webhooks.py [--events 10000] [--rate 60] [--rounds 5]
                             [--backend sqlite|postgres] [--concurrency 4]
                             [--lane-concurrency 32] [--batch-size 1] [--poll 0.05]

Two sides in one run, each with fresh apps and endpoints and receivers on 127.0.0.1:
  - "without bad": 8 healthy endpoints only, receiving the same per-endpoint rate;
  - "with bad": the 8 healthy endpoints plus one answering after 2 s and one down
    (nothing listens on its port): ``--events`` events in all, round-robin over the 10.
The sides alternate in ``--rounds`` rounds (without, with, without, with, ...), each
round a ``1/rounds`` share of the events, so a change in the machine's load during the
run (the machine is shared) falls on both sides alike; the bad endpoints of a round are
disabled when it ends, so no round inherits another's. Each endpoint belongs to its own
app, so each event goes to exactly one endpoint. Events are emitted at ``--rate``
events/s (the "without" side at 8/10 of it, the same per endpoint), those due every
20 ms in one transaction, and delivered by an in-process job Worker (deliveries run in
its lane, each endpoint's job on its own thread, up to --lane-concurrency).

The delay of a delivery is the receiver's clock at arrival minus the emitter's clock just
before the event's transaction writes it (so it includes that transaction's commit); the
delay from the end of that commit is printed beside it. Deliveries/s counts every
delivery received (slow endpoint included) over the "with bad" rounds' time.

``--control`` runs the second side without bad endpoints too: the ratio two identical sides
give is the measurement's noise on that machine.

Prints deliveries/s, the healthy endpoints' p50/p99 delay on both sides, their ratio
(goal: with-bad p99 within 1.2x of without-bad), each round's p99s, and the machine's
load. Run it at a rate the healthy endpoints sustain with room to spare (the default,
60 events/s, is about a third of the "without" side's ceiling on PostgreSQL on a busy
2-core machine, a quarter of SQLite's; find it with a high ``--rate`` and ``--rounds 1``):
near or above the ceiling both sides queue and the delays measure the backlog, not the
isolation.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from _support import create_database, drop_database, free_port
from sqlalchemy import update

from stayflow.apps import service as apps_service
from stayflow.crypto import Encryptor
from stayflow.db import make_engine, make_session_factory, migrate, transaction
from stayflow.events import service as events_service
from stayflow.jobs.worker import Worker
from stayflow.settings import Settings
from stayflow.webhooks import service as webhooks_service
from stayflow.webhooks.models import WebhookEndpoint
from stayflow.webhooks.schemas import EndpointCreate

SECRET = "bench-" + "k" * 40
ENCRYPTOR = Encryptor(SECRET)
TICK = 0.02


@dataclass
class Sink:
    """A receiver: records (emitted, received) per event; ``delay`` before answering."""

    delay: float = 0.0
    arrivals: dict[str, tuple[float, float]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)
    server: ThreadingHTTPServer | None = None

    def start(self) -> str:
        sink = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                arrived = time.time()
                if sink.delay:
                    time.sleep(sink.delay)
                sent = json.loads(body)["data"]["t"]
                with sink.lock:
                    sink.arrivals.setdefault(self.headers["webhook-id"], (sent, arrived))
                self.send_response(200)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


@dataclass
class Round:
    """One round of one side: what its healthy endpoints received, and when."""

    bad: bool
    events: int
    healthy_expected: int
    delays: list[float]  # arrival - stamp taken before the event's transaction
    after_commit: list[float]  # arrival - end of that transaction's commit
    delivered: int  # every delivery received, slow endpoint included
    slow_delivered: int
    seconds: float
    emit_rate: float


def run_round(factory: Any, events: int, rate: float, bad: bool, timeout: float) -> Round:
    sinks = [Sink() for _ in range(8)]
    urls = [s.start() for s in sinks]
    slow = Sink(delay=2.0)
    if bad:
        sinks.append(slow)
        urls.append(slow.start())
        urls.append(f"http://127.0.0.1:{free_port()}/down")
    app_pks = []
    with transaction(factory) as db:
        for index, url in enumerate(urls):
            created = apps_service.create_app(db, ENCRYPTOR, f"bench-{bad}-{index}-{free_port()}")
            webhooks_service.create(
                db, ENCRYPTOR, created.app.id, EndpointCreate(url=url), allow_private=True
            )
            app_pks.append(created.app.id)
    healthy = 8
    committed: dict[float, float] = {}  # stamp -> end of its commit
    started = time.time()
    n = 0
    while n < events:
        # Every TICK, the events due by now, in one transaction (as many concurrent requests
        # would write them); each is stamped just before the transaction writes it.
        due = min(events, int((time.time() - started) * rate) + 1)
        if due > n:
            with transaction(factory) as db:
                stamp = time.time()
                for i in range(n, due):
                    events_service.emit_event(
                        db, app_pks[i % len(app_pks)], "session.deflected", {"n": i, "t": stamp}
                    )
            committed[stamp] = time.time()
            n = due
        time.sleep(TICK)
    emitted = time.time()
    expected = sum(1 for n in range(events) if n % len(app_pks) < healthy)
    deadline = time.time() + timeout
    while time.time() < deadline:
        if sum(len(s.arrivals) for s in sinks[:healthy]) >= expected:
            break
        time.sleep(0.05)
    finished = time.time()
    if bad:
        # The bad endpoints end with their round: a later round inherits no backlog of theirs.
        with transaction(factory) as db:
            db.execute(
                update(WebhookEndpoint)
                .where(WebhookEndpoint.app_pk.in_(app_pks[healthy:]))
                .values(enabled=False)
            )
    arrivals = [pair for s in sinks[:healthy] for pair in list(s.arrivals.values())]
    result = Round(
        bad=bad,
        events=events,
        healthy_expected=expected,
        delays=[arrived - sent for sent, arrived in arrivals],
        after_commit=[arrived - committed.get(sent, sent) for sent, arrived in arrivals],
        delivered=sum(len(s.arrivals) for s in sinks),
        slow_delivered=len(slow.arrivals) if bad else 0,
        seconds=finished - started,
        emit_rate=events / (emitted - started),
    )
    for sink in sinks:
        sink.stop()
    return result


def load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f}, {five:.2f}, {fifteen:.2f}"


def summary(name: str, rounds: list[Round]) -> dict[str, float]:
    delays = [d for r in rounds for d in r.delays]
    after_commit = [d for r in rounds for d in r.after_commit]
    seconds = sum(r.seconds for r in rounds)
    emitted = sum(r.events for r in rounds)
    found = {
        "p50": pct(delays, 0.50) * 1000,
        "p99": pct(delays, 0.99) * 1000,
        "c50": pct(after_commit, 0.50) * 1000,
        "c99": pct(after_commit, 0.99) * 1000,
    }
    print(
        f"{name:26s} events={emitted:6d} healthy delivered="
        f"{len(delays)}/{sum(r.healthy_expected for r in rounds)} "
        f"emitted/s={emitted / sum(r.events / r.emit_rate for r in rounds):6.1f} "
        f"deliveries/s={sum(r.delivered for r in rounds) / seconds:6.1f}\n"
        f"{'':26s} healthy p50={found['p50']:6.1f} ms p99={found['p99']:6.1f} ms "
        f"mean={statistics.fmean(delays) * 1000 if delays else float('nan'):6.1f} ms | "
        f"from the commit: p50={found['c50']:6.1f} ms p99={found['c99']:6.1f} ms"
    )
    return found


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=10_000)
    parser.add_argument("--rate", type=float, default=60.0)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--backend", default="sqlite", choices=["sqlite", "postgres"])
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--lane-concurrency", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=1)
    parser.add_argument("--poll", type=float, default=0.05)
    parser.add_argument("--timeout", type=float, default=120.0)
    parser.add_argument(
        "--control",
        action="store_true",
        help="no bad endpoints on either side: the ratio two identical sides give (the noise)",
    )
    args = parser.parse_args()
    if args.rounds < 1 or args.events < 10 * args.rounds:
        parser.error("--rounds must be at least 1, with at least 10 events per round")
    per_round = args.events // args.rounds
    clean_rounds: list[Round] = []
    dirty_rounds: list[Round] = []
    loads = [load()]
    with tempfile.TemporaryDirectory() as folder:
        url = create_database(args.backend, Path(folder), "stayflow_bench_webhooks")
        try:
            settings = Settings(
                database_url=url, secret_key=SECRET, webhooks_allow_private=True, log_json=False
            )
            engine = make_engine(settings)
            migrate(engine)
            factory = make_session_factory(engine)
            worker = Worker(
                factory,
                concurrency=args.concurrency,
                lane_concurrency=args.lane_concurrency,
                batch_size=args.batch_size,
                poll_interval=args.poll,
                services={"settings": settings, "encryptor": ENCRYPTOR},
            )
            worker.start()
            try:
                for index in range(args.rounds):
                    events = (
                        per_round if index < args.rounds - 1 else args.events - per_round * index
                    )
                    clean_rounds.append(
                        run_round(factory, events * 8 // 10, args.rate * 0.8, False, args.timeout)
                    )
                    dirty_rounds.append(
                        run_round(factory, events * 8 // 10, args.rate * 0.8, False, args.timeout)
                        if args.control
                        else run_round(factory, events, args.rate, True, args.timeout)
                    )
                    loads.append(load())
            finally:
                worker.stop(timeout=5)
                engine.dispose()
        finally:
            drop_database(url)
    print(
        f"backend={args.backend} worker concurrency={args.concurrency} "
        f"lane concurrency={args.lane_concurrency} batch={args.batch_size} poll={args.poll}s"
    )
    print(
        f"rate={args.rate:.0f} events/s with the bad endpoints, {args.rate * 0.8:.0f} without "
        f"(the same {args.rate / 10:.0f}/s per endpoint); {args.rounds} rounds, alternating"
    )
    print(f"machine ({os.cpu_count()} cpus), load average at start and after each round:")
    print("  " + " | ".join(loads))
    clean = summary("without bad endpoints", clean_rounds)
    dirty = summary(
        "control: again without" if args.control else "with slow+down endpoints", dirty_rounds
    )
    slow = sum(r.slow_delivered for r in dirty_rounds)
    if not args.control:
        print(f"slow endpoint delivered {slow} (2 s each, in order); the down one none")
    print(
        f"per round, healthy p99 {'first | second' if args.control else 'without | with'} (ms): "
        + ", ".join(
            f"{pct(c.delays, 0.99) * 1000:.0f} | {pct(d.delays, 0.99) * 1000:.0f}"
            for c, d in zip(clean_rounds, dirty_rounds, strict=True)
        )
    )
    print(
        f"healthy p99 ratio with/without bad endpoints: {dirty['p99'] / clean['p99']:.2f}x "
        f"(from the commit: {dirty['c99'] / clean['c99']:.2f}x; p50 ratio "
        f"{dirty['p50'] / clean['p50']:.2f}x)"
    )


if __name__ == "__main__":
    main()
