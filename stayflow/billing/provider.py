"""The billing provider interface: what stayflow needs from a billing system, in its own types.

One interface per kind of integration (Netflix/dispatch style). The Stripe adapter
in ``stayflow.billing.stripe`` implements it; nothing outside that package sees a
``stripe`` object. Times are aware UTC, money is integer minor units + currency.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any, Protocol

from stayflow.errors import StayflowError

# --- our own records ---------------------------------------------------------


@dataclass(frozen=True)
class Product:
    id: str
    name: str | None = None
    metadata: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Price:
    id: str
    currency: str
    unit_amount: int | None
    # Stripe's unit_amount_decimal: minor units, possibly fractional.
    unit_amount_decimal: Decimal | None
    interval: str | None
    interval_count: int | None
    billing_scheme: str | None
    nickname: str | None
    product_id: str | None
    product: Product | None = None


@dataclass(frozen=True)
class SubscriptionItem:
    id: str
    quantity: int | None
    price: Price
    current_period_start: datetime | None
    current_period_end: datetime | None


@dataclass(frozen=True)
class Customer:
    id: str
    email: str | None = None
    name: str | None = None
    created: datetime | None = None
    metadata: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Coupon:
    id: str
    name: str | None = None
    percent_off: Decimal | None = None
    amount_off: int | None = None
    currency: str | None = None
    duration: str | None = None
    duration_in_months: int | None = None


@dataclass(frozen=True)
class Discount:
    id: str | None
    coupon: Coupon | None
    promotion_code_id: str | None = None


@dataclass(frozen=True)
class Subscription:
    id: str
    status: str
    customer_id: str
    customer: Customer | None
    currency: str | None
    items: list[SubscriptionItem]
    discounts: list[Discount]
    created: datetime | None
    start_date: datetime | None
    trial_start: datetime | None
    trial_end: datetime | None
    cancel_at_period_end: bool
    cancel_at: datetime | None
    canceled_at: datetime | None
    ended_at: datetime | None
    paused: bool
    livemode: bool
    metadata: dict[str, str] = field(default_factory=dict)

    @property
    def current_period_start(self) -> datetime | None:
        # Since API 2025-03-31 periods live on items; the subscription's is the latest start.
        starts = [i.current_period_start for i in self.items if i.current_period_start]
        return max(starts) if starts else None

    @property
    def current_period_end(self) -> datetime | None:
        ends = [i.current_period_end for i in self.items if i.current_period_end]
        return min(ends) if ends else None


@dataclass(frozen=True)
class SubscriptionPage:
    subscriptions: list[Subscription]
    # The raw objects as the provider sent them, for the mirror (same order).
    raw: list[dict[str, Any]]
    has_more: bool

    @property
    def last_id(self) -> str | None:
        return self.subscriptions[-1].id if self.subscriptions else None


@dataclass(frozen=True)
class FetchedSubscription:
    subscription: Subscription
    raw: dict[str, Any]


@dataclass(frozen=True)
class PermissionCheck:
    """One Stripe permission and whether the key has it (None: could not tell)."""

    permission: str
    granted: bool | None
    message: str | None = None


@dataclass(frozen=True)
class AccountInfo:
    account_id: str | None
    livemode: bool
    key_kind: str  # "secret" or "restricted"


@dataclass(frozen=True)
class WebhookEndpoint:
    id: str
    url: str
    secret: str | None
    enabled_events: list[str]


@dataclass(frozen=True)
class WebhookEvent:
    id: str
    type: str
    created: int
    object: dict[str, Any]
    livemode: bool
    raw: dict[str, Any]


@dataclass(frozen=True)
class EventPage:
    """One page of ``GET /v1/events`` (newest first), and whether older ones follow."""

    events: list[WebhookEvent]
    has_more: bool


@dataclass(frozen=True)
class Invoice:
    """What attribution needs of an invoice: money is integer minor units; times epoch seconds."""

    id: str
    subscription_id: str | None
    customer_id: str | None
    status: str
    currency: str | None
    amount_due: int
    amount_paid: int
    created: int
    paid_at: int | None


@dataclass(frozen=True)
class InvoicePage:
    invoices: list[Invoice]
    has_more: bool

    @property
    def last_id(self) -> str | None:
        return self.invoices[-1].id if self.invoices else None


# --- errors ------------------------------------------------------------------


class BillingError(StayflowError):
    """Anything that went wrong talking to the billing provider."""

    status_code = 502
    error_type = "billing_error"


class BillingUnavailable(BillingError):
    """Down, slow (timeout), rate limited or answering 5xx: try later or fall back."""

    status_code = 503
    error_type = "billing_unavailable"


class BillingAuthenticationFailed(BillingError):
    status_code = 400
    error_type = "billing_authentication_failed"


class BillingPermissionDenied(BillingError):
    status_code = 400
    error_type = "billing_permission_denied"


class BillingObjectMissing(BillingError):
    status_code = 404
    error_type = "billing_object_missing"


class BillingInvalidRequest(BillingError):
    status_code = 400
    error_type = "billing_invalid_request"


class InvalidWebhookSignature(StayflowError):
    status_code = 400
    error_type = "invalid_signature"


# --- the interface -----------------------------------------------------------


class BillingProvider(Protocol):
    """What stayflow asks of a billing system, for one connected app."""

    def retrieve_subscription(self, subscription_id: str) -> FetchedSubscription: ...

    def list_subscriptions(
        self, *, starting_after: str | None = None, limit: int = 100
    ) -> SubscriptionPage: ...

    def list_products(
        self, *, starting_after: str | None = None, limit: int = 100
    ) -> tuple[list[dict[str, Any]], bool]:
        """One page of products as raw objects, and whether more follow."""
        ...

    def iter_subscriptions(
        self, *, starting_after: str | None = None
    ) -> Iterator[SubscriptionPage]: ...

    def list_events(
        self,
        *,
        types: list[str],
        created_gte: int | None = None,
        starting_after: str | None = None,
        limit: int = 100,
    ) -> EventPage:
        """One page of events of these types (``prefix.*`` allowed), newest first."""
        ...

    def list_invoices(
        self,
        *,
        created_gte: int | None = None,
        starting_after: str | None = None,
        limit: int = 100,
    ) -> InvoicePage: ...

    def retrieve_coupon_raw(self, coupon_id: str) -> dict[str, Any]: ...

    def retrieve_customer_raw(self, customer_id: str) -> dict[str, Any]:
        """The customer with its discount's coupon expanded."""
        ...

    def account_info(self) -> AccountInfo: ...

    def check_permissions(self) -> list[PermissionCheck]: ...

    def create_webhook_endpoint(self, url: str, events: list[str]) -> WebhookEndpoint: ...

    def update_webhook_endpoint(self, endpoint_id: str, events: list[str]) -> WebhookEndpoint: ...

    def delete_webhook_endpoint(self, endpoint_id: str) -> None: ...

    @property
    def calls(self) -> int:
        """Requests made through this provider object (for benchmarks and session records)."""
        ...


