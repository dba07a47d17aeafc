from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator


class StripeConnect(BaseModel):
    model_config = ConfigDict(extra="forbid")

    api_key: SecretStr = Field(description="A restricted key (rk_...) or a secret key (sk_...).")
    webhook_secret: SecretStr | None = Field(
        default=None,
        description="whsec_...; only needed when the key may not write webhook endpoints.",
    )


class CancelOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    at_period_end: bool = Field(
        default=True, description="Cancel at the end of the paid period (else now)."
    )
    invoice_now: bool = Field(
        default=False, description="On an immediate cancel, invoice outstanding charges now."
    )
    prorate: bool = Field(default=False, description="On an immediate cancel, credit unused time.")
    all_subscriptions: bool = Field(
        default=False, description="Cancel every active subscription of the customer."
    )

    @model_validator(mode="after")
    def _consistent(self) -> CancelOptions:
        if self.at_period_end and (self.invoice_now or self.prorate):
            raise ValueError(
                "invoice_now and prorate apply to an immediate cancel only; "
                "set at_period_end to false or turn them off"
            )
        return self


class StripeSetup(BaseModel):
    model_config = ConfigDict(extra="forbid")

    enrichment: bool = True
    attribution: bool = True
    offers: bool = True
    cancels: bool = True
    cancel: CancelOptions = Field(default_factory=CancelOptions)


class StripeSetupPatch(BaseModel):
    """Any subset of the setup; what is left out keeps its value."""

    model_config = ConfigDict(extra="forbid")

    enrichment: bool | None = None
    attribution: bool | None = None
    offers: bool | None = None
    cancels: bool | None = None
    cancel: CancelOptions | None = None


class UseCaseStatus(BaseModel):
    enabled: bool
    ready: bool
    needs: list[str]
    missing: list[str]
    unknown: list[str]


class WebhookStatus(BaseModel):
    configured: bool
    managed: bool
    endpoint_id: str | None
    url: str
    configured_at: datetime | None
    last_event_at: datetime | None
    note: str | None


class StripeStatus(BaseModel):
    provider: str = "stripe"
    connected: bool
    account_id: str | None
    livemode: bool | None
    key_kind: str | None
    connected_at: datetime | None
    checked_at: datetime | None
    permissions: dict[str, Any]
    use_cases: dict[str, UseCaseStatus]
    webhooks: WebhookStatus
    setup: StripeSetup


class SourceField(BaseModel):
    path: str
    sample: Any


class SourceFields(BaseModel):
    subscription_id: str
    source: str
    fields: list[SourceField]
