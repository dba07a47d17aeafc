"""Fixtures that stand in for the sandbox when ``STAYFLOW_TEST_STRIPE_KEY`` is set: the same
names (``sandbox``, ``stripe_client``, ``make_paying_customer``), backed by Stripe's test mode.

A suite opts in by importing them into its conftest when the key is set (tests/billing_actions
does). Customers are made on a test clock, which ``sandbox.advance_clock`` moves; what only the
sandbox can do (fault injection, latency, rate limits, restricted keys, its webhooks, its
settings) skips the test with the reason. ``STAYFLOW_TEST_STRIPE_API_BASE=sandbox`` aims all of
it at a local sandbox through its test clocks, to check this path without reaching Stripe.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from typing import Any, NoReturn

import pytest
import stripe

from stayflow.sandbox import Sandbox
from tests.stripe_fixtures import (
    STRIPE_BASE_ENV,
    STRIPE_KEY_ENV,
    TestClockTarget,
    stripe_test_key,
)


class StripeTestMode:
    """The parts of :class:`stayflow.sandbox.Sandbox` a test may use, on Stripe's test mode."""

    def __init__(self, key: str, api_base: str | None) -> None:
        self.secret_key = key
        self.url = api_base  # None: Stripe itself (stayflow's default API base)
        self.target = TestClockTarget(key, api_base)

    def client(self, key: str | None = None, **options: Any) -> stripe.StripeClient:
        if self.url:
            options.setdefault("base_addresses", {"api": self.url})
        return stripe.StripeClient(key or self.secret_key, **options)

    def now(self) -> int:
        return self.target.now()

    def advance_clock(self, seconds: int | None = None, *, to: int | None = None) -> int:
        target = to if to is not None else self.now() + int(seconds or 0)
        self.target.advance(target)
        return target

    def reset(self) -> None:
        """Nothing to forget: each test has its own test clock (deleted with its customers)."""

    def clear_faults(self) -> None:
        """Nothing was injected."""

    def configure(self, **settings: Any) -> None:
        if any(value is not None for value in settings.values()):
            _sandbox_only("sandbox settings")

    def inject_fault(self, *args: Any, **kwargs: Any) -> NoReturn:
        _sandbox_only("fault injection")

    def set_latency(self, *args: Any, **kwargs: Any) -> NoReturn:
        _sandbox_only("injected latency")

    def set_rate_limit(self, *args: Any, **kwargs: Any) -> NoReturn:
        _sandbox_only("an injected rate limit")

    def create_restricted_key(self, *args: Any, **kwargs: Any) -> NoReturn:
        _sandbox_only("restricted keys made by the sandbox")

    def add_webhook(self, *args: Any, **kwargs: Any) -> NoReturn:
        _sandbox_only("webhooks delivered to 127.0.0.1")

    def close(self) -> None:
        self.target.close()


def _sandbox_only(what: str) -> NoReturn:
    pytest.skip(f"needs {what}: runs on the stayflow sandbox only (without {STRIPE_KEY_ENV})")


@pytest.fixture(name="sandbox")
def test_mode_sandbox(stripe_sandbox: Sandbox) -> Iterator[StripeTestMode]:
    key = stripe_test_key()
    assert key is not None, "import these fixtures only when STAYFLOW_TEST_STRIPE_KEY is set"
    base = os.environ.get(STRIPE_BASE_ENV) or None
    if base == "sandbox":
        stripe_sandbox.reset()
        base = stripe_sandbox.url
    mode = StripeTestMode(key, base)
    try:
        yield mode
    finally:
        mode.close()


@pytest.fixture(name="stripe_client")
def test_mode_client(sandbox: StripeTestMode) -> stripe.StripeClient:
    return sandbox.target.client


@pytest.fixture(name="make_paying_customer")
def test_mode_paying_customer(sandbox: StripeTestMode) -> Callable[..., stripe.Customer]:
    def make(card: str = "pm_card_visa", **params: Any) -> stripe.Customer:
        return sandbox.target.paying_customer(card, **params)

    return make
