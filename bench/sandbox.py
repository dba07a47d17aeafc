"""The Stripe sandbox beside localstripe 1.15.10, in the same run, both in their own processes
on 127.0.0.1, driven by the official SDK (requests, keep-alive).

    python bench/sandbox.py [--requests 1000] [--grow 10000] [--localstripe-grow 300]

1. subscription retrieve with expand (customer, items.data.plan.product), sequential and
   16-way concurrent (16 threads, one client each), on a small store, twice: through the
   official SDK (what stayflow does; the SDK's own cost is in the figure) and through a bare
   keep-alive ``http.client`` connection sending the same request (closer to what the server
   itself can do: the client costs less);
2. writes/s (subscription creates, bare client) as the store grows, per step;
3. the same retrieves once the store holds ``--grow`` subscriptions.

localstripe re-pickles its whole store on every write, so growing it to 10,000 takes a very
long time: by default it grows to ``--localstripe-grow`` (pass 10000 to match the sandbox).
Plans, not prices, are used because localstripe has no Price object.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import stripe

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from stayflow.sandbox import Sandbox
from tests.sandbox.localstripe_runner import LocalStripe

EXPAND = ["customer", "items.data.plan.product"]
EXPAND_QUERY = "expand[0]=customer&expand[1]=items.data.plan.product"
HEADERS = {"Authorization": "Bearer sk_test_bench"}
CONCURRENCY = 16


class Target:
    def __init__(self, name: str, url: str) -> None:
        self.name = name
        self.url = url
        self.subs: list[str] = []
        self.client = self.new_client()
        host, port = url.removeprefix("http://").split(":")
        self.raw = http.client.HTTPConnection(host, int(port), timeout=60)
        customer = self.client.v1.customers.create(
            {"email": "bench@example.com", "payment_method": "pm_card_visa"}
        )
        pm = self.client.v1.payment_methods.list({"customer": customer.id, "type": "card"})
        self.customer = self.client.v1.customers.update(
            customer.id, {"invoice_settings": {"default_payment_method": pm.data[0].id}}
        ).id
        product = self.client.v1.products.create({"name": "Bench"})
        self.client.v1.plans.create(
            {
                "id": "bench-monthly",
                "amount": 1500,
                "currency": "usd",
                "interval": "month",
                "product": product.id,
            }
        )

    def new_client(self) -> stripe.StripeClient:
        return stripe.StripeClient("sk_test_bench", base_addresses={"api": self.url})

    def create(self) -> None:
        self.raw.request(
            "POST",
            "/v1/subscriptions",
            body=f"customer={self.customer}&items[0][plan]=bench-monthly",
            headers={**HEADERS, "Content-Type": "application/x-www-form-urlencoded"},
        )
        answer = self.raw.getresponse()
        body = answer.read()
        if answer.status != 200:
            raise RuntimeError(f"{self.name}: {answer.status} {body[:200]!r}")
        self.subs.append(json.loads(body)["id"])


def timed(n: int, fn: Callable[[], object]) -> float:
    started = time.perf_counter()
    for _ in range(n):
        fn()
    return n / (time.perf_counter() - started)


def retriever(target: Target, mode: str) -> Callable[[str], object]:
    """One client's retrieve call: through the SDK or a bare HTTP client."""
    if mode == "sdk":
        client = target.new_client()
        return lambda sub_id: client.v1.subscriptions.retrieve(sub_id, {"expand": EXPAND})
    host, port = target.url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=60)

    def get(sub_id: str) -> object:
        conn.request("GET", f"/v1/subscriptions/{sub_id}?{EXPAND_QUERY}", headers=HEADERS)
        answer = conn.getresponse()
        body = answer.read()
        if answer.status != 200:
            raise RuntimeError(f"{target.name}: {answer.status} {body[:200]!r}")
        return body

    return get


def retrieve_sequential(target: Target, n: int, mode: str) -> float:
    rng = random.Random(1)
    call = retriever(target, mode)
    call(target.subs[0])  # open the connection before timing
    return timed(n, lambda: call(rng.choice(target.subs)))


