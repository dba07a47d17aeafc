"""Connecting an app to Stripe: key check, permissions per use case, webhook endpoint, setup.

Services never commit; the request or job that opened the session does.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from stayflow.apps.models import App
from stayflow.billing import repository
from stayflow.billing.config import billing_settings
from stayflow.billing.models import BillingConnection
from stayflow.billing.provider import (
    BillingAuthenticationFailed,
    BillingError,
    BillingInvalidRequest,
    BillingProvider,
    PermissionCheck,
)
from stayflow.billing.schemas import (
    CancelOptions,
    StripeSetup,
    StripeSetupPatch,
    StripeStatus,
    UseCaseStatus,
    WebhookStatus,
)
from stayflow.crypto import Encryptor
from stayflow.db import utcnow
from stayflow.errors import BadRequest, NotFound
from stayflow.settings import Settings

log = logging.getLogger("stayflow.billing")

# The Stripe permissions each use case needs (restricted keys grant them per resource).
USE_CASES: dict[str, list[str]] = {
    "enrichment": ["subscriptions:read", "customers:read", "products:read", "prices:read"],
    # Invoices for cash collected and dues; a customer's coupon: the customer when the mirror
    # lacks it, the coupon once per sync (lists and events name it only by id).
    "attribution": [
        "subscriptions:read",
        "events:read",
        "invoices:read",
        "customers:read",
        "coupons:read",
    ],
    # Promotion codes: an offer may name one (checked when the flow is saved, listed in the
    # editor's picker, resolved to its coupon when applied).
    "offers": ["subscriptions:write", "coupons:read", "promotion_codes:read", "prices:read"],
    "cancels": ["subscriptions:read", "subscriptions:write"],
}
WEBHOOK_PERMISSION = "webhook_endpoints:write"
# The events the mirror keeps itself current with: exactly what mirror.apply_event handles.
# A managed endpoint asked for another list is brought up to date by the next sync.
WEBHOOK_EVENTS = [
    "customer.subscription.created",
    "customer.subscription.updated",
    "customer.subscription.deleted",
    "customer.updated",
    "customer.discount.created",
    "customer.discount.updated",
    "customer.discount.deleted",
    "invoice.paid",
    "invoice.payment_failed",
    "product.created",
    "product.updated",
]
KEY_PREFIXES = ("sk_test_", "sk_live_", "rk_test_", "rk_live_")


class NotConnected(NotFound):
    error_type = "billing_not_connected"


class InvalidStripeKey(BadRequest):
    error_type = "invalid_stripe_key"


# How a provider is made for a key; tests may register a working alternative here.
ProviderFactory = Callable[[str, str | None, float, int], BillingProvider]


def _stripe_factory(
    api_key: str, api_base: str | None, timeout: float, retries: int
) -> BillingProvider:
    from stayflow.billing.stripe.client import StripeBillingProvider

    return StripeBillingProvider(
        api_key, api_base=api_base, timeout=timeout, max_network_retries=retries
    )


PROVIDER_FACTORIES: dict[str, ProviderFactory] = {"stripe": _stripe_factory}


def make_provider(
    settings: Settings, api_key: str, *, timeout: float, retries: int = 0
) -> BillingProvider:
    return PROVIDER_FACTORIES["stripe"](api_key, settings.stripe_api_base, timeout, retries)


@dataclass(frozen=True)
class Connected:
    """What a caller needs to talk to an app's Stripe: the key, in memory only."""

    app_pk: int
    api_key: str


def webhook_url(settings: Settings, app: App) -> str:
    return f"{settings.base_url}/stripe/webhooks/{app.app_id}"


def _validate_key(api_key: str) -> str:
    key = api_key.strip()
    if not key.startswith(KEY_PREFIXES) or len(key) > 255 or any(c.isspace() for c in key):
        raise InvalidStripeKey(
            "api_key must be a Stripe secret key (sk_test_/sk_live_) or restricted key "
            "(rk_test_/rk_live_)"
        )
    return key


