"""Attribution sync: Stripe requests and duration, events-first vs a naive per-subscription sync.

    python bench/attribution.py [--saves 10000] [--changed-percent 1] [--backend sqlite|postgres]

Builds, in the Stripe sandbox (run in this process so every API request is counted at the
sandbox itself), ``--saves`` subscriptions (a customer and a 20 USD monthly price each, on a
60-day trial so no card is needed), and as many saved cancel sessions in a fresh database
(watch list of one connected app). A first sync loads the mirror (a full list: the cursor is
set older than Stripe's 30-day event retention). Then ``--changed-percent`` of the
subscriptions change in Stripe (``cancel_at_period_end``) with no webhooks delivered, and:

- the events sync runs (``GET /v1/events`` since the cursor, then judging what changed);
- the same sync runs again with nothing changed;
- a naive sync retrieves every watched subscription (``GET /v1/subscriptions/{id}``),
  bounded by ``--naive-max-seconds`` (the rate is then extrapolated to all, and says so).

Goal: at most 1 + changed/100 + pages requests (about 3 for 10,000 saves at 1 %), and the
unchanged sync under a second. The sandbox shares this process's interpreter, so durations
include its serving time too; compare the ratios within one run.
"""

from __future__ import annotations

import argparse
import secrets
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from _support import create_database, drop_database
from sqlalchemy import insert

from stayflow.apps import service as apps_service
from stayflow.attribution import repository, sync
from stayflow.billing import repository as billing_repository
from stayflow.billing import service as billing_service
from stayflow.cancel_sessions.models import CancelSession
from stayflow.crypto import Encryptor
from stayflow.db import make_engine, make_session_factory, migrate, transaction
from stayflow.sandbox import Sandbox
from stayflow.settings import Settings

SECRET = "bench-attribution-" + "k" * 32


class Counter:
    """Counts the Stripe API requests the in-process sandbox receives."""

    def __init__(self, sandbox: Sandbox) -> None:
        assert sandbox.app is not None
        self.app = sandbox.app
        self.requests: list[str] = []
        self.seconds = 0.0  # spent by the sandbox answering (it shares this interpreter)
        prepare_original, execute_original = self.app.prepare, self.app.execute

        def prepare(method: str, target: str, headers: dict[str, str], body: bytes) -> Any:
            if target.startswith("/v1/"):
                self.requests.append(f"{method} {target.partition('?')[0]}")
            start = time.perf_counter()
            try:
                return prepare_original(method, target, headers, body)
            finally:
                self.seconds += time.perf_counter() - start

        def execute(prepared: Any) -> Any:
            start = time.perf_counter()
            try:
                return execute_original(prepared)
            finally:
                self.seconds += time.perf_counter() - start

        self.app.prepare = prepare  # type: ignore[method-assign]
        self.app.execute = execute  # type: ignore[method-assign]

    def take(self) -> list[str]:
        found, self.requests, self.seconds = self.requests, [], 0.0
        return found


class StoreTimer:
    """Time spent in the mirror's ``store_subscriptions`` (the sync calls it through the
    ``mirror_service`` module, so wrapping that attribute times every call)."""

    def __init__(self) -> None:
        self.seconds = 0.0
        original = sync.mirror_service.store_subscriptions

        def timed(*args: Any, **kwargs: Any) -> int:
            start = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                self.seconds += time.perf_counter() - start

        sync.mirror_service.store_subscriptions = timed  # type: ignore[assignment]

    def take(self) -> float:
        found, self.seconds = self.seconds, 0.0
        return found


def call(sandbox: Sandbox, method: str, path: str, params: dict[str, Any]) -> dict[str, Any]:
    """One Stripe request handled in process (setup only: fast, not counted as a sync's)."""
    import json

    assert sandbox.app is not None
    headers = {
        "authorization": f"Bearer {sandbox.secret_key}",
        "content-type": "application/x-www-form-urlencoded",
    }
    response = sandbox.app.handle(method, path, headers, urlencode(params).encode())
    body: dict[str, Any] = json.loads(response.body)
    if response.status >= 400:
        raise SystemExit(f"sandbox refused {method} {path}: {body}")
    return body


