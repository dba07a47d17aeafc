"""Opening a cancel session with Stripe enrichment: from a fresh mirror vs a live lookup.

    python bench/enrichment.py [--sessions 1000] [--latency-ms 300] [--backend sqlite|postgres]

Starts the Stripe sandbox (its own process) and `stayflow serve` (uvicorn, one process,
in-process worker) on 127.0.0.1 with a fresh database and three apps:

- ``none``:   not connected to Stripe, so enrichment is one database lookup, then defaults;
- ``mirror``: connected, its mirror backfilled (and its webhook endpoint registered), so
  enrichment reads the mirror;
- ``live``:   connected, mirror empty, every session for a subscription it has not seen, so
  enrichment makes one live retrieve (with expand) that also refreshes the mirror.

The sandbox answers every API request after ``--latency-ms`` (300 ms: a realistic Stripe
round trip) during the measured phases. One session = ``POST /precancel`` + the first
``GET /c/<token>`` (JSON), where enrichment runs; by default sessions run one after another
so the figures are latencies, not queueing (``--concurrency N`` runs N at a time).
1,000 sessions per phase by default: a p99 from fewer than a few hundred samples is one or
two outliers, not a percentile. Stripe calls are counted at the sandbox (every /v1 request
it receives during the phase, including any the server's worker makes afterwards), not
from stayflow's own report; the report (``enrichment.stripe_calls`` on each session) is
printed beside it as a cross-check. Goal: 0 Stripe calls and p99 under 2x of ``none`` when
the mirror is fresh.

Bounded in count (--sessions) and time (--max-seconds per phase); everything listens on
127.0.0.1 only.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from _support import create_database, drop_database, free_port, wait_http

from stayflow.sandbox import Sandbox

SECRET = "bench-enrichment-" + "k" * 32
ORIGIN = "https://app.example.com"
FLOWS = {
    "reasons": [{"id": "too_expensive", "label": "Too expensive", "feedback": "too_expensive"}],
    "offers": [{"id": "pause", "type": "pause", "duration": 1, "interval": "month", "reasons": []}],
    "audiences": [
        {
            "id": "annual",
            "rule": {"field": "subscription.plan.interval", "op": "equals", "value": "year"},
        }
    ],
    "experiences": [
        {
            "id": "annual_flow",
            "audience": "annual",
            "reasons": ["too_expensive"],
            "offers": ["pause"],
        },
        {"id": "default", "reasons": ["too_expensive"], "offers": ["pause"]},
    ],
}
MAPPINGS = [
    {"field": "plan_interval", "source": "subscription.plan.interval", "type": "text"},
    {"field": "price", "source": "subscription.plan.amount", "type": "money"},
    {"field": "renews_on", "source": "subscription.current_period_end", "type": "date"},
]


def stayflow(env: dict[str, str], *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "stayflow.cli.main", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    if done.returncode != 0:
        raise SystemExit(f"stayflow {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")
    return done.stdout


@dataclass
class Phase:
    name: str
    seconds: list[float] = field(default_factory=list)
    stripe_calls: list[int] = field(default_factory=list)  # as the app reports them
    sandbox_calls: int = 0  # as the sandbox received them
    sources: dict[str, int] = field(default_factory=dict)
    experiences: dict[str, int] = field(default_factory=dict)

    def pct(self, q: float) -> float:
        ordered = sorted(self.seconds)
        index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
        return ordered[index] * 1000

    def line(self) -> str:
        reported = statistics.fmean(self.stripe_calls) if self.stripe_calls else float("nan")
        return (
            f"{self.name:<8} n={len(self.seconds):<4} p50={self.pct(0.50):8.1f} ms  "
            f"p99={self.pct(0.99):8.1f} ms  Stripe calls at the sandbox={self.sandbox_calls} "
            f"({self.calls_per_session:4.2f}/session; app reports {reported:4.2f})  "
            f"source={self.sources}  experience={self.experiences}"
        )

    @property
    def calls_per_session(self) -> float:
        return self.sandbox_calls / len(self.seconds) if self.seconds else float("nan")


def make_subscriptions(sb: Sandbox, count: int) -> list[str]:
    client = sb.client()
    yearly = client.v1.prices.create(
        {
            "currency": "usd",
            "unit_amount": 12000,
            "recurring": {"interval": "year"},
            "product_data": {"name": "Annual"},
        }
    ).id
    monthly = client.v1.prices.create(
        {
            "currency": "usd",
            "unit_amount": 1200,
            "recurring": {"interval": "month"},
            "product_data": {"name": "Monthly"},
        }
    ).id
    customers = [client.v1.customers.create({"email": f"c{i}@example.com"}).id for i in range(20)]
    http = httpx.Client(base_url=sb.url, headers={"Authorization": f"Bearer {sb.secret_key}"})

    def make(i: int) -> str:
        answer = http.post(
            "/v1/subscriptions",
            data={
                "customer": customers[i % 20],
                "items[0][price]": yearly if i % 2 else monthly,
                "trial_period_days": "30",
            },
        )
        answer.raise_for_status()
        return str(answer.json()["id"])

    with ThreadPoolExecutor(4) as pool:
        ids = list(pool.map(make, range(count)))
    http.close()
    return ids


def sandbox_calls(sb: Sandbox, rule: int) -> int:
    """API requests the sandbox has received since the counting rule was added."""
    for found in sb.faults()["rules"]:
        if found["id"] == rule:
            return int(found["hits"])
    raise SystemExit("the sandbox's counting rule is gone")


def settled_calls(sb: Sandbox, rule: int, quiet_seconds: float = 1.0, limit: float = 15.0) -> int:
    """The count once no request has arrived for ``quiet_seconds`` (jobs the server ran after
    the phase are the phase's too); bounded by ``limit`` seconds."""
    deadline = time.monotonic() + limit
    last = sandbox_calls(sb, rule)
    while time.monotonic() < deadline:
        time.sleep(quiet_seconds)
        now = sandbox_calls(sb, rule)
        if now == last:
            return now
        last = now
    return last


def run_phase(
    name: str,
    api: httpx.Client,
    app: dict[str, str],
    subscriptions: list[str],
    max_seconds: float,
    concurrency: int = 1,
    counter: tuple[Sandbox, int] | None = None,
) -> Phase:
    phase = Phase(name)
    calls_before = settled_calls(*counter) if counter else 0
    session_ids: list[str] = []
    deadline = time.monotonic() + max_seconds

    def one(sub_id: str) -> tuple[float, str] | None:
        if time.monotonic() > deadline:
            return None
        auth = hmac.new(app["app_secret"].encode(), sub_id.encode(), hashlib.sha256).hexdigest()
        body = {
            "app_id": app["app_id"],
            "subscription_id": sub_id,
            "auth_hash": auth,
            "save_return_url": f"{ORIGIN}/account",
            "cancel_confirmation_url": f"{ORIGIN}/bye",
        }
        started = time.perf_counter()
        answer = api.post("/precancel", json=body, headers={"Origin": ORIGIN})
        answer.raise_for_status()
        token = answer.json()["url"].rsplit("/c/", 1)[1]
        page = api.get(f"/c/{token}", headers={"Accept": "application/json"})
        page.raise_for_status()
        return time.perf_counter() - started, str(page.json()["session_id"])

    with ThreadPoolExecutor(concurrency) as pool:
        for done in pool.map(one, subscriptions):
            if done is not None:
                phase.seconds.append(done[0])
                session_ids.append(done[1])
    if len(session_ids) < len(subscriptions):
        print(f"  {name}: stopped after {max_seconds}s", file=sys.stderr)
    if counter:
        phase.sandbox_calls = settled_calls(*counter) - calls_before
    headers = {"Authorization": f"Bearer {app['api_key']}"}
    for session_id in session_ids:
        record = api.get(f"/api/v1/cancel-sessions/{session_id}", headers=headers).json()
        fields = record["enriched_fields"]
        phase.stripe_calls.append(int(fields.get("enrichment.stripe_calls", 0)))
        source = str(fields.get("enrichment.source", "none"))
        phase.sources[source] = phase.sources.get(source, 0) + 1
        exp = str(record.get("experience_id"))
        phase.experiences[exp] = phase.experiences.get(exp, 0) + 1
    return phase


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sessions", type=int, default=1000, help="per phase (>= 1000 for a p99)")
    parser.add_argument("--latency-ms", type=float, default=300.0)
    parser.add_argument("--backend", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--max-seconds", type=float, default=900.0)
    parser.add_argument(
        "--concurrency", type=int, default=1, help="Sessions at once (1: pure latency)."
    )
    args = parser.parse_args()
    if not 1 <= args.sessions <= 5000:
        raise SystemExit("--sessions must be 1..5000")
    if not 1 <= args.concurrency <= 64:
        raise SystemExit("--concurrency must be 1..64")

    workdir = Path(tempfile.mkdtemp(prefix="stayflow-bench-enrichment-"))
    database_url = create_database(args.backend, workdir, "stayflow_bench_enrich")

    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    sandbox = Sandbox.start(subprocess=True)
    server: subprocess.Popen[bytes] | None = None
    try:
        env = {
            **os.environ,
            "STAYFLOW_DATABASE_URL": database_url,
            "STAYFLOW_SECRET_KEY": SECRET,
            "STAYFLOW_BASE_URL": base_url,
            "STAYFLOW_STRIPE_API_BASE": sandbox.url,
            "STAYFLOW_LOG_LEVEL": "WARNING",
        }
        stayflow(env, "migrate")
        apps = {
            name: json.loads(stayflow(env, "apps", "create", name, "--json"))
            for name in ("none", "mirror", "live")
        }
        print(f"sandbox {sandbox.url}; making {2 * args.sessions} subscriptions", file=sys.stderr)
        warm = 5
        subscriptions = make_subscriptions(sandbox, 2 * args.sessions + 2 * warm)
        mirror_subs = subscriptions[: args.sessions]
        live_subs = subscriptions[args.sessions : 2 * args.sessions]
        warm_mirror, warm_live = subscriptions[-2 * warm : -warm], subscriptions[-warm:]

        server = subprocess.Popen(
            [sys.executable, "-m", "stayflow.cli.main", "serve", "--port", str(port)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_http(f"{base_url}/healthz")
        api = httpx.Client(base_url=base_url, timeout=30)
        for name, app in apps.items():
            headers = {"Authorization": f"Bearer {app['api_key']}"}
            api.patch(
                "/api/v1/cancel-flow/settings", json={"allowed_origins": [ORIGIN]}, headers=headers
            ).raise_for_status()
            api.put("/api/v1/flows", json=FLOWS, headers=headers).raise_for_status()
            api.put(
                "/api/v1/field-mappings", json={"mappings": MAPPINGS}, headers=headers
            ).raise_for_status()
            if name != "none":
                api.put(
                    "/api/v1/billing/stripe", json={"api_key": sandbox.secret_key}, headers=headers
                ).raise_for_status()
        print("backfilling the mirror app", file=sys.stderr)
        stayflow(env, "stripe", "backfill", "--app", apps["mirror"]["app_id"])
        sandbox.set_latency(args.latency_ms)
        # A rule that matches every API request and does nothing but count it (zero delay).
        counter = (sandbox, sandbox.inject_fault("latency", seconds=0, path="/v1/*", times=None))

        # Warm up each path (imports, caches, connection pools); not measured.
        run_phase("warmup", api, apps["none"], warm_mirror, args.max_seconds)
        run_phase("warmup", api, apps["mirror"], warm_mirror, args.max_seconds)
        run_phase("warmup", api, apps["live"], warm_live, args.max_seconds)

        c = args.concurrency
        phases = [
            run_phase("none", api, apps["none"], mirror_subs, args.max_seconds, c, counter),
            run_phase("mirror", api, apps["mirror"], mirror_subs, args.max_seconds, c, counter),
            run_phase("live", api, apps["live"], live_subs, args.max_seconds, c, counter),
        ]
        sandbox.set_latency(0)
        print(
            f"\nenrichment at first page view, {args.backend}, sandbox latency "
            f"{args.latency_ms:.0f} ms, {args.concurrency} session(s) at a time "
            "(precancel + GET /c/<token>):"
        )
        for phase in phases:
            print("  " + phase.line())
        none, mirror, live = phases
        ratio = mirror.pct(0.99) / none.pct(0.99)
        print(
            f"\nmirror p99 / no-enrichment p99 = {ratio:.2f}x (goal < 2x); "
            f"mirror Stripe calls at the sandbox = {mirror.sandbox_calls} "
            f"({mirror.calls_per_session:.2f}/session, goal 0); "
            f"live p50 / mirror p50 = {live.pct(0.5) / mirror.pct(0.5):.1f}x"
        )
    finally:
        if server is not None:
            server.send_signal(signal.SIGTERM)
            try:
                server.wait(20)
            except subprocess.TimeoutExpired:
                server.kill()
        sandbox.stop()
        drop_database(database_url)


if __name__ == "__main__":
    main()
