"""The offer types and their copy.

An offer is configuration: accepting one records the outcome and enqueues the
``billing.apply_offer`` job, whose handler (the billing part) does the Stripe
work described by the offer's type-specific fields.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from stayflow.flows.copy import validate_copy
from stayflow.flows.ids import Identifier

OFFER_TYPES = ("discount", "pause", "extension", "plan_change", "trial_extension", "redirect")
# Offers whose acceptance changes the subscription in the billing provider.
BILLING_OFFER_TYPES = frozenset(
    {"discount", "pause", "extension", "plan_change", "trial_extension"}
)

Interval = Literal["day", "week", "month"]
LOCAL_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})


def check_pass_thru_url(value: str) -> str:
    """An absolute https URL (http only to localhost), without credentials."""
    from urllib.parse import urlsplit

    parts = urlsplit(value.strip())
    host = parts.hostname or ""
    if parts.scheme not in ("https", "http") or not host or parts.username or parts.password:
        raise ValueError("a pass-thru URL must be an absolute https URL without credentials")
    if parts.scheme == "http" and host not in LOCAL_HOSTS:
        raise ValueError("a pass-thru URL must use https (http only for localhost)")
    return value.strip()


OverRenewal = Literal["refuse", "shorten"]


class OfferCopy(BaseModel):
    """Copy for one language; merge fields like ``{{ first_name | default('there') }}``."""

    model_config = ConfigDict(extra="forbid")

    headline: str | None = Field(default=None, max_length=300)
    body: str | None = Field(default=None, max_length=2000)
    button: str | None = Field(default=None, max_length=100)

    @field_validator("headline", "body", "button")
    @classmethod
    def _copy(cls, value: str | None) -> str | None:
        return validate_copy(value)


class OfferBase(OfferCopy):
    id: Identifier
    # Shown only after one of these reasons; empty means after any reason.
    reasons: list[Identifier] = Field(default_factory=list, max_length=50)
    # Shown only to subscribers in this audience (besides the experience's own audience).
    audience: Identifier | None = None
    translations: dict[str, OfferCopy] = Field(default_factory=dict)
    # Where the subscriber goes once this offer is accepted, with a signed token saying what
    # happened, so the business's server can make the change itself (docs/webhooks.md).
    pass_thru_url: str | None = Field(default=None, max_length=2000)

    @field_validator("pass_thru_url")
    @classmethod
    def _pass_thru(cls, value: str | None) -> str | None:
        return None if value is None else check_pass_thru_url(value)

    @field_validator("translations")
    @classmethod
    def _languages(cls, value: dict[str, OfferCopy]) -> dict[str, OfferCopy]:
        from stayflow.flows.copy import check_language_tags

        check_language_tags(value)
        return value


class DiscountOffer(OfferBase):
    type: Literal["discount"]
    coupon: str | None = Field(
        default=None,
        min_length=1,
        max_length=200,
        description="The billing provider's coupon id (or give promotion_code instead).",
    )
    promotion_code: str | None = Field(
        default=None,
        min_length=1,
        max_length=200,
        description="A Stripe promotion code id (promo_...), applied instead of a bare coupon: "
        "its restrictions and redemption count apply.",
    )
    existing_discount: Literal["replace", "keep"] = Field(
        default="replace",
        description="A discount the subscription already has: replace it with this coupon "
        "(Stripe's discounts array replaces), or keep it and add this one.",
    )

    @model_validator(mode="after")
    def _one_source(self) -> DiscountOffer:
        if (self.coupon is None) == (self.promotion_code is None):
            raise ValueError("a discount offer needs exactly one of coupon or promotion_code")
        return self


class PauseOffer(OfferBase):
    type: Literal["pause"]
    duration: int = Field(ge=1, le=365)
    interval: Interval = "month"
    over_renewal: OverRenewal = Field(
        default="refuse",
        description="When the period would cover a renewal and so give away more than it says "
        "(an annual plan's whole invoice): refuse (the offer is not shown to that subscriber) "
        "or shorten it to end before that renewal.",
    )


class ExtensionOffer(OfferBase):
    """A free period: collection is paused without charging for it."""

    type: Literal["extension"]
    duration: int = Field(ge=1, le=365)
    interval: Interval = "month"
    over_renewal: OverRenewal = Field(
        default="refuse",
        description="When the period would cover a renewal and so give away more than it says "
        "(an annual plan's whole invoice): refuse (the offer is not shown to that subscriber) "
        "or shorten it to end before that renewal.",
    )


class PlanChangeOffer(OfferBase):
    type: Literal["plan_change"]
    price: str = Field(min_length=1, max_length=200, description="The price id to switch to.")
    proration_behavior: Literal["create_prorations", "none", "always_invoice"] = "create_prorations"


class TrialExtensionOffer(OfferBase):
    type: Literal["trial_extension"]
    days: int = Field(ge=1, le=365)


class RedirectOffer(OfferBase):
    """Send the subscriber somewhere else (e.g. talk to support); no billing change."""

    type: Literal["redirect"]
    url: str = Field(min_length=1, max_length=2000)

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        from urllib.parse import urlsplit

        parts = urlsplit(value)
        if parts.scheme not in ("https", "http", "mailto") or (
            parts.scheme != "mailto" and not parts.hostname
        ):
            raise ValueError("a redirect offer's url must be an http(s) or mailto URL")
        return value


Offer = Annotated[
    DiscountOffer
    | PauseOffer
    | ExtensionOffer
    | PlanChangeOffer
    | TrialExtensionOffer
    | RedirectOffer,
    Field(discriminator="type"),
]
