"""Billing-action tests: stayflow's jobs against the Stripe sandbox (fixtures of tests/billing),
or against Stripe's test mode when STAYFLOW_TEST_STRIPE_KEY is set (docs/stripe-sandbox.md)."""

from __future__ import annotations

from tests.billing.conftest import stripe_api, stripe_settings
from tests.stripe_fixtures import stripe_test_key

if stripe_test_key() is None:
    from tests.billing.conftest import sandbox

    __all__ = ["sandbox", "stripe_api", "stripe_settings"]
else:  # the same fixture names, on Stripe's test mode (tests/stripe_test_mode.py)
    from tests.stripe_test_mode import test_mode_client as stripe_client
    from tests.stripe_test_mode import test_mode_paying_customer as make_paying_customer
    from tests.stripe_test_mode import test_mode_sandbox as sandbox  # type: ignore[assignment]

    __all__ = ["make_paying_customer", "sandbox", "stripe_api", "stripe_client", "stripe_settings"]
    # A load test through injected faults: hundreds of subscriptions made before the faults it
    # needs would skip it; not collected against Stripe.
    collect_ignore = ["test_reliability.py"]
