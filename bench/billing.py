"""Billing actions against the Stripe sandbox: the subscriber's wait, and actions per second.

    python bench/billing.py [--mode serve,throughput] [--accepts 200] [--serve-latency-ms 300]
                            [--latency-ms 300] [--workers 4] [--slots 4]
                            [--backend sqlite|postgres] [--serve-backend sqlite|postgres]

``serve``: the default ``stayflow serve`` (one process, in-process worker) on 127.0.0.1,
connected to the sandbox through the connect API (so the sandbox's webhooks keep the mirror
fresh, as in production), with a 20%-off-for-3-months discount offer. One subscriber at a
time: precancel and the page load (untimed), then the form POST accepting the offer, timed
until its answer. The sandbox adds ``--serve-latency-ms`` to every API request and counts
the requests it sees during each POST (a zero-second latency rule on ``/v1/*``). Prints
Stripe calls per accept, p50 / p99 of the wait, and how many answers were final (a redirect
to the business: applied) rather than the "processing" page.

``throughput``: the sessions and their outbox jobs written first, then ``workers`` worker
processes with ``slots`` threads each drain them while the sandbox adds ``latency`` to every
API request. Half the actions are accepted discount offers, half cancels at period end; run
once with the mirror fresh (webhooks feeding it, the normal case) and once without (every
action reads Stripe first). The rate is actions / (last finished - first started), from the
action rows. The sandbox runs in its own process; PostgreSQL is 127.0.0.1:5432 (user
postgres), in a database the benchmark creates and drops.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import multiprocessing as mp
import os
import re
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
from _support import (
    create_database,
    drop_database,
    free_port,
    start_server,
    stop_server,
    wait_http,
)
from sqlalchemy import func, select, text
from sqlalchemy.orm import Session, sessionmaker

from stayflow.apps import service as apps_service
from stayflow.apps.models import App
from stayflow.billing import repository as billing_repository
from stayflow.billing.actions.models import APPLIED, BillingAction
from stayflow.cancel_sessions import service as sessions
from stayflow.cancel_sessions.enrichment import NoEnrichment
from stayflow.cancel_sessions.models import CancelSession
from stayflow.cancel_sessions.settings import CancelFlowSettings
from stayflow.crypto import Encryptor
from stayflow.db import make_engine, make_session_factory, migrate, transaction, utcnow
from stayflow.flows import service as flows_service
from stayflow.jobs.worker import Worker
from stayflow.mirror.service import store_live
from stayflow.sandbox import Sandbox
from stayflow.settings import Settings

SECRET = "bench-" + "k" * 40


def _settings(url: str, api_base: str) -> Settings:
    return Settings(database_url=url, secret_key=SECRET, stripe_api_base=api_base, log_json=False)


def _prepare(
    factory: sessionmaker[Session], sandbox: Sandbox, actions: int, *, mirror: bool
) -> tuple[int, list[str]]:
    """An app connected to the sandbox, ``actions`` subscriptions, a session + job for each;
    with ``mirror``, the subscriptions are in a fresh mirror (as webhooks keep it)."""
    client = sandbox.client()
    customer = client.v1.customers.create({"payment_method": "pm_card_visa"})
    pm = client.v1.payment_methods.list({"customer": customer.id}).data[0]
    client.v1.customers.update(customer.id, {"invoice_settings": {"default_payment_method": pm.id}})
    price = client.v1.prices.create(
        {
            "currency": "usd",
            "unit_amount": 2000,
            "recurring": {"interval": "month"},
            "product_data": {"name": "Pro"},
        }
    )
    coupon = client.v1.coupons.create({"percent_off": 20, "duration": "forever"}).id
    encryptor = Encryptor(SECRET)
    with transaction(factory) as db:
        app = apps_service.create_app(db, encryptor, "bench").app
        conn = billing_repository.get_or_create_connection(db, app)
        conn.api_key_encrypted = encryptor.encrypt(sandbox.secret_key)
        conn.connected_at = utcnow()
        conn.setup = {"offers": True, "cancels": True, "cancel": {"at_period_end": True}}
        flows_service.apply(
            db,
            app,
            {
                "reasons": [{"id": "price", "label": "Too expensive", "feedback": "too_expensive"}],
                "offers": [{"id": "off", "type": "discount", "coupon": coupon}],
                "experiences": [{"id": "default", "reasons": ["price"], "offers": ["off"]}],
            },
        )
        app_pk = app.id
    subs = [
        client.v1.subscriptions.create({"customer": customer.id, "items": [{"price": price.id}]}).id
        for _ in range(actions)
    ]
    if mirror:
        raw_client = httpx.Client(
            base_url=sandbox.url, headers={"Authorization": f"Bearer {sandbox.secret_key}"}
        )
        with transaction(factory) as db:
            app_row = db.get(App, app_pk)
            assert app_row is not None
            conn = billing_repository.get_or_create_connection(db, app_row)
            conn.webhook_secret_encrypted = encryptor.encrypt("whsec_bench")
            conn.webhook_configured_at = utcnow() - timedelta(minutes=5)
            conn.last_event_at = utcnow()
            for sub_id in subs:
                store_live(db, app_pk, raw_client.get(f"/v1/subscriptions/{sub_id}").json())
        raw_client.close()
    for index, sub_id in enumerate(subs):
        with transaction(factory) as db:
            app_row = db.get(App, app_pk)
            assert app_row is not None
            now = utcnow()
            cs = CancelSession(
                session_id="cs_" + secrets.token_hex(12),
                app_pk=app_pk,
                token_hash=secrets.token_hex(32),
                subscription_id=sub_id,
                request_fields={},
                enriched_fields={},
                save_return_url="https://app.example.com/account",
                cancel_confirmation_url="https://app.example.com/bye",
                flow={},
                offers_shown=[],
                created_at=now,
                expires_at=now + timedelta(hours=1),
                abandon_at=now + timedelta(hours=1),
            )
            db.add(cs)
            db.flush()
            sessions.ensure_assigned(db, cs, app_row, NoEnrichment(), now)
            snap = sessions.snapshot(cs)
            if index % 2 == 0:
                sessions.accept_offer(db, cs, snap, "off", now)
            else:
                sessions.cancel(db, cs, snap, CancelFlowSettings(), "price", None, now)
    return app_pk, subs


def _work(url: str, api_base: str, slots: int, stop: Any) -> None:
    settings = _settings(url, api_base)
    engine = make_engine(settings)
    worker = Worker(
        make_session_factory(engine),
        concurrency=slots,
        batch_size=1,
        poll_interval=0.05,
        services={"settings": settings, "encryptor": Encryptor(SECRET)},
    )
    worker.start()
    stop.wait(900)
    worker.stop(timeout=30)
    engine.dispose()


def run(
    url: str,
    sandbox: Sandbox,
    latency_ms: int,
    workers: int,
    slots: int,
    actions: int,
    *,
    mirror: bool,
) -> float:
    settings = _settings(url, sandbox.url)
    engine = make_engine(settings)
    with engine.begin() as conn:
        for table in (
            "billing_events",
            "billing_actions",
            "jobs",
            "cancel_sessions",
            "mirror_subscriptions",
        ):
            conn.execute(text(f"DELETE FROM {table}"))
    factory = make_session_factory(engine)
    sandbox.reset()
    _prepare(factory, sandbox, actions, mirror=mirror)
    sandbox.set_latency(latency_ms)
    ctx = mp.get_context("fork")
    stop = ctx.Event()
    procs = [
        ctx.Process(target=_work, args=(url, sandbox.url, slots, stop)) for _ in range(workers)
    ]
    for proc in procs:
        proc.start()
    deadline = time.monotonic() + 900
    done = 0
    try:
        while time.monotonic() < deadline:
            with factory() as db:
                done = int(
                    db.scalar(
                        select(func.count())
                        .select_from(BillingAction)
                        .where(BillingAction.status == APPLIED)
                    )
                    or 0
                )
            if done >= actions:
                break
            time.sleep(0.2)
    finally:
        stop.set()
        for proc in procs:
            proc.join(60)
        sandbox.set_latency(0)
    with factory() as db:
        first, last = db.execute(
            select(func.min(BillingAction.created_at), func.max(BillingAction.finished_at))
        ).one()
    engine.dispose()
    if done < actions:
        raise SystemExit(f"only {done} of {actions} actions applied")
    return actions / max(1e-6, (last - first).total_seconds())


# --- serve: the subscriber's wait ----------------------------------------------------------

ORIGIN = "https://app.example.com"
SAVE_URL = f"{ORIGIN}/account"


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _hits(sandbox: Sandbox) -> dict[int, int]:
    return {int(r["id"]): int(r["hits"]) for r in sandbox.faults()["rules"]}


# What an accept may read or write besides its subscription (never touched in the background).
OFFER_PATHS = ("/v1/coupons/*", "/v1/promotion_codes/*", "/v1/prices/*", "/v1/customers/*")


def bench_serve(backend: str, sandbox: Sandbox, accepts: int, latency_ms: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        url = create_database(backend, Path(tmp))
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        env = {
            **os.environ,
            "STAYFLOW_DATABASE_URL": url,
            "STAYFLOW_SECRET_KEY": SECRET,
            "STAYFLOW_BASE_URL": base,
            "STAYFLOW_STRIPE_API_BASE": sandbox.url,
            "STAYFLOW_LOG_LEVEL": "WARNING",
        }
        cli = [sys.executable, "-m", "stayflow.cli.main"]
        sandbox.reset()
        server = start_server([*cli, "serve", "--host", "127.0.0.1", "--port", str(port)], env)
        try:
            wait_http(f"{base}/js/stayflow.js", timeout=60)
            made = subprocess.run(
                [*cli, "apps", "create", "bench", "--json"],
                env=env,
                capture_output=True,
                check=True,
            )
            app = json.loads(made.stdout)
            api = httpx.Client(
                base_url=base, headers={"Authorization": f"Bearer {app['api_key']}"}, timeout=60
            )
            api.patch(
                "/api/v1/cancel-flow/settings", json={"allowed_origins": [ORIGIN]}
            ).raise_for_status()
            api.put(
                "/api/v1/billing/stripe", json={"api_key": sandbox.secret_key}
            ).raise_for_status()
            api.put(
                "/api/v1/billing/stripe/setup", json={"offers": True, "cancels": True}
            ).raise_for_status()
            client = sandbox.client()
            coupon = client.v1.coupons.create(
                {"percent_off": 20, "duration": "repeating", "duration_in_months": 3}
            ).id
            api.put(
                "/api/v1/flows",
                json={
                    "reasons": [{"id": "price", "label": "Too expensive"}],
                    "offers": [{"id": "off", "type": "discount", "coupon": coupon}],
                    "experiences": [{"id": "default", "reasons": ["price"], "offers": ["off"]}],
                },
            ).raise_for_status()
            customer = client.v1.customers.create({"payment_method": "pm_card_visa"})
            pm = client.v1.payment_methods.list({"customer": customer.id}).data[0]
            client.v1.customers.update(
                customer.id, {"invoice_settings": {"default_payment_method": pm.id}}
            )
            price = client.v1.prices.create(
                {
                    "currency": "usd",
                    "unit_amount": 2000,
                    "recurring": {"interval": "month"},
                    "product_data": {"name": "Pro"},
                }
            ).id
            subs = [
                client.v1.subscriptions.create(
                    {"customer": customer.id, "items": [{"price": price}]}
                ).id
                for _ in range(accepts)
            ]
            # The sandbox's webhooks fill the mirror (bounded wait).
            deadline = time.monotonic() + 120
            engine = make_engine(Settings(database_url=url, secret_key=SECRET))
            mirrored = 0
            while time.monotonic() < deadline:
                with engine.connect() as conn:
                    mirrored = int(
                        conn.execute(text("SELECT count(*) FROM mirror_subscriptions")).scalar()
                        or 0
                    )
                if mirrored >= accepts:
                    break
                time.sleep(0.2)
            engine.dispose()
            sandbox.set_latency(latency_ms)
            # Counting rules (zero-second latency): every API request, and per accept the
            # paths only its own request touches (the in-process worker may meanwhile
            # refresh the mirror of an earlier subscription after its webhook).
            everything = sandbox.inject_fault("latency", seconds=0, times=None, path="/v1/*")
            offer_rules = [
                sandbox.inject_fault("latency", seconds=0, times=None, path=p) for p in OFFER_PATHS
            ]
            waits: list[float] = []
            calls: list[int] = []
            all_calls: list[int] = []
            final = processing = other = 0
            browser = httpx.Client(base_url=base, timeout=60, follow_redirects=False)
            for sub_id in subs:
                signature = hmac.new(
                    app["app_secret"].encode(), sub_id.encode(), hashlib.sha256
                ).hexdigest()
                opened = browser.post(
                    "/precancel",
                    json={
                        "app_id": app["app_id"],
                        "subscription_id": sub_id,
                        "auth_hash": signature,
                        "save_return_url": SAVE_URL,
                        "cancel_confirmation_url": f"{ORIGIN}/goodbye",
                    },
                    headers={"Origin": ORIGIN},
                )
                opened.raise_for_status()
                path = httpx.URL(opened.json()["url"]).path
                page = browser.get(path).text
                match = re.search(r'name="csrf_token" value="([^"]+)"', page)
                assert match is not None, "no csrf token on the page"
                browser.post(f"{path}/reason", data={"csrf_token": match[1], "reason_id": "price"})
                own = sandbox.inject_fault(
                    "latency", seconds=0, times=None, path=f"/v1/subscriptions/{sub_id}*"
                )
                before = _hits(sandbox)
                started = time.perf_counter()
                answer = browser.post(
                    f"{path}/accept", data={"csrf_token": match[1], "offer_id": "off"}
                )
                waits.append(time.perf_counter() - started)
                after = _hits(sandbox)
                calls.append(after.get(own, 0) + sum(after[r] - before[r] for r in offer_rules))
                all_calls.append(after[everything] - before[everything])
                if answer.status_code == 303 and answer.headers["location"] == SAVE_URL:
                    final += 1
                elif 'data-state="processing"' in answer.text:
                    processing += 1
                else:
                    other += 1
            sandbox.clear_faults()
            print(
                f"serve ({backend}, in-process worker, sandbox +{latency_ms} ms, mirror "
                f"{mirrored}/{accepts} fresh): {accepts} accepts, one subscriber at a time"
            )
            print(
                f"  Stripe calls per accept (counted at the sandbox during the POST): mean "
                f"{statistics.mean(calls):.2f}, max {max(calls)}; every API request during "
                f"the POSTs, background mirror refreshes included: mean "
                f"{statistics.mean(all_calls):.2f}"
            )
            print(
                f"  wait from the accept POST to its answer: p50 {_pct(waits, 0.5):.3f} s, "
                f"p99 {_pct(waits, 0.99):.3f} s, max {max(waits):.3f} s"
            )
            print(
                f"  final answers (redirect, applied): {final}/{accepts} = "
                f"{final / accepts:.1%}; processing {processing}; other {other}"
            )
        finally:
            sandbox.set_latency(0)
            stop_server(server)
            drop_database(url)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--mode", default="serve,throughput")
    parser.add_argument("--accepts", type=int, default=200)
    parser.add_argument("--serve-latency-ms", type=int, default=300)
    parser.add_argument("--serve-backend", default="sqlite", choices=["postgres", "sqlite"])
    parser.add_argument("--latency-ms", default="300")
    parser.add_argument("--workers", default="4")
    parser.add_argument("--slots", default="4", help="threads per worker process")
    parser.add_argument("--mirror", default="fresh,none", help="throughput runs: fresh, none")
    parser.add_argument("--backend", default="postgres", choices=["postgres", "sqlite"])
    parser.add_argument(
        "--seconds", type=float, default=15, help="rough length of each throughput run"
    )
    args = parser.parse_args()
    modes = set(args.mode.split(","))
    print(f"cores={mp.cpu_count()} (sandbox in its own process; everything shares the machine)")
    with Sandbox.start(subprocess=True) as sandbox:
        if "serve" in modes:
            bench_serve(args.serve_backend, sandbox, args.accepts, args.serve_latency_ms)
        if "throughput" in modes:
            throughput(args, sandbox)


def throughput(args: argparse.Namespace, sandbox: Sandbox) -> None:
    tmp = tempfile.TemporaryDirectory()
    url = create_database(args.backend, Path(tmp.name))
    print(f"throughput: backend={args.backend}")
    print(
        f"{'latency':>8} {'workers':>7} {'slots':>5} {'mirror':>6} {'actions':>7} {'actions/s':>10}"
    )
    try:
        engine = make_engine(Settings(database_url=url, secret_key=SECRET))
        migrate(engine)
        engine.dispose()
        for latency in (int(x) for x in args.latency_ms.split(",")):
            for workers in (int(x) for x in args.workers.split(",")):
                for slots in (int(x) for x in args.slots.split(",")):
                    for mirror in args.mirror.split(","):
                        total = workers * slots
                        # 1 call per action with a fresh mirror, 2 without.
                        calls = 1.0 if mirror == "fresh" else 2.0
                        per_slot = args.seconds / (calls * max(latency, 5) / 1000)
                        actions = int(min(600, max(8 * total, per_slot * total)))
                        rate = run(
                            url,
                            sandbox,
                            latency,
                            workers,
                            slots,
                            actions,
                            mirror=mirror == "fresh",
                        )
                        print(
                            f"{latency:>6}ms {workers:>7} {slots:>5} {mirror:>6} {actions:>7} "
                            f"{rate:>10.1f}",
                            flush=True,
                        )
    finally:
        drop_database(url)
        tmp.cleanup()


if __name__ == "__main__":
    main()