# --- billing actions: writes (issue 6) -----------------------------------------


class BillingBusy(BillingUnavailable):
    """A transient refusal (429, 409, 5xx, network): retry, after ``retry_after`` if given."""

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class BillingOfferRefused(BillingInvalidRequest):
    """Stripe refused what an offer names (a coupon, promotion code or price gone or
    inactive), not the subscription: retrying cannot help, another offer might."""

    error_type = "billing_offer_refused"


class BillingIdempotencyConflict(BillingInvalidRequest):
    """The same Idempotency-Key was used with other parameters (Stripe's idempotency_error)."""

    error_type = "billing_idempotency_conflict"


@dataclass(frozen=True)
class CouponState:
    id: str
    valid: bool
    currency: str | None = None


@dataclass(frozen=True)
class PromotionCodeState:
    id: str
    active: bool
    coupon_id: str | None


@dataclass(frozen=True)
class PriceState:
    id: str
    active: bool
    currency: str
    recurring: bool
    product_id: str | None = None


@dataclass(frozen=True)
class CatalogEntry:
    """Something an offer can name (a coupon, promotion code or price), for a picker."""

    id: str
    label: str


@dataclass(frozen=True)
class OfferCatalog:
    """What an offer can name in the connected account: valid coupons, active promotion
    codes, active recurring prices (the first page of each, at most 100)."""

    coupons: list[CatalogEntry]
    promotion_codes: list[CatalogEntry]
    prices: list[CatalogEntry]


@dataclass(frozen=True)
class SubscriptionChange:
    """One ``POST /v1/subscriptions/{id}``: only the fields set are sent."""

    # [{"coupon": id}] / [{"discount": id}]: a filled list replaces the existing discounts.
    discounts: list[dict[str, str]] | None = None
    # (behavior, resumes_at): "void" or "mark_uncollectible".
    pause_collection: tuple[str, datetime] | None = None
    # (subscription item id, new price id, proration_behavior).
    swap_price: tuple[str, str, str] | None = None
    trial_end: datetime | None = None
    cancel_at_period_end: bool | None = None
    cancellation_details: dict[str, str] | None = None


class BillingWriter(Protocol):
    """The writes billing actions make, each with a caller-chosen Idempotency-Key."""

    def retrieve_subscription(self, subscription_id: str) -> FetchedSubscription: ...

    def retrieve_coupon(self, coupon_id: str) -> CouponState: ...

    def retrieve_promotion_code(self, promotion_code_id: str) -> PromotionCodeState: ...

    def retrieve_price(self, price_id: str) -> PriceState: ...

    def offer_catalog(self) -> OfferCatalog:
        """Coupons, promotion codes and prices an offer could name (reads only)."""
        ...

    def customer_subscriptions(self, customer_id: str) -> list[Subscription]:
        """Every subscription of the customer (any status), bounded to a few pages."""
        ...

    def update_subscription(
        self, subscription_id: str, change: SubscriptionChange, *, idempotency_key: str
    ) -> FetchedSubscription: ...

    def cancel_subscription_now(
        self,
        subscription_id: str,
        *,
        invoice_now: bool,
        prorate: bool,
        cancellation_details: dict[str, str] | None,
        idempotency_key: str,
    ) -> FetchedSubscription: ...
