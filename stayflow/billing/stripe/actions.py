"""The Stripe side of billing actions: the writes an accepted offer or a cancel makes.

Every write carries the caller's Idempotency-Key (stable across retries and workers), the
client retries nothing by itself (the job does, with backoff), and Stripe's errors come
out as ours: transient ones as ``BillingBusy`` with the Retry-After Stripe sent.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import stripe
from stripe.params import (
    CouponListParams,
    PriceListParams,
    PromotionCodeListParams,
    SubscriptionCancelParams,
    SubscriptionListParams,
    SubscriptionRetrieveParams,
    SubscriptionUpdateParams,
)

from stayflow.billing.provider import (
    BillingBusy,
    BillingError,
    BillingIdempotencyConflict,
    BillingInvalidRequest,
    BillingObjectMissing,
    BillingOfferRefused,
    BillingUnavailable,
    CatalogEntry,
    CouponState,
    FetchedSubscription,
    OfferCatalog,
    PriceState,
    PromotionCodeState,
    Subscription,
    SubscriptionChange,
)
from stayflow.billing.stripe.client import (
    _KEY_IN_TEXT,
    STRIPE_CALLS,
    _raw_json,
    _translate,
    stripe_client,
)
from stayflow.billing.stripe.convert import subscription_from

T = TypeVar("T")
# Actions need each discount with its coupon (the subscriber is told "20% off for 3 months"
# from Stripe's answer) and each item's price (always inline); expanding the customer and
# products as enrichment does would triple the bytes the SDK has to convert.
ACTION_EXPAND = ["discounts.source.coupon"]
# A refusal naming one of these parameters is about the offer (its coupon, promotion code or
# price), not about the subscription: another offer may still be applied.
OFFER_PARAMS = ("discounts", "items", "promotion_code", "coupon")
# A customer with more subscriptions than this is not cancelled "all at once" by us.
MAX_CUSTOMER_PAGES = 5


def _retry_after(exc: stripe.StripeError) -> float | None:
    headers = exc.headers or {}
    value = headers.get("retry-after") or headers.get("Retry-After")
    try:
        return max(0.0, float(value)) if value is not None else None
    except (TypeError, ValueError):
        return None


def translate(exc: stripe.StripeError) -> BillingError:
    """Like the adapter's translation, plus 409 / Retry-After / idempotency conflicts."""
    if isinstance(exc, stripe.IdempotencyError):
        message = _KEY_IN_TEXT.sub("[key]", exc.user_message or str(exc))
        return BillingIdempotencyConflict(message)
    found = _translate(exc)
    if isinstance(found, BillingUnavailable) or (exc.http_status or 0) == 409:
        return BillingBusy(found.message, retry_after=_retry_after(exc))
    param = getattr(exc, "param", None) or ""
    if isinstance(found, BillingInvalidRequest | BillingObjectMissing) and param.startswith(
        OFFER_PARAMS
    ):
        return BillingOfferRefused(found.message)
    return found


def _ts(value: Any) -> int:
    return int(value.timestamp())