_ACCOUNT_IN_MESSAGE = re.compile(r"on account '(acct_[A-Za-z0-9]{1,64})'")


def _account_from_messages(checks: list[PermissionCheck]) -> str | None:
    """A restricted key may not read /v1/account, but Stripe's 403 names the account."""
    for check in checks:
        found = _ACCOUNT_IN_MESSAGE.search(check.message or "")
        if found:
            return found.group(1)
    return None


def _permissions_doc(checks: list[PermissionCheck]) -> dict[str, Any]:
    return {c.permission: {"granted": c.granted, "message": c.message} for c in checks}


def connect(
    db: Session,
    app: App,
    settings: Settings,
    encryptor: Encryptor,
    *,
    api_key: str,
    webhook_secret: str | None,
) -> BillingConnection:
    """Check the key with harmless calls, register the mirror's webhook when allowed, store."""
    key = _validate_key(api_key)
    if webhook_secret is not None:
        webhook_secret = webhook_secret.strip()
        if not webhook_secret.startswith("whsec_") or len(webhook_secret) > 255:
            raise BadRequest("webhook_secret must be a Stripe signing secret (whsec_...)")
    provider = make_provider(settings, key, timeout=billing_settings().stripe_admin_timeout)
    try:
        checks = provider.check_permissions()
    except BillingAuthenticationFailed:
        raise InvalidStripeKey(
            "Stripe refused this key (invalid, expired or revoked); nothing was stored"
        ) from None
    account = provider.account_info()
    account_id = account.account_id or _account_from_messages(checks)
    conn = repository.get_or_create_connection(db, app)
    old_endpoint = conn.webhook_endpoint_id if conn.webhook_managed else None
    old_key = encryptor.decrypt(conn.api_key_encrypted) if conn.api_key_encrypted else None

    conn.api_key_encrypted = encryptor.encrypt(key)
    conn.key_kind = account.key_kind
    conn.account_id = account_id
    conn.livemode = account.livemode
    conn.permissions = _permissions_doc(checks)
    conn.checked_at = utcnow()
    conn.connected_at = utcnow()
    granted = {c.permission for c in checks if c.granted}
    if webhook_secret:
        conn.webhook_secret_encrypted = encryptor.encrypt(webhook_secret)
        conn.webhook_endpoint_id = None
        conn.webhook_managed = False
        conn.webhook_configured_at = utcnow()
        conn.webhook_events = None
    elif WEBHOOK_PERMISSION in granted:
        try:
            endpoint = provider.create_webhook_endpoint(webhook_url(settings, app), WEBHOOK_EVENTS)
        except BillingInvalidRequest as exc:
            # E.g. Stripe refuses a STAYFLOW_BASE_URL it cannot reach (http, localhost): the
            # key still works; the status says why the mirror gets no events.
            conn.permissions = {
                **conn.permissions,
                "webhook_registration": {"granted": False, "message": exc.message},
            }
            endpoint = None
        if endpoint is not None:
            if not endpoint.secret:
                raise BillingError("Stripe created the webhook endpoint without a signing secret")
            conn.webhook_secret_encrypted = encryptor.encrypt(endpoint.secret)
            conn.webhook_endpoint_id = endpoint.id
            conn.webhook_managed = True
            conn.webhook_configured_at = utcnow()
            conn.webhook_events = list(WEBHOOK_EVENTS)
    elif old_key != key:
        # Another account or key: an old secret would verify nothing useful.
        conn.webhook_secret_encrypted = None
        conn.webhook_endpoint_id = None
        conn.webhook_managed = False
        conn.webhook_configured_at = None
    if old_endpoint and old_endpoint != conn.webhook_endpoint_id and old_key:
        _delete_endpoint_quietly(settings, old_key, old_endpoint)
    log.info(
        "billing.stripe.connected",
        extra={"app_id": app.app_id, "key_kind": conn.key_kind, "livemode": conn.livemode},
    )
    return conn


