from __future__ import annotations

from datetime import date, datetime

from pydantic import BaseModel, ConfigDict, Field


class FiltersOut(BaseModel):
    since: date
    until: date
    currency: str | None = None
    experience: str | None = None
    offer: str | None = None
    reason: str | None = None
    audience: str | None = None
    variant: str | None = None
    plan: str | None = None


class Figures(BaseModel):
    """One currency's figures (amounts in minor units of ``currency``)."""

    currency: str = Field(description='Lower-case ISO code; "" when unknown.')
    sessions: int
    saves: int
    deflects: int
    cancels: int
    abandoned: int
    decided: int = Field(description="saves + deflects + cancels")
    save_rate: float | None = Field(description="saves / decided; null with none decided")
    validated: int
    lapsed: int
    reactivations: int
    mrr_kept: int
    mrr_lost: int
    cash: int


class RevenueCard(BaseModel):
    last_sync_at: datetime | None
    last_sync_outcome: str | None
    sessions_matched: int
    sessions_unmatched: int


class FiguresOut(BaseModel):
    filters: FiltersOut
    source: str = Field(description="rollups, or facts when a filter the rollups lack is set")
    per_currency: list[Figures]
    revenue: RevenueCard


class Row(Figures):
    value: str = Field(description="The breakdown's value (a day for over-time).")


class TableOut(BaseModel):
    filters: FiltersOut
    dimension: str
    rows: list[Row]


class OfferRow(BaseModel):
    currency: str
    offer_id: str
    shown: int
    accepted: int
    acceptance_rate: float | None
    mrr_kept: int


class OffersOut(BaseModel):
    filters: FiltersOut
    rows: list[OfferRow]


class CommentOut(BaseModel):
    session_id: str
    created_at: datetime
    reason_id: str
    outcome: str
    comment: str


class CommentsOut(BaseModel):
    data: list[CommentOut]
    has_more: bool
    next_before_id: int | None


class SessionRowOut(BaseModel):
    session_id: str
    subscription_id: str
    customer_id: str | None
    created_at: datetime
    outcome_at: datetime | None
    outcome: str
    reason_id: str
    comment: str | None
    offer_id: str
    offers_shown: list[str]
    experience_id: str
    experiment_id: str
    variant_id: str
    plan: str
    interval: str
    attribution_status: str
    currency: str
    mrr_at_session: int | None
    mrr_kept: int
    mrr_lost: int
    cash: int


class SessionsOut(BaseModel):
    figure: str
    data: list[SessionRowOut]
    has_more: bool
    next_before_id: int | None


class SettingsIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    dedup_days: int = Field(60, ge=0, le=365)
    blocked_domains: list[str] = Field(default_factory=list, max_length=500)
    test_accounts: list[str] = Field(default_factory=list, max_length=500)


class SettingsOut(SettingsIn):
    recount_pending: bool


class IntervalOut(BaseModel):
    low: float
    high: float


class ComparisonOut(BaseModel):
    difference: float
    interval: IntervalOut = Field(description="Fixed-horizon 95% interval.")
    p_value: float
    msprt: float = Field(description="The mSPRT statistic; significant at >= 20 (alpha 0.05).")
    significant: bool = Field(description="By the always-valid (sequential) test.")
    sequential_interval: IntervalOut = Field(description="Always-valid 95% interval.")


class VariantOut(BaseModel):
    id: str
    experience: str | None
    holdout: bool
    is_control: bool
    weight: int
    sessions: int
    decided: int
    saves: int
    save_rate: float
    save_rate_interval: IntervalOut
    mrr_kept: int
    mrr_per_session: float


class VariantComparisonOut(BaseModel):
    variant: str
    save_rate: ComparisonOut
    revenue: ComparisonOut = Field(description="MRR kept per decided session, minor units.")
    verdict: str


class ExperimentOut(BaseModel):
    experiment_id: str
    active: bool
    control: str
    currency: str | None
    currencies: list[str]
    metric: str
    variants: list[VariantOut]
    comparisons: list[VariantComparisonOut]
    verdict: str
    enough_data: bool
    winner: str | None


class EndIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    promote: str | None = Field(
        None, max_length=100, description="A variant whose experience becomes the default."
    )


class EndOut(BaseModel):
    experiment_id: str
    promoted: str | None
    flows_version: int
