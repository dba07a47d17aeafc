"""Stripe's money at the edges (issue 11), as scenarios that run on the sandbox and, with
``STAYFLOW_TEST_STRIPE_KEY`` set, on Stripe's test mode too (``run_on_stripe``).

Every scenario starts at 00:00 UTC on the next 1 January, so the month has 31 days and "day
15" leaves 16/31 of the period: Stripe's amounts are exact, not approximate.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import stripe

from tests.stripe_fixtures import DAY, Target, next_month_start

Run = Callable[[Callable[[Target], dict[str, Any]]], dict[str, Any]]


def _start(t: Target) -> int:
    start = next_month_start(t.now(), month=1)
    t.advance(start)
    return start


def _lines(invoice: stripe.Invoice) -> list[int]:
    return sorted(line.amount for line in invoice.lines.data)


def _sub(t: Target, customer: str, price: str, **extra: Any) -> stripe.Subscription:
    return t.client.v1.subscriptions.create(
        {"customer": customer, "items": [{"price": price}], **extra}
    )


def test_discount_is_folded_into_prorations(run_on_stripe: Run) -> None:
    """Stripe, prorations guide ("Prorations and discounts", proration_discounts=included, the
    default): proration items are discountable=false and their amounts reflect the discounts
    already on the subscription. Forever 20% off, 2000 -> 5000 with always_invoice on day 15:
    -round(1600 * 16/31) = -826 and +round(4000 * 16/31) = +2065, total 1239."""

    def scenario(t: Target) -> dict[str, Any]:
        start = _start(t)
        customer = t.paying_customer()
        low, high = t.price(2000), t.price(5000)
        coupon = t.client.v1.coupons.create({"percent_off": 20, "duration": "forever"})
        sub = _sub(t, customer.id, low.id, discounts=[{"coupon": coupon.id}])
        t.advance(start + 15 * DAY)
        item = sub["items"].data[0].id
        changed = t.client.v1.subscriptions.update(
            sub.id,
            {"items": [{"id": item, "price": high.id}], "proration_behavior": "always_invoice"},
        )
        invoice = t.client.v1.invoices.retrieve(str(changed.latest_invoice))
        return {
            "first": t.client.v1.invoices.retrieve(str(sub.latest_invoice)).total,
            "lines": _lines(invoice),
            "discountable": [line.discountable for line in invoice.lines.data],
            "line_discount": sum(
                d.amount for line in invoice.lines.data for d in line.discount_amounts or []
            ),
            "total": invoice.total,
            "amount_paid": invoice.amount_paid,
        }

    seen = run_on_stripe(scenario)
    assert seen["first"] == 1600
    assert seen["lines"] == [-826, 2065]
    assert seen["discountable"] == [False, False] and seen["line_discount"] == 0
    assert seen["total"] == 1239 and seen["amount_paid"] == 1239


def test_amount_off_discount_is_folded_into_prorations(run_on_stripe: Run) -> None:
    """The same rule with a fixed-amount coupon (500 off, forever): the prorations are of the
    discounted period amounts, -round(1500 * 16/31) = -774 and +round(4500 * 16/31) = +2323
    (the sandbox's reading of "discounts ... reflected in the proration amount"; the run
    against Stripe checks it)."""

    def scenario(t: Target) -> dict[str, Any]:
        start = _start(t)
        customer = t.paying_customer()
        low, high = t.price(2000), t.price(5000)
        coupon = t.client.v1.coupons.create(
            {"amount_off": 500, "currency": "usd", "duration": "forever"}
        )
        sub = _sub(t, customer.id, low.id, discounts=[{"coupon": coupon.id}])
        t.advance(start + 15 * DAY)
        changed = t.client.v1.subscriptions.update(
            sub.id,
            {
                "items": [{"id": sub["items"].data[0].id, "price": high.id}],
                "proration_behavior": "always_invoice",
            },
        )
        invoice = t.client.v1.invoices.retrieve(str(changed.latest_invoice))
        return {"lines": _lines(invoice), "total": invoice.total}

    assert run_on_stripe(scenario) == {"lines": [-774, 2323], "total": 1549}


def test_void_gives_back_the_balance_it_consumed(run_on_stripe: Run) -> None:
    """Stripe: voiding an invoice returns the customer balance it applied (a balance transaction
    of type unapplied_from_invoice). A 5000 -> 2000 downgrade on day 15 with always_invoice
    credits 1549 (-2581 + 1032); the renewal that a void pause then voids must not eat it."""

    def scenario(t: Target) -> dict[str, Any]:
        start = _start(t)
        customer = t.paying_customer()
        high, low = t.price(5000), t.price(2000)
        sub = _sub(t, customer.id, high.id)
        t.advance(start + 15 * DAY)
        item = sub["items"].data[0].id
        t.client.v1.subscriptions.update(
            sub.id,
            {"items": [{"id": item, "price": low.id}], "proration_behavior": "always_invoice"},
        )
        credited = t.client.v1.customers.retrieve(customer.id).balance
        end = next_month_start(start)
        t.client.v1.subscriptions.update(
            sub.id,
            {"pause_collection": {"behavior": "void", "resumes_at": end + 10 * DAY}},  # type: ignore[typeddict-item]
        )
        t.advance(end + 3600)
        renewal = t.client.v1.invoices.retrieve(
            str(t.client.v1.subscriptions.retrieve(sub.id).latest_invoice)
        )
        return {
            "credited": credited,
            "renewal_status": renewal.status,
            "renewal_total": renewal.total,
            "balance_after": t.client.v1.customers.retrieve(customer.id).balance,
        }

    seen = run_on_stripe(scenario)
    assert seen["credited"] == -1549
    assert seen["renewal_status"] == "void" and seen["renewal_total"] == 2000
    assert seen["balance_after"] == -1549


def test_cancel_now_without_invoice_or_prorate_drops_pending_prorations(
    run_on_stripe: Run,
) -> None:
    """Stripe, cancel reference: "if the subscription is set to cancel immediately, pending
    prorations are removed if invoice_now and prorate are both set to false". A 2000 -> 5000
    upgrade on day 15 leaves +1549 pending; after such a cancel a new subscription to the
    2000 price bills exactly 2000, first and at renewal."""

    def scenario(t: Target) -> dict[str, Any]:
        start = _start(t)
        customer = t.paying_customer()
        low, high = t.price(2000), t.price(5000)
        sub = _sub(t, customer.id, low.id)
        t.advance(start + 15 * DAY)
        item = sub["items"].data[0].id
        t.client.v1.subscriptions.update(sub.id, {"items": [{"id": item, "price": high.id}]})
        t.client.v1.subscriptions.cancel(sub.id, {"invoice_now": False, "prorate": False})
        again = _sub(t, customer.id, low.id)
        first = t.client.v1.invoices.retrieve(str(again.latest_invoice))
        t.advance(again["items"].data[0].current_period_end + 3600)
        renewal = t.client.v1.invoices.retrieve(
            str(t.client.v1.subscriptions.retrieve(again.id).latest_invoice)
        )
        return {"first": first.total, "renewal": renewal.total, "lines": _lines(renewal)}

    seen = run_on_stripe(scenario)
    assert seen == {"first": 2000, "renewal": 2000, "lines": [2000]}


def test_trial_on_an_active_subscription_credits_unused_time(run_on_stripe: Run) -> None:
    """Stripe (prorations guide: a change to what is billed prorates unless
    proration_behavior=none): setting trial_end on a paid, active subscription credits the
    unused paid time, here -round(2000 x 16/31) = -1032 on day 15, so the first charge after
    the trial is 2000 - 1032 = 968 (whether the credit rides on that invoice or on the
    customer's balance)."""

    def scenario(t: Target) -> dict[str, Any]:
        start = _start(t)
        customer = t.paying_customer()
        price = t.price(2000)
        sub = _sub(t, customer.id, price.id)
        t.advance(start + 15 * DAY)
        trial_end = start + 45 * DAY
        trialing = t.client.v1.subscriptions.update(sub.id, {"trial_end": trial_end})
        t.advance(trial_end + 3600)
        after = t.client.v1.subscriptions.retrieve(sub.id, {"expand": ["latest_invoice"]})
        invoice = after.latest_invoice
        assert isinstance(invoice, stripe.Invoice)
        return {
            "status_in_trial": trialing.status,
            "status_after": after.status,
            "amount_paid": invoice.amount_paid,
            "balance_after": t.client.v1.customers.retrieve(customer.id).balance,
        }

    seen = run_on_stripe(scenario)
    assert seen == {
        "status_in_trial": "trialing",
        "status_after": "active",
        "amount_paid": 968,
        "balance_after": 0,
    }


def test_trial_with_proration_none_credits_nothing(
    stripe_client: stripe.StripeClient, sandbox: Any, make_paying_customer: Any, make_price: Any
) -> None:
    """Stripe: proration_behavior=none makes no proration items."""
    start = next_month_start(sandbox.now(), month=1)
    sandbox.advance_clock(to=start)
    customer = make_paying_customer()
    sub = _sub_plain(stripe_client, customer.id, make_price(2000).id)
    sandbox.advance_clock(to=start + 15 * DAY)
    stripe_client.v1.subscriptions.update(
        sub.id, {"trial_end": start + 45 * DAY, "proration_behavior": "none"}
    )
    sandbox.advance_clock(to=start + 45 * DAY + 3600)
    after = stripe_client.v1.subscriptions.retrieve(sub.id, {"expand": ["latest_invoice"]})
    assert isinstance(after.latest_invoice, stripe.Invoice)
    assert after.latest_invoice.amount_paid == 2000


def _sub_plain(client: stripe.StripeClient, customer: str, price: str) -> stripe.Subscription:
    return client.v1.subscriptions.create({"customer": customer, "items": [{"price": price}]})


def test_descriptions_use_the_currency(run_on_stripe: Run) -> None:
    """Stripe formats a line's price in the invoice's currency, with its symbol and exponent
    (JPY has no minor unit): "1 \u00d7 Pro (at ¥2,000 / month)", "(at €20.00 / month)"."""

    def scenario(t: Target) -> dict[str, Any]:
        out = {}
        for currency in ("jpy", "eur"):
            customer = t.paying_customer()
            sub = _sub(t, customer.id, t.price(2000, currency=currency).id)
            invoice = t.client.v1.invoices.retrieve(str(sub.latest_invoice))
            out[currency] = invoice.lines.data[0].description
        return out

    seen = run_on_stripe(scenario)
    times = "\u00d7"  # Stripe's multiplication sign
    assert seen == {
        "jpy": f"1 {times} Pro (at ¥2,000 / month)",
        "eur": f"1 {times} Pro (at €20.00 / month)",
    }


def test_cancel_now_final_invoice_reason_and_pause(run_on_stripe: Run) -> None:
    """Stripe does not document the billing_reason of the final invoice invoice_now makes; the
    sandbox uses "subscription_update" (the documented reason closest to it: "A subscription
    was updated"; no new period begins). The pause guide says invoices "continue to generate,
    but Stripe doesn't collect payment" while collection is paused, so a void pause voids the
    final invoice too. The credit is -round(2000 x 16/31) = -1032."""

    def scenario(t: Target) -> dict[str, Any]:
        start = _start(t)
        customer = t.paying_customer()
        sub = _sub(t, customer.id, t.price(2000).id)
        t.advance(start + 15 * DAY)
        t.client.v1.subscriptions.update(
            sub.id,
            {"pause_collection": {"behavior": "void"}},  # type: ignore[typeddict-item]
        )
        done = t.client.v1.subscriptions.cancel(sub.id, {"invoice_now": True, "prorate": True})
        final = t.client.v1.invoices.retrieve(str(done.latest_invoice))
        return {
            "new_invoice": final.id != sub.latest_invoice,
            "billing_reason": final.billing_reason,
            "status": final.status,
            "lines": _lines(final),
        }

    seen = run_on_stripe(scenario)
    assert seen == {
        "new_invoice": True,
        "billing_reason": "subscription_update",
        "status": "void",
        "lines": [-1032],
    }


def test_cancel_now_final_invoice_without_pause_is_credited(
    stripe_client: stripe.StripeClient, sandbox: Any, make_paying_customer: Any, make_price: Any
) -> None:
    """Without a pause the final credit invoice is finalized and its credit goes to the
    customer's balance (Stripe: a negative invoice total becomes customer credit)."""
    start = next_month_start(sandbox.now(), month=1)
    sandbox.advance_clock(to=start)
    customer = make_paying_customer()
    sub = _sub_plain(stripe_client, customer.id, make_price(2000).id)
    sandbox.advance_clock(to=start + 15 * DAY)
    done = stripe_client.v1.subscriptions.cancel(sub.id, {"invoice_now": True, "prorate": True})
    final = stripe_client.v1.invoices.retrieve(str(done.latest_invoice))
    assert final.status == "paid" and final.total == -1032
    assert stripe_client.v1.customers.retrieve(customer.id).balance == -1032


def test_percent_discount_rounds_half_up(
    stripe_client: stripe.StripeClient, make_paying_customer: Any, make_price: Any
) -> None:
    """Stripe rounds a computed amount half-up per line: 50% of 25 is 12.5 -> a discount of 13
    (Python's round() would give 12)."""
    customer = make_paying_customer()
    coupon = stripe_client.v1.coupons.create({"percent_off": 50, "duration": "forever"})
    sub = stripe_client.v1.subscriptions.create(
        {
            "customer": customer.id,
            "items": [{"price": make_price(25).id}],
            "discounts": [{"coupon": coupon.id}],
        }
    )
    invoice = stripe_client.v1.invoices.retrieve(str(sub.latest_invoice))
    assert invoice.lines.data[0].discount_amounts[0].amount == 13  # type: ignore[index]
    assert invoice.total == 12