def _delete_endpoint_quietly(settings: Settings, api_key: str, endpoint_id: str) -> None:
    try:
        make_provider(
            settings, api_key, timeout=billing_settings().stripe_admin_timeout
        ).delete_webhook_endpoint(endpoint_id)
    except BillingError as exc:
        log.warning(
            "billing.stripe.webhook_endpoint_delete_failed",
            extra={"endpoint_id": endpoint_id, "error": exc.message},
        )


def recheck(db: Session, app: App, settings: Settings, encryptor: Encryptor) -> BillingConnection:
    conn = repository.get_connection(db, app)
    if conn is None or conn.api_key_encrypted is None:
        raise NotConnected("this app is not connected to Stripe")
    provider = make_provider(
        settings,
        encryptor.decrypt(conn.api_key_encrypted),
        timeout=billing_settings().stripe_admin_timeout,
    )
    try:
        conn.permissions = _permissions_doc(provider.check_permissions())
    except BillingAuthenticationFailed:
        conn.permissions = {
            p: {"granted": False, "message": "Stripe refused the key"}
            for p in sorted({p for needs in USE_CASES.values() for p in needs})
        }
    conn.checked_at = utcnow()
    return conn


def disconnect(db: Session, app: App, settings: Settings, encryptor: Encryptor) -> None:
    conn = repository.get_connection(db, app)
    if conn is None or conn.api_key_encrypted is None:
        raise NotConnected("this app is not connected to Stripe")
    if conn.webhook_managed and conn.webhook_endpoint_id:
        _delete_endpoint_quietly(
            settings, encryptor.decrypt(conn.api_key_encrypted), conn.webhook_endpoint_id
        )
    conn.api_key_encrypted = None
    conn.webhook_secret_encrypted = None
    conn.webhook_endpoint_id = None
    conn.webhook_managed = False
    conn.webhook_configured_at = None
    conn.webhook_events = None
    conn.permissions = {}
    conn.account_id = None
    conn.key_kind = None
    conn.checked_at = None
    conn.connected_at = None
    log.info("billing.stripe.disconnected", extra={"app_id": app.app_id})


def get_setup(db: Session, app: App) -> StripeSetup:
    conn = repository.get_connection(db, app)
    return StripeSetup.model_validate(conn.setup if conn else {})


def cancel_options(db: Session, app: App) -> CancelOptions | None:
    """How stayflow will cancel this app's subscriptions, or None when it will not.

    None when no key is connected or cancels are off: the business cancels on its own,
    so stayflow cannot say when the subscription ends.
    """
    conn = repository.get_connection(db, app)
    if conn is None or conn.api_key_encrypted is None:
        return None
    setup = StripeSetup.model_validate(conn.setup or {})
    return setup.cancel if setup.cancels else None


def update_setup(db: Session, app: App, patch: StripeSetupPatch) -> StripeSetup:
    conn = repository.get_or_create_connection(db, app)
    current = StripeSetup.model_validate(conn.setup or {})
    merged = current.model_copy(update=patch.model_dump(exclude_none=True, exclude={"cancel"}))
    if patch.cancel is not None:
        merged = merged.model_copy(update={"cancel": patch.cancel})
    setup = StripeSetup.model_validate(merged.model_dump())
    conn.setup = setup.model_dump()
    return setup


