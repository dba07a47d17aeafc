from __future__ import annotations

from datetime import date, datetime

from pydantic import BaseModel, ConfigDict, Field


class WatchOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    session_id: str
    subscription_id: str
    customer_id: str | None
    outcome: str = Field(description="saved, deflected or canceled")
    offer_id: str | None
    offer_type: str | None
    session_at: datetime
    window_days: int
    window_ends_at: datetime
    status: str = Field(
        description="pending, validated, lapsed or unmatched (saves); pending, confirmed or "
        "reactivated (cancels)"
    )
    status_at: datetime | None = Field(description="When the status took effect in Stripe.")
    cause: str | None = Field(description="Why it lapsed or is unmatched.")
    currency: str | None
    mrr_at_session: int | None = Field(description="Minor units of currency, before the offer.")
    mrr_kept: int
    mrr_lost: int
    cash_collected: int
    reactivated_subscription_id: str | None
    judged_at: datetime | None


class WatchList(BaseModel):
    data: list[WatchOut]
    has_more: bool


class CurrencyTotals(BaseModel):
    currency: str | None
    sessions: int = 0
    saves_pending: int = 0
    saves_validated: int = 0
    saves_lapsed: int = 0
    unmatched: int = 0
    cancels_pending: int = 0
    cancels_confirmed: int = 0
    cancels_reactivated: int = 0
    mrr_at_session: int = 0
    mrr_kept: int = 0
    mrr_lost: int = 0
    cash_collected: int = 0


class LastSync(BaseModel):
    at: datetime | None
    outcome: str | None
    mode: str | None
    stripe_requests: int
    error: str | None


class ConvertedTotals(BaseModel):
    """A combined figure in one currency, from the business's own dated rates: converted."""

    converted: bool = True
    currency: str
    rates_as_of: date
    mrr_kept: int
    mrr_lost: int
    cash_collected: int
    missing_rates: list[str] = Field(
        description="Currencies left out of the combined figure for want of a rate."
    )


class DataCard(BaseModel):
    since: datetime | None
    until: datetime | None
    window_days: int
    last_sync: LastSync
    sessions_matched: int
    sessions_unmatched: int
    sessions_abandoned: int = Field(description="Reported apart: never counted as saves.")
    saves_pending: int
    saves_validated: int
    saves_lapsed: int
    cancels_confirmed: int
    cancels_reactivated: int
    per_currency: list[CurrencyTotals]
    converted: ConvertedTotals | None


class SettingsIn(BaseModel):
    window_days: int = Field(ge=1, le=365, description="The validation window, 1-365 days.")


class RateIn(BaseModel):
    currency: str = Field(min_length=3, max_length=3, pattern="^[A-Za-z]{3}$")
    base_currency: str = Field(min_length=3, max_length=3, pattern="^[A-Za-z]{3}$")
    rate: str = Field(
        max_length=40,
        pattern=r"^[0-9]{1,18}(\.[0-9]{1,18})?$",
        description="1 currency = rate base_currency (major units), e.g. 0.0067",
    )
    valid_from: date


class RatesIn(BaseModel):
    rates: list[RateIn] = Field(max_length=500)


class RateOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    currency: str
    base_currency: str
    rate: str
    valid_from: date


class SettingsOut(BaseModel):
    window_days: int
    rates: list[RateOut]
