"""Every event type's ``data``, as Pydantic models: the JSON schemas in docs/webhooks.md.

An event delivered to a webhook endpoint is ``{"type", "timestamp", "data"}``; ``data`` is
one of the models below, chosen by ``type``.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field


class EventData(BaseModel):
    model_config = ConfigDict(extra="forbid")

    event_type: ClassVar[str] = ""
    summary: ClassVar[str] = ""


class Money(BaseModel):
    amount: int = Field(description="Integer minor units (cents).")
    currency: str = Field(description="ISO 4217 code, lower case.")


class OfferRef(BaseModel):
    id: str
    type: str = Field(description="discount, pause, extension, plan_change, redirect, ...")
    details: dict[str, Any] = Field(default_factory=dict, description="The offer as shown.")


class SessionBase(EventData):
    session_id: str
    subscription_id: str
    customer_id: str | None = Field(None, description="From Stripe, when enrichment knew it.")


class SessionCreated(SessionBase):
    event_type: ClassVar[str] = "session.created"
    summary: ClassVar[str] = (
        "A cancel session exists. Written when its page is first opened (or, if it never "
        "is, when it is marked abandoned), so precancel itself stays one INSERT."
    )
    signed: bool
    created_at: datetime
    experience_id: str | None = None
    experiment_id: str | None = None
    variant_id: str | None = None


class SessionDeflected(SessionBase):
    event_type: ClassVar[str] = "session.deflected"
    summary: ClassVar[str] = 'The subscriber left the flow without cancelling ("never mind").'
    at: datetime


class SessionSaved(SessionBase):
    event_type: ClassVar[str] = "session.saved"
    summary: ClassVar[str] = "The subscriber accepted an offer (outcome saved or redirected)."
    outcome: str = Field(description="saved, or redirected for a redirect offer")
    offer: OfferRef
    reason_id: str | None = None
    comment: str | None = None
    at: datetime


class SessionCanceled(SessionBase):
    event_type: ClassVar[str] = "session.canceled"
    summary: ClassVar[str] = "The subscriber confirmed the cancel."
    reason_id: str | None = None
    reason_feedback: str | None = None
    comment: str | None = None
    at: datetime


class SessionAbandoned(SessionBase):
    event_type: ClassVar[str] = "session.abandoned"
    summary: ClassVar[str] = (
        "Nobody acted on the session in time. Not final: the subscriber may still come back."
    )
    created_at: datetime
    at: datetime


class BillingActionResult(EventData):
    session_id: str
    action: str = Field(description="apply_offer or cancel")
    subscription_id: str
    offer_id: str | None = None
    offer_type: str | None = None
    status: str = Field(description="applied or failed")
    error: str | None = None
    result: dict[str, Any] = Field(
        default_factory=dict, description="Per subscription, its state read back from Stripe."
    )


class BillingActionSucceeded(BillingActionResult):
    event_type: ClassVar[str] = "billing.action.succeeded"
    summary: ClassVar[str] = "An accepted offer or a cancel was applied in Stripe."


class BillingActionFailed(BillingActionResult):
    event_type: ClassVar[str] = "billing.action.failed"
    summary: ClassVar[str] = "An accepted offer or a cancel could not be applied (for good)."


class BillingOfferRefused(BillingActionResult):
    event_type: ClassVar[str] = "billing.offer.refused"
    summary: ClassVar[str] = (
        "Stripe refused an accepted offer (its coupon, promotion code or price gone since the "
        "flows were saved), or the offer did not fit the subscription. Within the subscriber's "
        "request nothing is saved: they are back on the offers, without that offer."
    )
    scope: str = Field(
        description="offer: Stripe refused what the offer names (hidden from everyone until "
        "the flows are saved again); subscription: only this subscription cannot take it"
    )
    flows_version: int = Field(description="The flows version the offer was refused under.")


class BillingOutcome(BaseModel):
    action: str = Field(description="apply_offer or cancel")
    status: str = Field(description="applied, skipped (nothing sent) or failed")
    error: str | None = None


class SessionCompleted(SessionBase):
    event_type: ClassVar[str] = "session.completed"
    summary: ClassVar[str] = (
        "The whole story of a finished session in one payload. Written when the outcome is "
        "final and, if the outcome needs billing work, once that work is settled."
    )
    app_id: str
    outcome: str = Field(description="saved, redirected, deflected or canceled")
    account: dict[str, Any] = Field(default_factory=dict, description="The request's account.")
    custom: dict[str, Any] = Field(default_factory=dict, description="The request's custom.")
    mapped_fields: dict[str, Any] = Field(
        default_factory=dict, description="Enriched (dotted) fields, as rules saw them."
    )
    experience_id: str | None = None
    experiment_id: str | None = None
    variant_id: str | None = None
    customer_name: str | None = Field(None, description="From Stripe, else the request.")
    customer_email: str | None = Field(None, description="From Stripe, else the request.")
    plan_name: str | None = Field(None, description="The first item's product name.")
    reason_id: str | None = None
    reason_label: str | None = Field(None, description="The reason as the subscriber saw it.")
    reason_feedback: str | None = None
    comment: str | None = None
    offers_shown: list[str] = Field(default_factory=list)
    offer_accepted: OfferRef | None = None
    billing: BillingOutcome | None = Field(None, description="None when no billing was needed.")
    mrr: Money | None = Field(None, description="Monthly recurring revenue at the session.")
    mrr_after_offer: Money | None = Field(
        None, description="MRR once the accepted offer applies, where it can be computed."
    )
    created_at: datetime
    completed_at: datetime


class AttributionChange(EventData):
    """A watched session's status changed in attribution (docs/attribution.md)."""

    session_id: str
    subscription_id: str
    outcome: str = Field(description="saved, deflected or canceled")
    status: str
    at: datetime | None = Field(None, description="When the change took effect in Stripe.")
    cause: str | None = Field(None, description="Why a save lapsed (canceled, unpaid, ...).")
    currency: str | None = None
    mrr_at_session: int | None = Field(None, description="Minor units, before the offer.")
    mrr_kept: int
    mrr_lost: int
    cash_collected: int = Field(description="Paid invoices since the session, minor units.")
    reactivated_subscription_id: str | None = None


