"""Attribution tests: stayflow against the Stripe sandbox (fixtures of tests/billing)."""

from __future__ import annotations

from tests.billing.conftest import sandbox, stripe_api, stripe_settings

__all__ = ["sandbox", "stripe_api", "stripe_settings"]
