from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class BillingActionOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    session_id: str
    action: str = Field(validation_alias="kind", description="apply_offer or cancel")
    subscription_id: str
    offer_id: str | None
    offer_type: str | None
    status: str = Field(
        description="pending (being retried), applied, skipped (nothing sent: use case off or "
        "no connection) or failed (Stripe refused, or retries ran out)"
    )
    plan: dict[str, Any] = Field(description="The parameters sent, frozen at the first attempt.")
    result: dict[str, Any] = Field(
        description="Per subscription, its state read back from Stripe after the action."
    )
    error: str | None
    attempts: int
    created_at: datetime
    finished_at: datetime | None


class BillingActionList(BaseModel):
    data: list[BillingActionOut]
    has_more: bool


class BillingEventOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    type: str
    data: dict[str, Any]
    created_at: datetime


class BillingEventList(BaseModel):
    data: list[BillingEventOut]
    has_more: bool


class OfferRefusalOut(BaseModel):
    offer_id: str
    offer_type: str | None
    message: str = Field(description="Why Stripe refused it, e.g. its coupon no longer exists.")
    session_id: str = Field(description="The session whose acceptance was refused.")
    refused_at: datetime


class OfferRefusalList(BaseModel):
    data: list[OfferRefusalOut] = Field(
        description="Offers Stripe refused under the current flows: hidden from subscribers "
        "until the flows are saved again (which checks them with Stripe)."
    )