def status(db: Session, app: App, settings: Settings) -> StripeStatus:
    conn = repository.get_connection(db, app)
    setup = StripeSetup.model_validate(conn.setup if conn else {})
    permissions = conn.permissions if conn and conn.connected else {}
    use_cases: dict[str, UseCaseStatus] = {}
    for name, needs in USE_CASES.items():
        missing = [p for p in needs if permissions.get(p, {}).get("granted") is False]
        unknown = [p for p in needs if permissions.get(p, {}).get("granted") is None]
        use_cases[name] = UseCaseStatus(
            enabled=bool(getattr(setup, name)),
            ready=bool(conn and conn.connected) and not missing and not unknown,
            needs=needs,
            missing=missing,
            unknown=unknown,
        )
    configured = bool(conn and conn.webhook_secret_encrypted)
    note: str | None = None
    registration = permissions.get("webhook_registration")
    if conn and conn.connected and not configured and registration:
        note = f"Stripe refused to create the webhook endpoint: {registration.get('message')}"
    elif conn and conn.connected and not configured:
        note = (
            f"the key lacks {WEBHOOK_PERMISSION}: create an endpoint at the url below in Stripe "
            "for " + ", ".join(WEBHOOK_EVENTS) + " and connect again with its webhook_secret"
        )
    return StripeStatus(
        connected=bool(conn and conn.connected),
        account_id=conn.account_id if conn else None,
        livemode=conn.livemode if conn and conn.connected else None,
        key_kind=conn.key_kind if conn else None,
        connected_at=conn.connected_at if conn else None,
        checked_at=conn.checked_at if conn else None,
        permissions=permissions,
        use_cases=use_cases,
        webhooks=WebhookStatus(
            configured=configured,
            managed=bool(conn and conn.webhook_managed),
            endpoint_id=conn.webhook_endpoint_id if conn else None,
            url=webhook_url(settings, app),
            configured_at=conn.webhook_configured_at if conn else None,
            last_event_at=conn.last_event_at if conn else None,
            note=note,
        ),
        setup=setup,
    )


@dataclass(frozen=True)
class StaleEndpoint:
    """stayflow's own endpoint, asked for another list of events than WEBHOOK_EVENTS."""

    endpoint_id: str
    asked: list[str] | None


def stale_endpoint(conn: BillingConnection | None) -> StaleEndpoint | None:
    """The managed endpoint to bring up to date, if its list is not WEBHOOK_EVENTS.

    Only an endpoint stayflow created (``webhook_managed``): one the business made and gave
    the secret of is theirs to change (the status names the events it needs).
    """
    if conn is None or not conn.connected or not conn.webhook_managed:
        return None
    if not conn.webhook_endpoint_id or conn.webhook_events == WEBHOOK_EVENTS:
        return None
    return StaleEndpoint(conn.webhook_endpoint_id, conn.webhook_events)


def update_endpoint_events(provider: BillingProvider, stale: StaleEndpoint) -> list[str] | None:
    """One POST setting the endpoint's events to WEBHOOK_EVENTS; what Stripe now has, or None
    when it refused (logged: the sync goes on, the next one tries again)."""
    try:
        endpoint = provider.update_webhook_endpoint(stale.endpoint_id, list(WEBHOOK_EVENTS))
    except BillingError as exc:
        log.warning(
            "billing.stripe.webhook_endpoint_update_failed",
            extra={"endpoint_id": stale.endpoint_id, "error": exc.message},
        )
        return None
    return endpoint.enabled_events


def record_endpoint_events(db: Session, app_pk: int, endpoint_id: str, events: list[str]) -> bool:
    """Record the list the endpoint now has, if the connection still names that endpoint."""
    conn = repository.get_connection_by_app_pk(db, app_pk)
    if conn is None or conn.webhook_endpoint_id != endpoint_id or not conn.webhook_managed:
        return False  # reconnected meanwhile: the new endpoint has its own list
    conn.webhook_events = list(events)
    log.info("billing.stripe.webhook_endpoint_updated", extra={"endpoint_id": endpoint_id})
    return True


def connected_key(encryptor: Encryptor, conn: BillingConnection | None) -> str | None:
    if conn is None or conn.api_key_encrypted is None:
        return None
    return encryptor.decrypt(conn.api_key_encrypted)


def webhook_secret(encryptor: Encryptor, conn: BillingConnection | None) -> str | None:
    if conn is None or conn.webhook_secret_encrypted is None:
        return None
    return encryptor.decrypt(conn.webhook_secret_encrypted)