def build(sandbox: Sandbox, count: int) -> list[str]:
    price = call(
        sandbox,
        "POST",
        "/v1/prices",
        {
            "currency": "usd",
            "unit_amount": 2000,
            "recurring[interval]": "month",
            "product_data[name]": "Pro",
        },
    )
    ids: list[str] = []
    for _ in range(count):
        customer = call(sandbox, "POST", "/v1/customers", {})
        sub = call(
            sandbox,
            "POST",
            "/v1/subscriptions",
            {"customer": customer["id"], "items[0][price]": price["id"], "trial_period_days": 60},
        )
        ids.append(sub["id"])
    return ids


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--saves", type=int, default=10_000)
    parser.add_argument("--changed-percent", type=float, default=1.0)
    parser.add_argument("--backend", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--naive-max-seconds", type=float, default=120.0)
    args = parser.parse_args()
    if not 1 <= args.saves <= 100_000 or not 0 <= args.changed_percent <= 100:
        raise SystemExit("--saves is 1..100000 and --changed-percent 0..100")

    with tempfile.TemporaryDirectory() as tmp, Sandbox.start() as sandbox:
        url = create_database(args.backend, Path(tmp))
        try:
            return run(args, url, sandbox)
        finally:
            drop_database(url)


def run(args: argparse.Namespace, url: str, sandbox: Sandbox) -> int:
    settings = Settings(database_url=url, secret_key=SECRET, stripe_api_base=sandbox.url)
    engine = make_engine(settings)
    migrate(engine)
    factory = make_session_factory(engine)
    encryptor = Encryptor(SECRET)
    t0 = time.perf_counter()
    ids = build(sandbox, args.saves)
    print(f"setup: {len(ids)} subscriptions in the sandbox in {time.perf_counter() - t0:.1f} s")

    now = datetime.fromtimestamp(sandbox.now(), UTC)
    sandbox.advance_clock(60)  # the sessions were a minute ago
    with transaction(factory) as db:
        created = apps_service.create_app(db, encryptor, "bench")
        app_pk = created.app.id
        conn = billing_repository.get_or_create_connection(db, created.app)
        conn.api_key_encrypted = encryptor.encrypt(sandbox.secret_key)
        conn.connected_at = now
        db.execute(
            insert(CancelSession),
            [
                {
                    "session_id": "cs_" + secrets.token_hex(12),
                    "app_pk": app_pk,
                    "token_hash": secrets.token_hex(32),
                    "subscription_id": sub_id,
                    "signed": True,
                    "request_fields": {},
                    "enriched_fields": {},
                    "save_return_url": "https://app.example.com/a",
                    "cancel_confirmation_url": "https://app.example.com/b",
                    "flow": {},
                    "offers_shown": [],
                    "outcome": "deflected",
                    "created_at": now,
                    "outcome_at": now,
                    "expires_at": now + timedelta(hours=1),
                    "abandon_at": now + timedelta(hours=1),
                }
                for sub_id in ids
            ],
        )
        # The mirror is loaded by a full list: make the cursor older than event retention.
        state = repository.get_or_create_state(db, app_pk)
        state.events_cursor = int(now.timestamp()) - 31 * 86_400

    provider = billing_service.make_provider(settings, sandbox.secret_key, timeout=30, retries=0)
    counter = Counter(sandbox)
    storing = StoreTimer()

    def timed_sync(label: str) -> tuple[int, float, sync.SyncResult]:
        counter.take()
        start = time.perf_counter()
        with transaction(factory) as db:
            result = sync.sync(db, app_pk, provider, datetime.fromtimestamp(sandbox.now(), UTC))
        seconds = time.perf_counter() - start
        in_sandbox = counter.seconds
        made = counter.take()
        stored = storing.take()
        print(
            f"{label}: {len(made)} Stripe requests (at the sandbox), {seconds:.3f} s "
            f"({in_sandbox:.3f} s of it the sandbox answering, {seconds - in_sandbox:.3f} s "
            f"stayflow, of which {stored:.3f} s storing subscriptions in the mirror); mode "
            f"{result.mode}, {result.events} events, {result.judged} judged, "
            f"{result.changed} status changes"
        )
        return len(made), seconds, result

    timed_sync("first sync (full list, loads the mirror)")

    changed = int(len(ids) * args.changed_percent / 100)
    sandbox.advance_clock(60)
    for sub_id in ids[:changed]:
        call(sandbox, "POST", f"/v1/subscriptions/{sub_id}", {"cancel_at_period_end": "true"})
    counter.take()
    sandbox.advance_clock(60)
    requests, seconds, _ = timed_sync(f"events sync, {changed} changed ({args.changed_percent}%)")
    pages = max(1, -(-changed // 100))
    goal = 1 + changed // 100 + pages
    unchanged_requests, unchanged_seconds, _ = timed_sync("events sync, nothing changed")

    counter.take()
    start = time.perf_counter()
    done = 0
    for sub_id in ids:
        provider.retrieve_subscription(sub_id)
        done += 1
        if time.perf_counter() - start > args.naive_max_seconds:
            break
    naive_seconds = time.perf_counter() - start
    naive_requests = len(counter.take())
    if done < len(ids):
        estimate = naive_seconds * len(ids) / done
        print(
            f"naive sync (retrieve every watched subscription): stopped after {done} of "
            f"{len(ids)} in {naive_seconds:.1f} s; {len(ids)} requests, ~{estimate:.0f} s "
            "extrapolated"
        )
        naive_seconds = estimate
    else:
        print(
            f"naive sync (retrieve every watched subscription): {naive_requests} Stripe "
            f"requests, {naive_seconds:.1f} s"
        )
    print(
        f"summary: events sync {requests} requests (goal <= {goal}) in {seconds:.3f} s vs naive "
        f"{len(ids)} requests in {naive_seconds:.1f} s ({naive_seconds / max(seconds, 1e-9):.0f}x);"
        f" unchanged sync {unchanged_requests} request(s) in {unchanged_seconds:.3f} s "
        f"(goal < 1 s)"
    )
    engine.dispose()
    return 0


if __name__ == "__main__":
    sys.exit(main())
