"""Imports every domain's models so that Base.metadata knows every table."""

from stayflow.admin.models import AdminSession, LoginThrottle, Membership, User
from stayflow.apps.models import ApiKey, App
from stayflow.attribution.models import (
    AttributionState,
    AttributionWatch,
    ExchangeRate,
    MirrorInvoice,
)
from stayflow.billing.actions.models import BillingAction, BillingEvent
from stayflow.billing.models import BillingConnection
from stayflow.cancel_sessions.models import CancelSession
from stayflow.crypto import register_encrypted
from stayflow.enrichment.models import FieldMapping
from stayflow.events.models import Event
from stayflow.flows.models import FlowConfig, FlowVersion
from stayflow.jobs.models import Job
from stayflow.mirror.models import (
    MirrorBackfill,
    MirrorCustomer,
    MirrorProduct,
    MirrorSubscription,
    StripeEvent,
)
from stayflow.reports.models import (
    ReportDirty,
    ReportFact,
    ReportOfferRollup,
    ReportRollup,
    ReportSettings,
)
from stayflow.webhooks.models import WebhookAttempt, WebhookDelivery, WebhookEndpoint

__all__ = [
    "AdminSession",
    "ApiKey",
    "App",
    "AttributionState",
    "AttributionWatch",
    "BillingAction",
    "BillingConnection",
    "BillingEvent",
    "CancelSession",
    "Event",
    "ExchangeRate",
    "FieldMapping",
    "FlowConfig",
    "FlowVersion",
    "Job",
    "LoginThrottle",
    "Membership",
    "MirrorBackfill",
    "MirrorCustomer",
    "MirrorInvoice",
    "MirrorProduct",
    "MirrorSubscription",
    "ReportDirty",
    "ReportFact",
    "ReportOfferRollup",
    "ReportRollup",
    "ReportSettings",
    "StripeEvent",
    "User",
    "WebhookAttempt",
    "WebhookDelivery",
    "WebhookEndpoint",
]

# Secrets ``stayflow keys rotate`` re-encrypts (each domain registers its own beside its model).
register_encrypted(App, "secret_encrypted")
