"""Stripe fixtures (``pytest_plugins = ["tests.stripe_fixtures"]`` in conftest.py).

- ``stripe_sandbox`` (session): one sandbox on a free 127.0.0.1 port per test process.
- ``sandbox`` (function): the same sandbox, reset to empty for this test (no faults, real time).
- ``stripe_client``: a ``StripeClient`` pointed at it, with the sandbox's secret key.
- ``make_paying_customer``: a customer with ``pm_card_visa`` as default payment method, which
  a subscription needs to become ``active`` without a trial (as on Stripe).
- ``make_price``: a recurring price (a product is made with it).
- ``run_on_stripe``: runs a scenario (``fn(target) -> observations``) on the sandbox and, when
  ``STAYFLOW_TEST_STRIPE_KEY`` holds an ``sk_test_`` key, on Stripe's test mode too (through
  a test clock), reporting every difference side by side at the end of the run; it returns
  Stripe's observations then, else the sandbox's. This is the one switch (docs/stripe-sandbox.md).
"""

from __future__ import annotations

import calendar
import os
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
import stripe

from stayflow.sandbox import Sandbox

STRIPE_KEY_ENV = "STAYFLOW_TEST_STRIPE_KEY"
# Optional: aim the "Stripe" target elsewhere; "sandbox" = this test's sandbox, through test
# clocks (checks the path to Stripe without reaching it).
STRIPE_BASE_ENV = "STAYFLOW_TEST_STRIPE_API_BASE"
DAY = 86_400


def stripe_test_key() -> str | None:
    key = os.environ.get(STRIPE_KEY_ENV, "").strip()
    if not key:
        return None
    if not key.startswith("sk_test_"):
        raise pytest.UsageError(f"{STRIPE_KEY_ENV} must be a test-mode key (sk_test_...)")
    return key


def next_month_start(now: int, month: int | None = None) -> int:
    """00:00 UTC on the first of the next month (of ``month``, e.g. 1 = January, whose 31 days
    make Stripe's documented examples exact)."""
    at = datetime.fromtimestamp(now, UTC)
    year, m = at.year, at.month
    while True:
        m += 1
        if m > 12:
            year, m = year + 1, 1
        if month is None or m == month:
            return calendar.timegm((year, m, 1, 0, 0, 0))


class Target:
    """Where a scenario runs: the sandbox (its own clock) or Stripe test mode (a test clock)."""

    name = "target"
    client: stripe.StripeClient

    def now(self) -> int:
        raise NotImplementedError

    def advance(self, to: int) -> None:
        raise NotImplementedError

    def customer_params(self) -> dict[str, Any]:
        return {}

    def customer(self, **params: Any) -> stripe.Customer:
        return self.client.v1.customers.create({**self.customer_params(), **params})

    def paying_customer(self, card: str = "pm_card_visa", **params: Any) -> stripe.Customer:
        """Stripe's documented test idiom, in one call."""
        return self.customer(
            payment_method=card, invoice_settings={"default_payment_method": card}, **params
        )

    def price(
        self,
        unit_amount: int,
        interval: str = "month",
        currency: str = "usd",
        name: str = "Pro",
    ) -> stripe.Price:
        return self.client.v1.prices.create(
            {
                "currency": currency,
                "unit_amount": unit_amount,
                "recurring": {"interval": interval},  # type: ignore[typeddict-item]
                "product_data": {"name": name},
            }
        )

    def close(self) -> None:
        pass


class SandboxTarget(Target):
    name = "sandbox"

    def __init__(self, sb: Sandbox) -> None:
        self.sb = sb
        self.client = sb.client()

    def now(self) -> int:
        return self.sb.now()

    def advance(self, to: int) -> None:
        self.sb.advance_clock(to=to)


