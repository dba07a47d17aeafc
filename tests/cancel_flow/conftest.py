"""The Stripe-sandbox app fixtures of tests/billing, for cancel-flow tests that need Stripe."""

from tests.billing.conftest import sandbox, stripe_api, stripe_settings

__all__ = ["sandbox", "stripe_api", "stripe_settings"]
