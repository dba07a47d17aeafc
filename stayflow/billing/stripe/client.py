"""The Stripe adapter: one explicit ``StripeClient`` per app, our own records out.

No global ``stripe.api_key``: each connected app gets its own client, built with
its own key, the sandbox base when ``STAYFLOW_STRIPE_API_BASE`` is set, a short
timeout and an explicit retry count. Requests are typed with stripe-python's
params TypedDicts so mypy catches a wrong parameter name.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping
from typing import Any, TypeVar
from urllib.parse import quote

import stripe
from stripe._base_address import BaseAddresses
from stripe.params import (
    CouponListParams,
    CouponRetrieveParams,
    CustomerListParams,
    CustomerRetrieveParams,
    EventListParams,
    InvoiceListParams,
    PriceListParams,
    ProductListParams,
    PromotionCodeListParams,
    SubscriptionListParams,
    SubscriptionRetrieveParams,
    WebhookEndpointCreateParams,
    WebhookEndpointUpdateParams,
)

from stayflow.billing.provider import (
    AccountInfo,
    BillingAuthenticationFailed,
    BillingError,
    BillingInvalidRequest,
    BillingObjectMissing,
    BillingPermissionDenied,
    BillingUnavailable,
    EventPage,
    FetchedSubscription,
    InvalidWebhookSignature,
    InvoicePage,
    PermissionCheck,
    SubscriptionPage,
    WebhookEndpoint,
    WebhookEvent,
)
from stayflow.billing.stripe.convert import invoice_from, subscription_from

log = logging.getLogger("stayflow.billing.stripe")

T = TypeVar("T")

# What a subscription read expands: the customer and each item's price's product.
SUBSCRIPTION_EXPAND = ["customer", "items.data.price.product", "discounts.source.coupon"]
LIST_EXPAND = ["customer", "discounts.source.coupon"]
WEBHOOK_TOLERANCE_SECONDS = 300
# Ids that cannot exist: an update to one answers 404 when the key may write, 403 when not.
PROBE_SUBSCRIPTION_ID = "sub_stayflowpermissionprobe"
PROBE_WEBHOOK_ENDPOINT_ID = "we_stayflowpermissionprobe"


class _CallCounter:
    """Stripe requests made by this process, for benchmarks and session records."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.value = 0

    def add(self) -> None:
        with self._lock:
            self.value += 1


STRIPE_CALLS = _CallCounter()

_clients: OrderedDict[tuple[str, str | None, float, int], stripe.StripeClient] = OrderedDict()
_clients_lock = threading.Lock()
_MAX_CLIENTS = 512


def stripe_client(
    api_key: str, *, api_base: str | None, timeout: float, max_network_retries: int
) -> stripe.StripeClient:
    """The process's client for this key and these limits (connection pooling per app)."""
    fingerprint = hashlib.sha256(api_key.encode()).hexdigest()
    cache_key = (fingerprint, api_base, timeout, max_network_retries)
    with _clients_lock:
        client = _clients.get(cache_key)
        if client is not None:
            _clients.move_to_end(cache_key)
            return client
        base_addresses: BaseAddresses = {"api": api_base} if api_base else {}
        client = stripe.StripeClient(
            api_key,
            base_addresses=base_addresses,
            max_network_retries=max_network_retries,
            http_client=stripe.HTTPXClient(timeout=timeout, allow_sync_methods=True),
        )
        _clients[cache_key] = client
        while len(_clients) > _MAX_CLIENTS:
            _clients.popitem(last=False)
        return client


def _raw_json(obj: stripe.StripeObject) -> dict[str, Any]:
    """The object exactly as Stripe's JSON had it (the SDK turns *_decimal into Decimal)."""
    response = obj.last_response
    if response is not None and response.body:
        found = json.loads(response.body)
        if isinstance(found, dict):
            return found
    encoded: dict[str, Any] = json.loads(json.dumps(obj.to_dict(), default=str))
    return encoded


_KEY_IN_TEXT = re.compile(r"\b(?:sk|rk|pk)_(?:test|live)_[A-Za-z0-9*]+")


