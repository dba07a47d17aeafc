"""What the Settings pages show: Stripe's permission report, the cancel options, the app's
cancel-flow settings and the field mappings with converted samples (through the domains'
services)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError
from sqlalchemy.orm import Session

from stayflow.admin.i18n import N_, Message
from stayflow.apps.models import App
from stayflow.billing import service as billing_service
from stayflow.billing.schemas import StripeStatus
from stayflow.cancel_sessions import repository as sessions_repository
from stayflow.enrichment import service as enrichment_service
from stayflow.enrichment.models import FieldMapping
from stayflow.enrichment.types import FIELD_TYPES
from stayflow.settings import Settings

# Each use case in a line: what stayflow does in Stripe with it.
USE_CASES: dict[str, tuple[str, str]] = {
    "enrichment": (
        N_("Personalize the page"),
        N_(
            "Reads the subscription with its customer, price and product "
            "(GET /v1/subscriptions/{id}) to fill fields and target offers."
        ),
    ),
    "attribution": (
        N_("Prove saves"),
        N_(
            "Reads subscription changes and invoices (GET /v1/events) to check that each "
            "saved subscriber kept paying."
        ),
    ),
    "offers": (
        N_("Apply offers"),
        N_(
            "Updates the subscription when an offer is accepted: a coupon or promotion code "
            "(discounts), a pause (pause_collection) or a new price (items)."
        ),
    ),
    "cancels": (
        N_("Cancel in Stripe"),
        N_(
            "Cancels the subscription when the subscriber confirms. Off: your app cancels it "
            "(the subscription.canceled webhook tells you when)."
        ),
    ),
}
CANCEL_OPTIONS: dict[str, tuple[str, str]] = {
    "period_end": (
        N_("At the end of the paid period"),
        N_(
            "Sets cancel_at_period_end=true: the subscriber keeps access until the period "
            "ends, then Stripe cancels it."
        ),
    ),
    "now": (
        N_("Now"),
        N_("Deletes the subscription (DELETE /v1/subscriptions/{id}): it ends at once."),
    ),
    "invoice_now": (
        N_("Invoice now"),
        N_(
            "Immediate cancel only: Stripe invoices pending usage and proration items at once "
            "(invoice_now=true)."
        ),
    ),
    "prorate": (
        N_("Prorate"),
        N_("Immediate cancel only: Stripe credits the unused part of the period (prorate=true)."),
    ),
    "all_subscriptions": (
        N_("All of the customer's subscriptions"),
        N_(
            "Lists the customer's active subscriptions and cancels each, not only the one "
            "the subscriber opened the page for."
        ),
    ),
}
# Stripe's restricted-key editor names resources like this.
RESOURCE_NAMES = {
    "subscriptions": "Subscriptions",
    "customers": "Customers",
    "products": "Products",
    "prices": "Prices",
    "coupons": "Coupons",
    "promotion_codes": "Promotion Codes",
    "events": "Events",
    "webhook_endpoints": "Webhook Endpoints",
    "invoices": "Invoices",
}


def stripe_setting(permission: str) -> str:
    """``subscriptions:write`` as Stripe's key editor shows it: ``Subscriptions: Write``."""
    resource, _, level = permission.partition(":")
    name = RESOURCE_NAMES.get(resource, resource.replace("_", " ").title())
    return f"{name}: {level.title()}" if level else name


@dataclass
class PermissionRow:
    permission: str
    stripe_name: str
    state: str  # granted | missing | unknown


@dataclass
class UseCaseRow:
    name: str
    title: str
    explanation: str
    enabled: bool
    ready: bool
    permissions: list[PermissionRow]

    @property
    def missing(self) -> list[PermissionRow]:
        return [p for p in self.permissions if p.state == "missing"]


@dataclass
class StripePage:
    status: StripeStatus
    use_cases: list[UseCaseRow]
    webhook_missing: bool


def stripe_page(db: Session, app: App, settings: Settings) -> StripePage:
    status = billing_service.status(db, app, settings)
    rows: list[UseCaseRow] = []
    for name, use in status.use_cases.items():
        title, explanation = USE_CASES.get(name, (name, ""))
        permissions = [
            PermissionRow(
                p,
                stripe_setting(p),
                "missing" if p in use.missing else "unknown" if p in use.unknown else "granted",
            )
            for p in use.needs
        ]
        rows.append(UseCaseRow(name, title, explanation, use.enabled, use.ready, permissions))
    granted = status.permissions.get(billing_service.WEBHOOK_PERMISSION, {}).get("granted")
    return StripePage(status, rows, status.connected and granted is False)


def validation_message(exc: ValidationError) -> Message:
    """The first problem of a settings form, naming the field."""
    error = exc.errors()[0]
    where = ".".join(str(p) for p in error.get("loc", ())) or "form"
    text = str(error.get("msg", "invalid")).removeprefix("Value error, ")
    return Message("%(field)s: %(problem)s", field=where, problem=text)


def lines(value: str, limit: int = 50) -> list[str]:
    """A textarea's non-empty lines (at most ``limit``)."""
    return [line.strip() for line in value.splitlines() if line.strip()][:limit]


# --- field mappings ------------------------------------------------------------------------


@dataclass
class MappingRow:
    field: str
    source: str
    type: str
    currency_source: str | None
    sample: Any = None
    sample_state: str = "none"  # none (no sample loaded) | ok | missing | failed


@dataclass
class FieldsPage:
    mappings: list[MappingRow]
    subscription_id: str
    source: str | None = None
    fields: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    types: tuple[str, ...] = FIELD_TYPES


def latest_subscription_id(db: Session, app: App) -> str:
    """The newest session's subscription, a sensible sample to start from."""
    rows = sessions_repository.search_sessions(
        db,
        app,
        outcome=None,
        created_after=None,
        created_before=None,
        subscription_id=None,
        customer_id=None,
        limit=1,
    )
    return rows[0].subscription_id if rows else ""


def converted(
    field_name: str,
    source: str,
    field_type: str,
    currency_source: str | None,
    sample: dict[str, Any],
) -> tuple[str, Any]:
    """(state, value) of a mapping applied to the sample, by the enrichment's own rules."""
    mapping = FieldMapping(
        field=field_name, source=source, type=field_type, currency_source=currency_source
    )
    result = enrichment_service.apply_mappings([mapping], sample)
    if field_name in result.values:
        return "ok", result.values[field_name]
    return ("missing", None) if field_name in result.missing else ("failed", None)


def load_sample(
    db: Session, app: App, subscription_id: str, settings: Settings, encryptor: Any
) -> tuple[str | None, dict[str, Any], str | None]:
    """(source, flattened fields, error) of a sample subscription read through enrichment."""
    from stayflow.errors import StayflowError

    if not subscription_id:
        return None, {}, None
    try:
        source, fields = enrichment_service.source_fields(
            db, app.id, subscription_id, settings, encryptor
        )
    except StayflowError as exc:
        return None, {}, exc.message
    return source, fields, None


def fields_page(
    db: Session, app: App, subscription_id: str, settings: Settings, encryptor: Any
) -> FieldsPage:
    subscription_id = subscription_id.strip()[:255] or latest_subscription_id(db, app)
    source, sample, error = load_sample(db, app, subscription_id, settings, encryptor)
    rows = []
    for m in enrichment_service.list_mappings(db, app.id):
        row = MappingRow(m.field, m.source, m.type, m.currency_source)
        if sample:
            row.sample_state, row.sample = converted(
                m.field, m.source, m.type, m.currency_source, sample
            )
        rows.append(row)
    return FieldsPage(rows, subscription_id, source, sample, error)
