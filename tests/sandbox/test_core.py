"""The sandbox driven through the official SDK: customers, prices, subscriptions, errors."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest
import stripe

from stayflow.sandbox import Sandbox

DAY = 86_400


@pytest.fixture
def paying(make_paying_customer: Callable[..., stripe.Customer]) -> stripe.Customer:
    return make_paying_customer(email="payer@example.com")


@pytest.fixture
def price(make_price: Callable[..., stripe.Price]) -> stripe.Price:
    return make_price(2000)


def test_customer_create_retrieve_update_delete(stripe_client: stripe.StripeClient) -> None:
    c = stripe_client.v1.customers.create(
        {"email": "a@example.com", "name": "Ada", "metadata": {"crm": "42"}}
    )
    assert isinstance(c, stripe.Customer)
    assert c.id.startswith("cus_") and c.email == "a@example.com" and c.balance == 0
    got = stripe_client.v1.customers.retrieve(c.id)
    assert got.to_dict() == c.to_dict()
    updated = stripe_client.v1.customers.update(c.id, {"metadata": {"crm": "", "tier": "gold"}})
    assert updated.metadata.to_dict() == {"tier": "gold"}
    gone = stripe_client.v1.customers.delete(c.id)
    assert gone.deleted is True
    with pytest.raises(stripe.InvalidRequestError) as err:
        stripe_client.v1.customers.update(c.id, {"name": "x"})
    assert err.value.http_status == 404 and err.value.code == "resource_missing"


def test_test_payment_method_attaches_a_new_card(
    stripe_client: stripe.StripeClient, paying: stripe.Customer
) -> None:
    pm_id = paying.invoice_settings.default_payment_method
    assert isinstance(pm_id, str) and pm_id.startswith("pm_") and pm_id != "pm_card_visa"
    pm = stripe_client.v1.payment_methods.retrieve(pm_id)
    assert pm.card is not None and pm.card.brand == "visa" and pm.card.last4 == "4242"
    assert pm.customer == paying.id


def test_price_and_plan_are_two_views_of_one_object(
    stripe_client: stripe.StripeClient,
) -> None:
    product = stripe_client.v1.products.create({"name": "Gold"})
    plan = stripe_client.v1.plans.create(
        {
            "id": "gold-monthly",
            "amount": 1500,
            "currency": "usd",
            "interval": "month",
            "product": product.id,
        }
    )
    price = stripe_client.v1.prices.retrieve("gold-monthly")
    assert isinstance(plan, stripe.Plan) and isinstance(price, stripe.Price)
    assert price.unit_amount == plan.amount == 1500
    assert price.recurring is not None and price.recurring.interval == "month"
    assert price.product == product.id


def test_subscription_create_active_with_paid_invoice(
    stripe_client: stripe.StripeClient, paying: stripe.Customer, price: stripe.Price
) -> None:
    sub = stripe_client.v1.subscriptions.create(
        {
            "customer": paying.id,
            "items": [{"price": price.id, "quantity": 2}],
            "metadata": {"plan": "pro"},
        }
    )
    assert isinstance(sub, stripe.Subscription)
    assert sub.status == "active"
    item = sub["items"].data[0]
    assert isinstance(item, stripe.SubscriptionItem)
    assert item.price.id == price.id and item.plan.id == price.id and item.quantity == 2
    assert item.current_period_end - item.current_period_start in (
        28 * DAY,
        29 * DAY,
        30 * DAY,
        31 * DAY,
    )
    invoice = stripe_client.v1.invoices.retrieve(str(sub.latest_invoice))
    assert invoice.status == "paid" and invoice.amount_paid == 4000 and invoice.total == 4000
    assert invoice.billing_reason == "subscription_create"
    assert invoice.parent is not None and invoice.parent.subscription_details is not None
    assert invoice.parent.subscription_details.subscription == sub.id


def test_subscription_without_payment_method_is_incomplete(
    stripe_client: stripe.StripeClient, price: stripe.Price
) -> None:
    customer = stripe_client.v1.customers.create({})
    sub = stripe_client.v1.subscriptions.create(
        {"customer": customer.id, "items": [{"price": price.id}]}
    )
    assert sub.status == "incomplete"
    with pytest.raises(stripe.InvalidRequestError):
        stripe_client.v1.subscriptions.create(
            {
                "customer": customer.id,
                "items": [{"price": price.id}],
                "payment_behavior": "error_if_incomplete",
            }
        )


def test_declined_card(
    stripe_client: stripe.StripeClient,
    price: stripe.Price,
    make_paying_customer: Callable[..., stripe.Customer],
) -> None:
    customer = make_paying_customer("pm_card_chargeDeclined")
    with pytest.raises(stripe.CardError) as err:
        stripe_client.v1.subscriptions.create(
            {
                "customer": customer.id,
                "items": [{"price": price.id}],
                "payment_behavior": "error_if_incomplete",
            }
        )
    assert err.value.http_status == 402 and err.value.code == "card_declined"
    assert stripe_client.v1.subscriptions.list({"status": "all"}).data == []


def test_retrieve_with_expand(
    stripe_client: stripe.StripeClient, paying: stripe.Customer, price: stripe.Price
) -> None:
    coupon = stripe_client.v1.coupons.create({"percent_off": 10, "duration": "forever"})
    sub = stripe_client.v1.subscriptions.create(
        {
            "customer": paying.id,
            "items": [{"price": price.id}],
            "discounts": [{"coupon": coupon.id}],
        }
    )
    full = stripe_client.v1.subscriptions.retrieve(
        sub.id,
        {"expand": ["customer", "items.data.price.product", "latest_invoice", "discounts"]},
    )
    assert isinstance(full.customer, stripe.Customer) and full.customer.id == paying.id
    product = full["items"].data[0].price.product
    assert isinstance(product, stripe.Product) and product.name == "Pro"
    assert isinstance(full.latest_invoice, stripe.Invoice)
    assert full.latest_invoice.total == 1800 and full.latest_invoice.subtotal == 2000
    discount = full.discounts[0]
    assert isinstance(discount, stripe.Discount)
    assert discount.source.coupon == coupon.id
    with pytest.raises(stripe.InvalidRequestError) as err:
        stripe_client.v1.subscriptions.retrieve(sub.id, {"expand": ["status"]})
    assert "cannot be expanded" in str(err.value.user_message)


def test_list_filters_and_paging(
    stripe_client: stripe.StripeClient,
    paying: stripe.Customer,
    make_price: Callable[..., stripe.Price],
) -> None:
    cheap, dear = make_price(1000, name="Cheap"), make_price(5000, name="Dear")
    made = []
    for i in range(7):
        p = cheap if i % 2 else dear
        made.append(
            stripe_client.v1.subscriptions.create(
                {"customer": paying.id, "items": [{"price": p.id}]}
            ).id
        )
    stripe_client.v1.subscriptions.cancel(made[0])
    page = stripe_client.v1.subscriptions.list({"limit": 3})
    assert [s.id for s in page.data] == made[::-1][:3] and page.has_more
    nxt = stripe_client.v1.subscriptions.list({"limit": 3, "starting_after": page.data[-1].id})
    assert [s.id for s in nxt.data] == made[::-1][3:6] and not nxt.has_more
    back = stripe_client.v1.subscriptions.list({"limit": 2, "ending_before": nxt.data[0].id})
    assert [s.id for s in back.data] == made[::-1][1:3] and back.has_more
    every = [
        s.id
        for s in stripe_client.v1.subscriptions.list(
            {"status": "all", "limit": 2}
        ).auto_paging_iter()
    ]
    assert every == made[::-1]
    assert [s.id for s in stripe_client.v1.subscriptions.list({"status": "canceled"}).data] == [
        made[0]
    ]
    assert len(stripe_client.v1.subscriptions.list({"price": cheap.id}).data) == 3
    assert (
        len(
            stripe_client.v1.subscriptions.list(
                {"customer": paying.id, "status": "active", "limit": 100}
            ).data
        )
        == 6
    )
    with pytest.raises(stripe.InvalidRequestError) as err:
        stripe_client.v1.subscriptions.list({"limit": 101})
    assert err.value.param == "limit"


def test_unknown_parameter_is_refused(stripe_client: stripe.StripeClient) -> None:
    with pytest.raises(stripe.InvalidRequestError) as err:
        stripe_client.v1.customers.create({"emial": "typo@example.com"})  # type: ignore[typeddict-unknown-key]
    assert err.value.code == "parameter_unknown" and err.value.param == "emial"
    with pytest.raises(stripe.InvalidRequestError) as err:
        stripe_client.v1.subscriptions.create(
            {"customer": "cus_x", "items": [{"price": "p", "colour": "red"}]}  # type: ignore[typeddict-unknown-key]
        )
    assert err.value.param == "items[0][colour]"


def test_missing_objects(stripe_client: stripe.StripeClient) -> None:
    with pytest.raises(stripe.InvalidRequestError) as err:
        stripe_client.v1.subscriptions.retrieve("sub_nope")
    assert err.value.http_status == 404 and err.value.code == "resource_missing"
    assert err.value.user_message == "No such subscription: 'sub_nope'"
    with pytest.raises(stripe.InvalidRequestError) as err:
        stripe_client.v1.subscriptions.create({"customer": "cus_nope", "items": [{"price": "x"}]})
    assert err.value.param == "customer"


def test_update_metadata_discount_pause_and_clear(
    stripe_client: stripe.StripeClient, paying: stripe.Customer, price: stripe.Price
) -> None:
    sub = stripe_client.v1.subscriptions.create(
        {"customer": paying.id, "items": [{"price": price.id}], "metadata": {"a": "1"}}
    )
    coupon = stripe_client.v1.coupons.create(
        {"amount_off": 500, "currency": "usd", "duration": "once"}
    )
    resumes = int(time.time()) + 10 * DAY
    sub = stripe_client.v1.subscriptions.update(
        sub.id,
        {
            "metadata": {"b": "2"},
            "discounts": [{"coupon": coupon.id}],
            "pause_collection": {"behavior": "mark_uncollectible", "resumes_at": resumes},
        },
    )
    assert sub.metadata.to_dict() == {"a": "1", "b": "2"}
    assert len(sub.discounts) == 1 and sub.status == "active"
    assert sub.pause_collection is not None
    assert sub.pause_collection.behavior == "mark_uncollectible"
    assert sub.pause_collection.resumes_at == resumes
    sub = stripe_client.v1.subscriptions.update(sub.id, {"pause_collection": "", "discounts": ""})
    assert sub.pause_collection is None and sub.discounts == []


def test_plan_change_with_prorations(
    stripe_client: stripe.StripeClient,
    paying: stripe.Customer,
    make_price: Callable[..., stripe.Price],
) -> None:
    low, high = make_price(1000, name="Low"), make_price(3000, name="High")
    sub = stripe_client.v1.subscriptions.create(
        {"customer": paying.id, "items": [{"price": low.id}]}
    )
    item = sub["items"].data[0]
    same = stripe_client.v1.subscriptions.update(
        sub.id, {"items": [{"id": item.id, "price": high.id}], "proration_behavior": "none"}
    )
    assert same["items"].data[0].price.id == high.id and same.latest_invoice == sub.latest_invoice
    now = stripe_client.v1.subscriptions.update(
        sub.id,
        {
            "items": [{"id": item.id, "price": low.id}],
            "proration_behavior": "always_invoice",
            "expand": ["latest_invoice"],
        },
    )
    invoice = now.latest_invoice
    assert isinstance(invoice, stripe.Invoice)
    assert invoice.billing_reason == "subscription_update"
    amounts = sorted(line.amount for line in invoice.lines.data)
    # credit for unused High, charge for the rest of the period on Low: a net credit.
    assert amounts[0] < 0 < amounts[1] and invoice.total < 0 and invoice.amount_due == 0
    assert stripe_client.v1.customers.retrieve(paying.id).balance == invoice.total


def test_cancel_at_period_end_and_undo(
    stripe_client: stripe.StripeClient, paying: stripe.Customer, price: stripe.Price
) -> None:
    sub = stripe_client.v1.subscriptions.create(
        {"customer": paying.id, "items": [{"price": price.id}]}
    )
    end = sub["items"].data[0].current_period_end
    sub = stripe_client.v1.subscriptions.update(
        sub.id,
        {
            "cancel_at_period_end": True,
            "cancellation_details": {"feedback": "too_expensive", "comment": "pricey"},
        },
    )
    assert sub.status == "active" and sub.cancel_at_period_end and sub.cancel_at == end
    assert sub.canceled_at is not None
    assert sub.cancellation_details is not None
    assert sub.cancellation_details.feedback == "too_expensive"
    assert sub.cancellation_details.reason == "cancellation_requested"
    sub = stripe_client.v1.subscriptions.update(sub.id, {"cancel_at_period_end": False})
    assert not sub.cancel_at_period_end and sub.cancel_at is None and sub.canceled_at is None


def test_cancel_now_with_proration_and_final_invoice(
    stripe_client: stripe.StripeClient,
    paying: stripe.Customer,
    price: stripe.Price,
    sandbox: Sandbox,
) -> None:
    sub = stripe_client.v1.subscriptions.create(
        {"customer": paying.id, "items": [{"price": price.id}]}
    )
    sandbox.advance_clock(10 * DAY)
    done = stripe_client.v1.subscriptions.cancel(
        sub.id,
        {"invoice_now": True, "prorate": True, "cancellation_details": {"feedback": "unused"}},
    )
    assert done.status == "canceled" and done.ended_at == done.canceled_at
    assert done.cancellation_details is not None
    assert done.cancellation_details.feedback == "unused"
    final = stripe_client.v1.invoices.retrieve(str(done.latest_invoice))
    assert final.id != sub.latest_invoice
    assert -2000 < final.total < 0 and final.amount_due == 0 and final.status == "paid"
    assert stripe_client.v1.customers.retrieve(paying.id).balance == final.total
    with pytest.raises(stripe.InvalidRequestError) as err:
        stripe_client.v1.subscriptions.update(sub.id, {"cancel_at_period_end": True})
    assert err.value.http_status == 400
    assert "canceled subscription can only update" in str(err.value.user_message)
    # metadata may still change on a canceled subscription
    stripe_client.v1.subscriptions.update(sub.id, {"metadata": {"note": "late"}})
    with pytest.raises(stripe.InvalidRequestError) as err:
        stripe_client.v1.subscriptions.cancel(sub.id)
    assert err.value.http_status == 404


def test_cancel_without_options_makes_no_invoice(
    stripe_client: stripe.StripeClient, paying: stripe.Customer, price: stripe.Price
) -> None:
    sub = stripe_client.v1.subscriptions.create(
        {"customer": paying.id, "items": [{"price": price.id}]}
    )
    done = stripe_client.v1.subscriptions.cancel(sub.id)
    assert done.latest_invoice == sub.latest_invoice
    assert stripe_client.v1.customers.retrieve(paying.id).balance == 0


def test_account_and_reset_restores_defaults(sandbox: Sandbox) -> None:
    account = sandbox.client().v1.accounts.retrieve_current()
    assert isinstance(account, stripe.Account) and account.id.startswith("acct_")
    rk = sandbox.create_restricted_key({"subscriptions": "read"})
    with pytest.raises(stripe.PermissionError):
        sandbox.client(rk).v1.accounts.retrieve_current()
    sandbox.configure(secret_keys=["sk_test_only"])
    sandbox.reset()
    assert sandbox.client("sk_test_anything").v1.customers.list().data == []
    with pytest.raises(stripe.AuthenticationError):
        sandbox.client(rk).v1.customers.list()  # restricted keys are forgotten too


def test_list_expand_and_price_filters(
    stripe_client: stripe.StripeClient,
    paying: stripe.Customer,
    make_price: Callable[..., stripe.Price],
) -> None:
    monthly, yearly = make_price(1000, name="M"), make_price(9000, interval="year", name="Y")
    stripe_client.v1.prices.update(yearly.id, {"lookup_key": "pro_yearly"})
    stripe_client.v1.subscriptions.create({"customer": paying.id, "items": [{"price": monthly.id}]})
    page = stripe_client.v1.subscriptions.list({"expand": ["data.customer"]})
    assert isinstance(page.data[0].customer, stripe.Customer)
    found = stripe_client.v1.prices.list({"lookup_keys": ["pro_yearly"]}).data
    assert [p.id for p in found] == [yearly.id]
    assert yearly.recurring is not None and yearly.recurring.interval == "year"
    with pytest.raises(stripe.InvalidRequestError) as err:
        stripe_client.v1.subscriptions.create(
            {"customer": paying.id, "items": [{"price": monthly.id}, {"price": yearly.id}]}
        )
    assert err.value.param == "items"


def test_keys_by_bearer_or_basic_auth_as_stripe_takes_them(sandbox: Sandbox) -> None:
    """`curl -u sk_test_...:` is how Stripe's own docs call the API."""
    import base64
    import json
    import urllib.error
    import urllib.request

    def get(authorization: str | None) -> tuple[int, dict[str, object]]:
        request = urllib.request.Request(f"{sandbox.url}/v1/customers")
        if authorization is not None:
            request.add_header("Authorization", authorization)
        try:
            with urllib.request.urlopen(request, timeout=10) as answer:
                return answer.status, json.loads(answer.read())
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read())

    basic = base64.b64encode(f"{sandbox.secret_key}:".encode()).decode()
    assert get(f"Basic {basic}")[0] == 200
    assert get(f"Bearer {sandbox.secret_key}")[0] == 200
    for bad in ("Basic !!!", "Basic " + base64.b64encode(b"pk_test_x:").decode(), "Token x"):
        status, body = get(bad)
        assert status == 401 and "Invalid API Key" in str(body["error"])
    status, body = get(None)
    assert status == 401 and "did not provide an API key" in str(body["error"])
