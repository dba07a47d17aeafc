"""A stateful Stripe emulator with current-API semantics (2026-10-28), for tests, benchmarks
and the demo. The official ``stripe`` SDK drives it unchanged::

    from stayflow.sandbox import Sandbox

    with Sandbox.start() as sb:
        client = sb.client()  # StripeClient(sb.secret_key, base_addresses={"api": sb.url})
        customer = client.v1.customers.create({"email": "a@example.com"})
        sb.advance_clock(31 * 86400)

See docs/stripe-sandbox.md for what it covers and where it knowingly differs from Stripe.
"""

from stayflow.sandbox.runner import DEFAULT_SECRET_KEY, Sandbox

__all__ = ["DEFAULT_SECRET_KEY", "Sandbox"]
