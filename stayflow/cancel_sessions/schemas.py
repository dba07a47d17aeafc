from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator

from stayflow.ops.input_limits import json_safe
from stayflow.page.schemas import ResultOut

# Stored fields are read through json_safe: a row stored before the edge checks (or by
# hand) that nests too deep must not make the whole admin list fail.
StoredJSON = Annotated[dict[str, Any], BeforeValidator(json_safe)]


class PrecancelRequest(BaseModel):
    """What the snippet's ``handleData`` receives; other top-level fields are kept as given."""

    model_config = ConfigDict(extra="allow")

    app_id: str = Field(min_length=1, max_length=40)
    subscription_id: str = Field(min_length=1, max_length=255)
    auth_hash: str | None = Field(
        default=None,
        max_length=128,
        description="hex HMAC-SHA256 of subscription_id with the app secret, made server-side.",
    )
    email: str | None = Field(default=None, max_length=320)
    first_name: str | None = Field(default=None, max_length=200)
    save_return_url: str = Field(min_length=1, max_length=2048)
    cancel_confirmation_url: str = Field(min_length=1, max_length=2048)
    locale: str | None = Field(default=None, max_length=35)
    account: dict[str, Any] = Field(default_factory=dict)
    custom: dict[str, Any] = Field(default_factory=dict)

    @field_validator("subscription_id")
    @classmethod
    def _printable(cls, value: str) -> str:
        if not value.isprintable() or value.strip() != value:
            raise ValueError("subscription_id must be printable with no surrounding spaces")
        return value


class PrecancelOk(BaseModel):
    valid: bool = True
    url: str = Field(description="The hosted cancel page for this session.")
    session_id: str


class PrecancelError(BaseModel):
    valid: bool = False
    error: dict[str, str]


class CancelSessionOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    session_id: str
    subscription_id: str
    signed: bool
    request_fields: StoredJSON
    enriched_fields: StoredJSON
    locale: str | None
    save_return_url: str
    cancel_confirmation_url: str
    experience_id: str | None
    experiment_id: str | None
    variant_id: str | None
    offers_shown: list[str]
    reason_id: str | None
    reason_feedback: str | None
    reason_comment: str | None
    offer_accepted_id: str | None
    outcome: str | None
    created_at: datetime
    viewed_at: datetime | None
    reason_at: datetime | None
    outcome_at: datetime | None
    expires_at: datetime
    result: ResultOut | None = Field(
        default=None,
        description="One session only: what its outcome did, in the subscriber's language, as "
        "the result page says it (a cancel's effective date and that no further charge "
        "will be made).",
    )


class CancelSessionList(BaseModel):
    data: list[CancelSessionOut]
    has_more: bool = Field(description="Pass the last session_id as starting_after for more.")