def _translate(exc: stripe.StripeError) -> BillingError:
    """Stripe's error classes into ours; no key, not even Stripe's masked form, in a message."""
    message = exc.user_message or str(exc) or exc.__class__.__name__
    message = _KEY_IN_TEXT.sub("[key]", message)
    if isinstance(exc, stripe.APIConnectionError):
        # The SDK's own text ends with a support address; say what happened instead.
        cause = "timed out" if "timeout" in message.lower() else "connection failed"
        return BillingUnavailable(f"cannot reach Stripe ({cause})")
    if isinstance(exc, stripe.RateLimitError):
        return BillingUnavailable(f"Stripe rate limit: {message}")
    if isinstance(exc, stripe.AuthenticationError):
        return BillingAuthenticationFailed(f"Stripe refused the key: {message}")
    if isinstance(exc, stripe.PermissionError):
        return BillingPermissionDenied(message)
    status = exc.http_status or 0
    if status == 404 or exc.code == "resource_missing":
        return BillingObjectMissing(message)
    if status >= 500 or isinstance(exc, stripe.APIError):
        return BillingUnavailable(f"Stripe answered {status or 'an error'}: {message}")
    if isinstance(exc, stripe.InvalidRequestError):
        return BillingInvalidRequest(message)
    return BillingError(message)


