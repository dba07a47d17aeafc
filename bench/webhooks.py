"""Outbound webhooks: 10,000 events to 10 endpoints, one slow (2 s) and one down.

    python bench/webhooks.py [--events 10000] [--rate 250] [--backend sqlite|postgres]
                             [--concurrency 4] [--lane-concurrency 32] [--batch-size 1]
                             [--poll 0.05]

Two phases in one run, each with fresh apps and endpoints and receivers on 127.0.0.1:
  1. "without bad": 8 healthy endpoints only, receiving the same per-endpoint rate;
  2. "with bad": the 8 healthy endpoints plus one answering after 2 s and one down
     (nothing listens on its port): ``--events`` events, round-robin over the 10 endpoints.
Each endpoint belongs to its own app, so each event goes to exactly one endpoint. Events are
emitted at ``--rate`` events/s (phase 1 at 8/10 of it), those due every 20 ms in one
transaction, and delivered by an in-process job Worker (deliveries run in its lane, each
endpoint's job on its own thread, up to --lane-concurrency). The delay of a delivery is the
receiver's clock at arrival minus the emitter's clock just before the event's commit.
Deliveries/s counts every delivery received (slow endpoint included) over the phase.

Prints deliveries/s overall and the healthy endpoints' p50/p99 delay in both phases, and
their ratio (goal: with-bad p99 within 1.2x of without-bad), and the machine's load.
Run it at a rate the first phase sustains (about half its ceiling): above it both phases
queue without bound and the delays measure the backlog, not the isolation.
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

from stayflow.apps import service as apps_service
from stayflow.crypto import Encryptor
from stayflow.db import make_engine, make_session_factory, migrate, transaction
from stayflow.events import service as events_service
from stayflow.jobs.worker import Worker
from stayflow.settings import Settings
from stayflow.webhooks import service as webhooks_service
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


def phase(factory: Any, events: int, rate: float, bad: bool, timeout: float) -> dict[str, Any]:
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
            created = apps_service.create_app(db, ENCRYPTOR, f"bench-{bad}-{index}")
            webhooks_service.create(
                db, ENCRYPTOR, created.app.id, EndpointCreate(url=url), allow_private=True
            )
            app_pks.append(created.app.id)
    healthy = 8
    started = time.time()
    n = 0
    while n < events:
        # Every TICK, the events due by now, in one transaction (as many concurrent requests
        # would write them); each is stamped just before the commit.
        due = min(events, int((time.time() - started) * rate) + 1)
        if due > n:
            with transaction(factory) as db:
                stamp = time.time()
                for i in range(n, due):
                    events_service.emit_event(
                        db, app_pks[i % len(app_pks)], "session.deflected", {"n": i, "t": stamp}
                    )
            n = due
        time.sleep(TICK)
    emitted = time.time()
    expected = sum(1 for n in range(events) if n % len(app_pks) < healthy)
    deadline = time.time() + timeout
    while time.time() < deadline:
        if sum(len(s.arrivals) for s in sinks[:healthy]) >= expected:
            break
        time.sleep(0.2)
    finished = time.time()
    delays = [
        arrived - sent for s in sinks[:healthy] for sent, arrived in list(s.arrivals.values())
    ]
    delivered = sum(len(s.arrivals) for s in sinks)
    for sink in sinks:
        sink.stop()
    return {
        "events": events,
        "healthy_expected": expected,
        "healthy_delivered": len(delays),
        "slow_delivered": len(slow.arrivals) if bad else 0,
        "deliveries_per_s": delivered / (finished - started),
        "emit_rate": events / (emitted - started),
        "p50_ms": pct(delays, 0.50) * 1000,
        "p99_ms": pct(delays, 0.99) * 1000,
        "mean_ms": statistics.fmean(delays) * 1000 if delays else float("nan"),
    }


def load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f}, {five:.2f}, {fifteen:.2f} on {os.cpu_count()} cpus"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=10_000)
    parser.add_argument("--rate", type=float, default=250.0)
    parser.add_argument("--backend", default="sqlite", choices=["sqlite", "postgres"])
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--lane-concurrency", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=1)
    parser.add_argument("--poll", type=float, default=0.05)
    parser.add_argument("--timeout", type=float, default=120.0)
    args = parser.parse_args()
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
            loads = [load()]
            try:
                clean = phase(factory, args.events * 8 // 10, args.rate * 0.8, False, args.timeout)
                loads.append(load())
                dirty = phase(factory, args.events, args.rate, True, args.timeout)
                loads.append(load())
            finally:
                worker.stop(timeout=5)
                engine.dispose()
        finally:
            drop_database(url)
    print(
        f"backend={args.backend} worker concurrency={args.concurrency} "
        f"lane concurrency={args.lane_concurrency} batch={args.batch_size} poll={args.poll}s "
        f"rate={args.rate:.0f} events/s (phase 1 at {args.rate * 0.8:.0f})"
    )
    print("machine: " + " | ".join(loads) + " (start | after phase 1 | after phase 2)")
    for name, result in (("without bad endpoints", clean), ("with slow+down endpoints", dirty)):
        print(
            f"{name:26s} events={result['events']:6d} healthy delivered="
            f"{result['healthy_delivered']}/{result['healthy_expected']} "
            f"emitted/s={result['emit_rate']:6.1f} "
            f"deliveries/s={result['deliveries_per_s']:7.1f} "
            f"healthy p50={result['p50_ms']:7.1f} ms p99={result['p99_ms']:7.1f} ms "
            f"mean={result['mean_ms']:7.1f} ms"
        )
    print(f"slow endpoint delivered {dirty['slow_delivered']} (2 s each, in order)")
    print(f"healthy p99 ratio with/without bad endpoints: {dirty['p99_ms'] / clean['p99_ms']:.2f}x")


if __name__ == "__main__":
    main()
