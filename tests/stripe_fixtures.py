"""Stripe sandbox fixtures (``pytest_plugins = ["tests.stripe_fixtures"]`` in conftest.py).

- ``stripe_sandbox`` (session): one sandbox on a free 127.0.0.1 port per test process.
- ``sandbox`` (function): the same sandbox, reset to empty for this test (no faults, real time).
- ``stripe_client``: a ``StripeClient`` pointed at it, with the sandbox's secret key.
- ``make_paying_customer``: a customer with ``pm_card_visa`` as default payment method, which
  a subscription needs to become ``active`` without a trial (as on Stripe).
- ``make_price``: a recurring price (a product is made with it).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
import stripe

from stayflow.sandbox import Sandbox


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