class StripeBillingProvider:
    """The ``BillingProvider`` for one app's Stripe account."""

    def __init__(
        self,
        api_key: str,
        *,
        api_base: str | None = None,
        timeout: float = 1.5,
        max_network_retries: int = 0,
    ) -> None:
        self._api_key = api_key
        self._client = stripe_client(
            api_key, api_base=api_base, timeout=timeout, max_network_retries=max_network_retries
        )
        self._calls = 0

    def __repr__(self) -> str:  # never show the key
        return "StripeBillingProvider(key=[redacted])"

    @property
    def calls(self) -> int:
        return self._calls

    def _call(self, fn: Callable[[], T]) -> T:
        self._calls += 1
        STRIPE_CALLS.add()
        try:
            return fn()
        except stripe.StripeError as exc:
            raise _translate(exc) from None

    def _get_json(self, path: str, params: Mapping[str, Any]) -> dict[str, Any]:
        """A GET whose JSON we keep as Stripe sent it.

        The SDK's typed resource objects cost ~4 ms per subscription to build (0.4 s for a
        page of 100) and turn *_decimal strings into Decimal; reads here take the same
        typed params but skip that, and parse the body once.
        """
        response = self._call(lambda: self._client.raw_request("get", path, **params))
        body = json.loads(response.body)
        if not isinstance(body, dict):
            raise BillingError("Stripe answered something that is not a JSON object")
        return body

    # --- reads ------------------------------------------------------------

    def retrieve_subscription(self, subscription_id: str) -> FetchedSubscription:
        params: SubscriptionRetrieveParams = {"expand": SUBSCRIPTION_EXPAND}
        raw = self._get_json(f"/v1/subscriptions/{quote(subscription_id, safe='')}", params)
        return FetchedSubscription(subscription=subscription_from(raw), raw=raw)

    def list_subscriptions(
        self, *, starting_after: str | None = None, limit: int = 100
    ) -> SubscriptionPage:
        params: SubscriptionListParams = {
            "limit": max(1, min(100, limit)),
            "status": "all",
            # Expansion stops at 4 levels, so a list cannot reach data.items.data.price.product:
            # products come from list_products.
            "expand": ["data." + path for path in LIST_EXPAND],
        }
        if starting_after:
            params["starting_after"] = starting_after
        body = self._get_json("/v1/subscriptions", params)
        raw = [item for item in body.get("data", []) if isinstance(item, dict)]
        return SubscriptionPage(
            subscriptions=[subscription_from(r) for r in raw],
            raw=raw,
            has_more=bool(body.get("has_more")),
        )

    def list_products(
        self, *, starting_after: str | None = None, limit: int = 100
    ) -> tuple[list[dict[str, Any]], bool]:
        params: ProductListParams = {"limit": max(1, min(100, limit))}
        if starting_after:
            params["starting_after"] = starting_after
        body = self._get_json("/v1/products", params)
        data = [item for item in body.get("data", []) if isinstance(item, dict)]
        return data, bool(body.get("has_more"))

    def iter_subscriptions(
        self, *, starting_after: str | None = None
    ) -> Iterator[SubscriptionPage]:
        cursor = starting_after
        while True:
            page = self.list_subscriptions(starting_after=cursor)
            yield page
            if not page.has_more or page.last_id is None:
                return
            cursor = page.last_id

    def list_events(
        self,
        *,
        types: list[str],
        created_gte: int | None = None,
        starting_after: str | None = None,
        limit: int = 100,
    ) -> EventPage:
        params: EventListParams = {"limit": max(1, min(100, limit))}
        if len(types) == 1:
            params["type"] = types[0]
        elif types:
            params["types"] = types[:20]
        if created_gte is not None:
            params["created"] = {"gte": created_gte}
        if starting_after:
            params["starting_after"] = starting_after
        body = self._get_json("/v1/events", params)
        events: list[WebhookEvent] = []
        for item in body.get("data", []):
            data = item.get("data") if isinstance(item, dict) else None
            obj = data.get("object") if isinstance(data, dict) else None
            if not isinstance(item, dict) or not item.get("id") or not isinstance(obj, dict):
                continue
            events.append(
                WebhookEvent(
                    id=str(item["id"]),
                    type=str(item.get("type") or ""),
                    created=int(item.get("created") or 0),
                    object=obj,
                    livemode=bool(item.get("livemode")),
                    raw=item,
                )
            )
        return EventPage(events=events, has_more=bool(body.get("has_more")))

    def list_invoices(
        self,
        *,
        created_gte: int | None = None,
        starting_after: str | None = None,
        limit: int = 100,
    ) -> InvoicePage:
        params: InvoiceListParams = {"limit": max(1, min(100, limit))}
        if created_gte is not None:
            params["created"] = {"gte": created_gte}
        if starting_after:
            params["starting_after"] = starting_after
        body = self._get_json("/v1/invoices", params)
        raw = [item for item in body.get("data", []) if isinstance(item, dict)]
        return InvoicePage(
            invoices=[invoice_from(r) for r in raw], has_more=bool(body.get("has_more"))
        )

    def retrieve_coupon_raw(self, coupon_id: str) -> dict[str, Any]:
        """A coupon as Stripe sends it (a customer's discount names it only by id in lists
        and events)."""
        params: CouponRetrieveParams = {}
        return self._get_json(f"/v1/coupons/{quote(coupon_id, safe='')}", params)

    def retrieve_customer_raw(self, customer_id: str) -> dict[str, Any]:
        """A customer as Stripe sends it, its discount's coupon expanded (``deleted: true``
        for a deleted customer)."""
        params: CustomerRetrieveParams = {"expand": ["discount.source.coupon"]}
        return self._get_json(f"/v1/customers/{quote(customer_id, safe='')}", params)

    def account_info(self) -> AccountInfo:
        kind = "restricted" if self._api_key.startswith("rk_") else "secret"
        livemode = "_live_" in self._api_key[:8]
        try:
            account = self._call(lambda: self._client.v1.accounts.retrieve_current())
        except (BillingPermissionDenied, BillingObjectMissing, BillingInvalidRequest):
            # A restricted key may not read the account; the key still works.
            return AccountInfo(account_id=None, livemode=livemode, key_kind=kind)
        return AccountInfo(account_id=account.id, livemode=livemode, key_kind=kind)

    # --- permissions ------------------------------------------------------

    def check_permissions(self) -> list[PermissionCheck]:
        """Harmless calls, one per permission: a list of 1, an update of an id that cannot exist."""
        c = self._client.v1
        probes: list[tuple[str, Callable[[], object]]] = [
            ("subscriptions:read", lambda: c.subscriptions.list(SubscriptionListParams(limit=1))),
            (
                "subscriptions:write",
                lambda: c.subscriptions.update(PROBE_SUBSCRIPTION_ID, {"metadata": {}}),
            ),
            ("customers:read", lambda: c.customers.list(CustomerListParams(limit=1))),
            ("products:read", lambda: c.products.list(ProductListParams(limit=1))),
            ("prices:read", lambda: c.prices.list(PriceListParams(limit=1))),
            ("coupons:read", lambda: c.coupons.list(CouponListParams(limit=1))),
            (
                "promotion_codes:read",
                lambda: c.promotion_codes.list(PromotionCodeListParams(limit=1)),
            ),
            ("events:read", lambda: c.events.list(EventListParams(limit=1))),
            ("invoices:read", lambda: c.invoices.list(InvoiceListParams(limit=1))),
            (
                "webhook_endpoints:write",
                lambda: c.webhook_endpoints.update(PROBE_WEBHOOK_ENDPOINT_ID, {"metadata": {}}),
            ),
        ]
        results: list[PermissionCheck] = []
        for permission, probe in probes:
            try:
                self._call(probe)
            except BillingObjectMissing:
                # The probe id does not exist, so the key was allowed to ask.
                results.append(PermissionCheck(permission, True))
            except BillingPermissionDenied as exc:
                results.append(PermissionCheck(permission, False, exc.message))
            except BillingAuthenticationFailed:
                raise
            except BillingUnavailable:
                raise
            except BillingError as exc:
                results.append(PermissionCheck(permission, None, exc.message))
            else:
                results.append(PermissionCheck(permission, True))
        return results

    # --- webhook endpoints ------------------------------------------------

    def create_webhook_endpoint(self, url: str, events: list[str]) -> WebhookEndpoint:
        params: WebhookEndpointCreateParams = {
            "url": url,
            "enabled_events": events,  # type: ignore[typeddict-item]
            "description": "stayflow mirror",
        }
        endpoint = self._call(lambda: self._client.v1.webhook_endpoints.create(params))
        return WebhookEndpoint(
            id=endpoint.id,
            url=endpoint.url,
            secret=endpoint.secret,
            enabled_events=list(endpoint.enabled_events),
        )

    def update_webhook_endpoint(self, endpoint_id: str, events: list[str]) -> WebhookEndpoint:
        """Replace the endpoint's ``enabled_events`` (its url and secret stay)."""
        params: WebhookEndpointUpdateParams = {
            "enabled_events": events,  # type: ignore[typeddict-item]
        }
        endpoint = self._call(lambda: self._client.v1.webhook_endpoints.update(endpoint_id, params))
        return WebhookEndpoint(
            id=endpoint.id,
            url=endpoint.url,
            secret=None,
            enabled_events=list(endpoint.enabled_events),
        )

    def delete_webhook_endpoint(self, endpoint_id: str) -> None:
        try:
            self._call(lambda: self._client.v1.webhook_endpoints.delete(endpoint_id))
        except BillingObjectMissing:
            pass