class StripeBillingWriter:
    """The ``BillingWriter`` for one app's Stripe account (no SDK retries: the job retries)."""

    def __init__(self, api_key: str, *, api_base: str | None = None, timeout: float = 5.0) -> None:
        self._client = stripe_client(
            api_key, api_base=api_base, timeout=timeout, max_network_retries=0
        )
        self.calls = 0

    def __repr__(self) -> str:  # never show the key
        return "StripeBillingWriter(key=[redacted])"

    def _call(self, fn: Callable[[], T]) -> T:
        self.calls += 1
        STRIPE_CALLS.add()
        try:
            return fn()
        except stripe.StripeError as exc:
            raise translate(exc) from None

    def _fetched(self, obj: stripe.StripeObject) -> FetchedSubscription:
        raw = _raw_json(obj)
        return FetchedSubscription(subscription=subscription_from(raw), raw=raw)

    def retrieve_subscription(self, subscription_id: str) -> FetchedSubscription:
        params: SubscriptionRetrieveParams = {"expand": ACTION_EXPAND}
        subs = self._client.v1.subscriptions
        return self._fetched(self._call(lambda: subs.retrieve(subscription_id, params)))

    def retrieve_coupon(self, coupon_id: str) -> CouponState:
        coupon = self._call(lambda: self._client.v1.coupons.retrieve(coupon_id))
        return CouponState(id=coupon.id, valid=bool(coupon.valid), currency=coupon.currency)

    def retrieve_promotion_code(self, promotion_code_id: str) -> PromotionCodeState:
        promo = self._call(lambda: self._client.v1.promotion_codes.retrieve(promotion_code_id))
        coupon = promo.promotion.coupon if promo.promotion is not None else None
        coupon_id = coupon if isinstance(coupon, str) or coupon is None else coupon.id
        return PromotionCodeState(id=promo.id, active=bool(promo.active), coupon_id=coupon_id)

    def retrieve_price(self, price_id: str) -> PriceState:
        price = self._call(lambda: self._client.v1.prices.retrieve(price_id))
        product = price.product
        return PriceState(
            id=price.id,
            active=bool(price.active),
            currency=price.currency,
            recurring=price.recurring is not None,
            product_id=product if isinstance(product, str) else getattr(product, "id", None),
        )

    def offer_catalog(self) -> OfferCatalog:
        coupons = self._call(lambda: self._client.v1.coupons.list(CouponListParams(limit=100)))
        promos = self._call(
            lambda: self._client.v1.promotion_codes.list(
                PromotionCodeListParams(limit=100, active=True)
            )
        )
        prices = self._call(
            lambda: self._client.v1.prices.list(
                PriceListParams(limit=100, active=True, type="recurring")
            )
        )
        return OfferCatalog(
            coupons=[CatalogEntry(c.id, _coupon_label(c)) for c in coupons.data if bool(c.valid)],
            promotion_codes=[
                CatalogEntry(p.id, f"{p.code} ({p.id})") for p in promos.data if bool(p.active)
            ],
            prices=[CatalogEntry(p.id, _price_label(p)) for p in prices.data],
        )

    def customer_subscriptions(self, customer_id: str) -> list[Subscription]:
        found: list[Subscription] = []
        cursor: str | None = None
        for _ in range(MAX_CUSTOMER_PAGES):
            params: SubscriptionListParams = {
                "customer": customer_id,
                "status": "all",
                "limit": 100,
            }
            if cursor:
                params["starting_after"] = cursor
            page = self._call(lambda p=params: self._client.v1.subscriptions.list(p))  # type: ignore[misc]
            body = _raw_json(page)
            data = [subscription_from(d) for d in body.get("data", []) if isinstance(d, dict)]
            found.extend(data)
            if not body.get("has_more") or not data:
                break
            cursor = data[-1].id
        return found

    def update_subscription(
        self, subscription_id: str, change: SubscriptionChange, *, idempotency_key: str
    ) -> FetchedSubscription:
        params: SubscriptionUpdateParams = {"expand": ACTION_EXPAND}
        if change.discounts is not None:
            params["discounts"] = change.discounts  # type: ignore[typeddict-item]
        if change.pause_collection is not None:
            behavior, resumes_at = change.pause_collection
            params["pause_collection"] = {
                "behavior": behavior,
                "resumes_at": _ts(resumes_at),
            }
        if change.swap_price is not None:
            item_id, price_id, proration = change.swap_price
            params["items"] = [{"id": item_id, "price": price_id}]
            params["proration_behavior"] = proration
        if change.trial_end is not None:
            params["trial_end"] = _ts(change.trial_end)
        if change.cancel_at_period_end is not None:
            params["cancel_at_period_end"] = change.cancel_at_period_end
        if change.cancellation_details is not None:
            params["cancellation_details"] = change.cancellation_details  # type: ignore[typeddict-item]
        subs = self._client.v1.subscriptions
        obj = self._call(
            lambda: subs.update(subscription_id, params, {"idempotency_key": idempotency_key})
        )
        return self._fetched(obj)

    def cancel_subscription_now(
        self,
        subscription_id: str,
        *,
        invoice_now: bool,
        prorate: bool,
        cancellation_details: dict[str, str] | None,
        idempotency_key: str,
    ) -> FetchedSubscription:
        # A DELETE ignores the key on Stripe; the caller reads the state first instead.
        params: SubscriptionCancelParams = {"invoice_now": invoice_now, "prorate": prorate}
        if cancellation_details:
            params["cancellation_details"] = cancellation_details  # type: ignore[typeddict-item]
        subs = self._client.v1.subscriptions
        obj = self._call(
            lambda: subs.cancel(subscription_id, params, {"idempotency_key": idempotency_key})
        )
        # The DELETE's answer (not expanded) holds all a cancel needs: status and dates.
        return self._fetched(obj)


def _coupon_label(coupon: stripe.Coupon) -> str:
    if coupon.percent_off is not None:
        off = f"{coupon.percent_off:g}% off"
    else:
        off = f"{coupon.amount_off} {str(coupon.currency or '').upper()} (minor units) off"
    months = f" for {coupon.duration_in_months} months" if coupon.duration_in_months else ""
    how_long = months if coupon.duration == "repeating" else f", {coupon.duration}"
    name = f"{coupon.name}: " if coupon.name else ""
    return f"{name}{off}{how_long} ({coupon.id})"


def _price_label(price: stripe.Price) -> str:
    recurring = price.recurring
    every = f"/{recurring.interval}" if recurring is not None else ""
    amount = (
        f"{price.unit_amount} {price.currency.upper()} (minor units){every}"
        if price.unit_amount is not None
        else price.currency.upper()
    )
    name = f"{price.nickname}: " if price.nickname else ""
    return f"{name}{amount} ({price.id})"