class SaveValidated(AttributionChange):
    event_type: ClassVar[str] = "save.validated"
    summary: ClassVar[str] = (
        "A save kept paying to the end of its validation window (30 days by default)."
    )


class SaveLapsed(AttributionChange):
    event_type: ClassVar[str] = "save.lapsed"
    summary: ClassVar[str] = (
        "A save was canceled, set to cancel or went unpaid inside its window (date and cause)."
    )


class CancelReactivated(AttributionChange):
    event_type: ClassVar[str] = "cancel.reactivated"
    summary: ClassVar[str] = (
        "A canceled session's customer started a paying subscription within 90 days."
    )


class WebhookEndpointDisabled(EventData):
    event_type: ClassVar[str] = "webhook.endpoint.disabled"
    summary: ClassVar[str] = (
        "stayflow stopped delivering to an endpoint: it answered 410 Gone, or it failed for 5 days."
    )
    endpoint_id: str
    url: str
    reason: str = Field(description="gone (HTTP 410) or failing")
    failing_since: datetime | None = None


class WebhookTest(EventData):
    event_type: ClassVar[str] = "webhook.test"
    summary: ClassVar[str] = 'Sent by the "send test event" action to one endpoint only.'
    endpoint_id: str
    message: str


EVENT_MODELS: dict[str, type[EventData]] = {
    m.event_type: m
    for m in (
        SessionCreated,
        SessionDeflected,
        SessionSaved,
        SessionCanceled,
        SessionAbandoned,
        SessionCompleted,
        BillingActionSucceeded,
        BillingActionFailed,
        BillingOfferRefused,
        SaveValidated,
        SaveLapsed,
        CancelReactivated,
        WebhookEndpointDisabled,
        WebhookTest,
    )
}
EVENT_TYPES = tuple(EVENT_MODELS)


def schema_of(event_type: str) -> dict[str, Any]:
    return EVENT_MODELS[event_type].model_json_schema(mode="serialization")


SCHEMA_BEGIN = "<!-- event-schemas:begin (generated by `python -m stayflow.events.schemas`) -->"
SCHEMA_END = "<!-- event-schemas:end -->"


def schemas_markdown() -> str:
    """The generated part of docs/webhooks.md: one JSON schema per event type."""
    parts = [SCHEMA_BEGIN, ""]
    for event_type, model in EVENT_MODELS.items():
        parts += [
            f"### `{event_type}`",
            "",
            model.summary,
            "",
            "```json",
            json.dumps(schema_of(event_type), indent=2, sort_keys=True),
            "```",
            "",
        ]
    parts.append(SCHEMA_END)
    return "\n".join(parts)


def render_doc(doc: str) -> str:
    """``doc`` with its generated section replaced by the current schemas."""
    start = doc.index(SCHEMA_BEGIN)
    end = doc.index(SCHEMA_END) + len(SCHEMA_END)
    return doc[:start] + schemas_markdown() + doc[end:]


if __name__ == "__main__":  # pragma: no cover - a maintenance command
    import sys
    from pathlib import Path

    path = Path(sys.argv[1] if len(sys.argv) > 1 else "docs/webhooks.md")
    path.write_text(render_doc(path.read_text()))
