"""The page model: what the HTML page renders and what headless clients get as JSON."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

Step = Literal["reason", "offers", "confirm", "finished", "expired"]


class ReasonOut(BaseModel):
    id: str
    label: str
    comment: bool = Field(description="Whether this reason asks for a comment.")


class OfferOut(BaseModel):
    id: str
    type: str
    headline: str
    body: str
    button: str
    details: dict[str, Any] = Field(
        default_factory=dict, description="Type-specific terms: duration, interval, days, url."
    )


class Copy(BaseModel):
    title: str
    intro: str
    offers_title: str
    confirm_title: str
    confirm_body: str


class BrandingOut(BaseModel):
    company_name: str | None = None
    logo: str | None = None
    primary_color: str = "#3B5BDB"
    background_color: str = "#F5F6FA"


class Actions(BaseModel):
    reason: str
    accept: str
    deflect: str
    cancel: str


class ResultOut(BaseModel):
    """What a finished session did, as the subscriber reads it."""

    state: Literal["done", "processing", "failed"] = Field(
        description="done: applied (or nothing to apply); processing: our billing provider "
        "did not confirm in time and the change is being retried; failed: it could not be "
        "applied and the business has been told."
    )
    heading: str
    message: str = Field(description="The sentence that says what happened, e.g. the date.")


class PageModel(BaseModel):
    session_id: str
    step: Step = Field(
        description="reason: ask why; offers: show the offers that fit; confirm: no offer "
        "fits, confirm; finished / expired: nothing more to do."
    )
    outcome: str | None
    locale: str
    reason_required: bool
    copy_text: Copy = Field(alias="copy", serialization_alias="copy")
    reasons: list[ReasonOut]
    selected_reason_id: str | None
    comment: str | None
    offers: list[OfferOut] = Field(description="The offers that fit the chosen reason.")
    csrf_token: str = Field(description="Send back as csrf_token or X-CSRF-Token on every POST.")
    actions: Actions
    branding: BrandingOut
    return_url: str = Field(description="Where 'never mind' leads (save_return_url).")
    redirect_url: str | None = Field(
        default=None, description="For a finished session: where its outcome leads."
    )
    result: ResultOut | None = Field(
        default=None, description="For a finished session: what happened, in its language."
    )

    model_config = {"populate_by_name": True}


class ActionResultOut(BaseModel):
    outcome: str | None
    redirect_url: str | None
    replayed: bool = False
    billing: Literal["done", "processing", "failed", "refused"] | None = Field(
        default=None,
        description="For an accepted offer or a cancel: done (applied in Stripe, or nothing to "
        "send), processing (being retried: tell the subscriber it is being processed, do not "
        "ask for a second click), failed, or refused (Stripe refused the offer: nothing was "
        "saved and the session is back on its offers step, without that offer).",
    )
    page: PageModel


class ActionBody(BaseModel):
    """The fields an action takes, as JSON or as a form."""

    csrf_token: str | None = None
    reason_id: str | None = Field(default=None, max_length=100)
    comment: str | None = Field(default=None, max_length=2000)
    offer_id: str | None = Field(default=None, max_length=100)
