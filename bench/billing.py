"""Billing actions applied per second through the worker, against the Stripe sandbox.

    python bench/billing.py [--latency-ms 0,300] [--workers 1,4] [--slots 1,4]
                            [--backend postgres|sqlite] [--seconds 20]

Half the actions are accepted discount offers (4 Stripe calls: read, coupon check, write,
read back), half cancels at period end (3 calls). Each run: fresh database, sandbox reset,
the sessions and their outbox jobs written first, then ``workers`` worker processes with
``slots`` threads each drain them while the sandbox adds ``latency`` to every API request.
The rate is actions / (last action finished - first action started), from the action rows.
The sandbox runs in its own process; PostgreSQL is 127.0.0.1:5432 (user postgres), in a
database the benchmark creates and drops.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import secrets
import tempfile
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

from _support import create_database, drop_database
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
from stayflow.sandbox import Sandbox
from stayflow.settings import Settings

SECRET = "bench-" + "k" * 40


def _settings(url: str, api_base: str) -> Settings:
    return Settings(database_url=url, secret_key=SECRET, stripe_api_base=api_base, log_json=False)


def _prepare(
    factory: sessionmaker[Session], sandbox: Sandbox, actions: int
) -> tuple[int, list[str]]:
    """An app connected to the sandbox, ``actions`` subscriptions, a session + job for each."""
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
    url: str, sandbox: Sandbox, latency_ms: int, workers: int, slots: int, actions: int
) -> float:
    settings = _settings(url, sandbox.url)
    engine = make_engine(settings)
    with engine.begin() as conn:
        for table in ("billing_events", "billing_actions", "jobs", "cancel_sessions"):
            conn.execute(text(f"DELETE FROM {table}"))
    factory = make_session_factory(engine)
    sandbox.reset()
    _prepare(factory, sandbox, actions)
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--latency-ms", default="0,300")
    parser.add_argument("--workers", default="1,4")
    parser.add_argument("--slots", default="1,4", help="threads per worker process")
    parser.add_argument("--backend", default="postgres", choices=["postgres", "sqlite"])
    parser.add_argument(
        "--seconds", type=float, default=15, help="rough length of each run with latency"
    )
    args = parser.parse_args()
    tmp = tempfile.TemporaryDirectory()
    url = create_database(args.backend, Path(tmp.name))
    print(f"backend={args.backend} cores={mp.cpu_count()} (sandbox in its own process)")
    print(f"{'latency':>8} {'workers':>7} {'slots':>5} {'actions':>7} {'actions/s':>10}")
    try:
        engine = make_engine(Settings(database_url=url, secret_key=SECRET))
        migrate(engine)
        engine.dispose()
        with Sandbox.start(subprocess=True) as sandbox:
            for latency in (int(x) for x in args.latency_ms.split(",")):
                for workers in (int(x) for x in args.workers.split(",")):
                    for slots in (int(x) for x in args.slots.split(",")):
                        total = workers * slots
                        # ~3.5 calls per action; size each run to last about --seconds.
                        per_slot = args.seconds / (3.5 * max(latency, 5) / 1000)
                        actions = int(min(600, max(8 * total, per_slot * total)))
                        rate = run(url, sandbox, latency, workers, slots, actions)
                        print(
                            f"{latency:>6}ms {workers:>7} {slots:>5} {actions:>7} {rate:>10.1f}",
                            flush=True,
                        )
    finally:
        drop_database(url)
        tmp.cleanup()


if __name__ == "__main__":
    main()