def retrieve_concurrent(target: Target, n: int, mode: str) -> float:
    per_thread = max(1, n // CONCURRENCY)
    clients = [retriever(target, mode) for _ in range(CONCURRENCY)]
    for c in clients:  # open each connection before timing
        c(target.subs[0])
    errors: list[BaseException] = []
    barrier = threading.Barrier(CONCURRENCY + 1)

    def work(i: int) -> None:
        rng = random.Random(i)
        barrier.wait()
        try:
            for _ in range(per_thread):
                clients[i](rng.choice(target.subs))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(CONCURRENCY)]
    for t in threads:
        t.start()
    barrier.wait()
    started = time.perf_counter()
    for t in threads:
        t.join(600)
    elapsed = time.perf_counter() - started
    if errors:
        raise SystemExit(f"{target.name}: {errors[0]!r}")
    return per_thread * CONCURRENCY / elapsed


def grow(target: Target, size: int, step: int, budget: float) -> list[tuple[int, float]]:
    """Create subscriptions up to ``size``; writes/s for each step of ``step`` creates."""
    rates = []
    target.raw.close()  # reconnects on the next request (localstripe drops idle connections)
    deadline = time.monotonic() + budget
    while len(target.subs) < size and time.monotonic() < deadline:
        batch = min(step, size - len(target.subs))
        rate = timed(batch, target.create)
        rates.append((len(target.subs), rate))
    return rates


def row(label: str, ours: float, theirs: float | None) -> None:
    if theirs is None:
        print(f"{label:<44} {ours:>10.0f} {'-':>12} {'-':>7}")
    else:
        print(f"{label:<44} {ours:>10.0f} {theirs:>12.0f} {ours / theirs:>6.1f}x")


def both_retrieves(ours: Target, theirs: Target, n: int, size: str) -> None:
    print(f"{'retrieve+expand, ' + size:<44} {'sandbox':>10} {'localstripe':>12} {'ratio':>7}")
    for mode in ("sdk", "bare"):
        row(
            f"  {mode}, sequential (req/s)",
            retrieve_sequential(ours, n, mode),
            retrieve_sequential(theirs, n, mode),
        )
        row(
            f"  {mode}, {CONCURRENCY}-way (req/s)",
            retrieve_concurrent(ours, n, mode),
            retrieve_concurrent(theirs, n, mode),
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--seed-subs", type=int, default=100)
    parser.add_argument("--grow", type=int, default=10_000)
    parser.add_argument("--localstripe-grow", type=int, default=300)
    parser.add_argument("--step", type=int, default=1_000)
    parser.add_argument("--budget", type=float, default=900, help="seconds per store growth")
    args = parser.parse_args()
    print(f"cores={os.cpu_count()} requests={args.requests} concurrency={CONCURRENCY}")
    with Sandbox.start(subprocess=True) as sb, LocalStripe() as ls:
        ours, theirs = Target("sandbox", sb.url), Target("localstripe", ls.url)
        for t in (ours, theirs):
            grow(t, args.seed_subs, args.seed_subs, args.budget)
        both_retrieves(ours, theirs, args.requests, f"{args.seed_subs} subs")
        ours_rates = grow(ours, args.grow, args.step, args.budget)
        theirs_rates = grow(theirs, args.localstripe_grow, max(1, args.step // 10), args.budget)
        print("subscription creates/s as the store grows (bare client; size after the step):")
        for size, rate in ours_rates:
            print(f"  sandbox      {size:>6} subs: {rate:>7.0f} writes/s")
        for size, rate in theirs_rates:
            print(f"  localstripe  {size:>6} subs: {rate:>7.0f} writes/s")
        size = f"{len(ours.subs)} vs {len(theirs.subs)} subs"
        both_retrieves(ours, theirs, args.requests, size)
        started = time.perf_counter()
        page = ours.client.v1.subscriptions.list({"limit": 100, "status": "all"})
        count = sum(1 for _ in page.auto_paging_iter())
        rate = count / (time.perf_counter() - started)
        row(f"list all {count} (subs/s, pages of 100)", rate, None)


if __name__ == "__main__":
    main()
