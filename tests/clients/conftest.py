"""The Stripe-sandbox fixtures of tests/billing, for the JS client's end-to-end test."""

from tests.billing.conftest import sandbox, stripe_api, stripe_settings

__all__ = ["sandbox", "stripe_api", "stripe_settings"]