class TestClockTarget(Target):
    """Stripe's test mode (or any server speaking its API): customers live on a test clock,
    which ``advance`` moves (Stripe advances asynchronously: wait for ``ready``, bounded)."""

    name = "stripe"
    __test__ = False  # not a pytest test class

    def __init__(self, key: str, api_base: str | None = None, wait_s: float = 180) -> None:
        options: dict[str, Any] = {"max_network_retries": 2}
        if api_base:
            options["base_addresses"] = {"api": api_base}
        self.client = stripe.StripeClient(key, **options)
        self.wait_s = wait_s
        self.clock = self.client.v1.test_helpers.test_clocks.create(
            {"frozen_time": int(time.time()), "name": f"stayflow-{uuid.uuid4().hex[:8]}"}
        )

    def now(self) -> int:
        return int(self.client.v1.test_helpers.test_clocks.retrieve(self.clock.id).frozen_time)

    def customer_params(self) -> dict[str, Any]:
        return {"test_clock": self.clock.id}

    def advance(self, to: int) -> None:
        clocks = self.client.v1.test_helpers.test_clocks
        clocks.advance(self.clock.id, {"frozen_time": to})
        deadline = time.monotonic() + self.wait_s
        while time.monotonic() < deadline:  # bounded: Stripe's advance is asynchronous
            clock = clocks.retrieve(self.clock.id)
            if clock.status == "ready":
                return
            if clock.status == "internal_failure":
                raise RuntimeError(f"test clock {self.clock.id} failed to advance")
            time.sleep(2)
        raise RuntimeError(f"test clock {self.clock.id} still advancing after {self.wait_s}s")

    def close(self) -> None:
        # Deleting a test clock deletes the customers (and their objects) made on it.
        self.client.v1.test_helpers.test_clocks.delete(self.clock.id)


_DIFFERENCES: list[tuple[str, str, Any, Any]] = []


def _flatten(obs: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(obs, dict):
        out: dict[str, Any] = {}
        for k, v in obs.items():
            out.update(_flatten(v, f"{prefix}.{k}" if prefix else str(k)))
        return out
    return {prefix: obs}


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if stripe_test_key() is None:
        return
    tr = terminalreporter
    tr.section("sandbox vs Stripe test mode")
    if not _DIFFERENCES:
        tr.write_line("no differences in the scenarios that ran")
        return
    tr.write_line(f"{'scenario / observation':60} {'sandbox':>20} {'stripe':>20}")
    for test, key, ours, theirs in _DIFFERENCES:
        tr.write_line(f"{(test + ' ' + key)[:60]:60} {ours!s:>20} {theirs!s:>20}")


@pytest.fixture(scope="session")
def stripe_sandbox() -> Iterator[Sandbox]:
    with Sandbox.start() as sb:
        yield sb


@pytest.fixture
def sandbox(stripe_sandbox: Sandbox) -> Sandbox:
    stripe_sandbox.reset()
    return stripe_sandbox


@pytest.fixture
def stripe_client(sandbox: Sandbox) -> stripe.StripeClient:
    return sandbox.client()


@pytest.fixture
def run_on_stripe(
    sandbox: Sandbox, request: pytest.FixtureRequest
) -> Callable[[Callable[[Target], dict[str, Any]]], dict[str, Any]]:
    """``observed = run_on_stripe(scenario)``; see the module docstring."""
    key = stripe_test_key()

    def run(scenario: Callable[[Target], dict[str, Any]]) -> dict[str, Any]:
        ours = scenario(SandboxTarget(sandbox))
        if key is None:
            return ours
        base = os.environ.get(STRIPE_BASE_ENV) or None
        # "sandbox": the Stripe path (test clocks) against this test's own sandbox, a self-check.
        target = TestClockTarget(key, sandbox.url if base == "sandbox" else base)
        try:
            theirs = scenario(target)
        finally:
            target.close()
        flat_ours, flat_theirs = _flatten(ours), _flatten(theirs)
        for k in sorted(flat_ours.keys() | flat_theirs.keys()):
            if flat_ours.get(k) != flat_theirs.get(k):
                _DIFFERENCES.append((request.node.name, k, flat_ours.get(k), flat_theirs.get(k)))
        return theirs

    return run


@pytest.fixture
def make_paying_customer(
    stripe_client: stripe.StripeClient,
) -> Callable[..., stripe.Customer]:
    def make(card: str = "pm_card_visa", **params: Any) -> stripe.Customer:
        customer = stripe_client.v1.customers.create({"payment_method": card, **params})
        pm = stripe_client.v1.payment_methods.list({"customer": customer.id}).data[0]
        return stripe_client.v1.customers.update(
            customer.id, {"invoice_settings": {"default_payment_method": pm.id}}
        )

    return make


@pytest.fixture
def make_price(stripe_client: stripe.StripeClient) -> Callable[..., stripe.Price]:
    def make(
        unit_amount: int = 2000,
        interval: str = "month",
        currency: str = "usd",
        name: str = "Pro",
        interval_count: int = 1,
    ) -> stripe.Price:
        return stripe_client.v1.prices.create(
            {
                "currency": currency,
                "unit_amount": unit_amount,
                "recurring": {"interval": interval, "interval_count": interval_count},  # type: ignore[typeddict-item]
                "product_data": {"name": name},
            }
        )

    return make