def verify_webhook(
    payload: bytes, signature_header: str | None, secret: str, *, now: int | None = None
) -> WebhookEvent:
    """Check ``Stripe-Signature`` (300 s tolerance) and parse the event, or raise 400."""
    if not signature_header:
        raise InvalidWebhookSignature("missing Stripe-Signature header")
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidWebhookSignature("the body is not UTF-8") from None
    try:
        stripe.WebhookSignature.verify_header(
            text, signature_header, secret, tolerance=WEBHOOK_TOLERANCE_SECONDS
        )
    except stripe.SignatureVerificationError as exc:
        raise InvalidWebhookSignature(f"bad Stripe-Signature: {exc.user_message or exc}") from None
    try:
        body = json.loads(text)
    except ValueError:
        raise InvalidWebhookSignature("the body is not JSON") from None
    data = body.get("data") if isinstance(body, dict) else None
    obj = data.get("object") if isinstance(data, dict) else None
    if not isinstance(body, dict) or not body.get("id") or not isinstance(obj, dict):
        raise InvalidWebhookSignature("not a Stripe event")
    return WebhookEvent(
        id=str(body["id"]),
        type=str(body.get("type") or ""),
        created=int(body.get("created") or 0),
        object=obj,
        livemode=bool(body.get("livemode")),
        raw=body,
    )
