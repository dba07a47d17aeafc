from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator

from stayflow.ops.input_limits import json_safe
from stayflow.page.schemas import ResultOut

# Stored fields are read through json_safe: a row stored before the edge checks (or by
# hand) that nests too deep must not make the whole admin list fail.
StoredJSON = Annotated[dict[str, Any], BeforeValidator(json_safe)]


class PrecancelRequest(BaseModel):
    """What the snippet's ``handleData`` receives (Brightback's fields); any other field, at
    any level (``context``, ``timestamp``, ``offer_1_url``, ...), is kept as given."""

    model_config = ConfigDict(extra="allow")

    app_id: str = Field(min_length=1, max_length=40)
    subscription_id: str = Field(
        min_length=1, max_length=255, description="A string, or a number (kept as its digits)."
    )
    auth_hash: str | None = Field(
        default=None,
        max_length=128,
        description="hex HMAC-SHA256 of subscription_id with the app secret, made server-side.",
    )
    signed_fields: str | None = Field(
        default=None,
        max_length=16_000,
        description="Fields the business vouches for: v1.<base64url JSON {subscription_id, "
        "timestamp, fields}>.<hex HMAC-SHA256 of the text before the last dot>, made "
        "server-side. Its fields are under signed.* for audience rules.",
    )
    email: str | None = Field(default=None, max_length=320)
    first_name: str | None = Field(default=None, max_length=200)
    last_name: str | None = Field(default=None, max_length=200)
    full_name: str | None = Field(default=None, max_length=400)
    save_return_url: str | None = Field(
        default=None,
        min_length=1,
        max_length=2048,
        description="Where a saved subscriber goes; default: the app's, else stayflow's "
        "result page.",
    )
    cancel_confirmation_url: str | None = Field(
        default=None,
        min_length=1,
        max_length=2048,
        description="Where a cancelled subscriber goes; default: the app's, else stayflow's "
        "result page.",
    )
    locale: str | None = Field(default=None, max_length=35)
    account: dict[str, Any] = Field(
        default_factory=dict,
        description="Brightback's account: internal_id, billing_id, plan, plan_term, value, "
        "company_name, created_at (epoch seconds or milliseconds, or ISO 8601; stored as ISO).",
    )
    custom: dict[str, Any] = Field(default_factory=dict)
    mode: Literal["redirect", "modal"] | None = Field(
        default=None,
        description="modal: the page will be framed by the calling page (its Origin, which "
        "must be one of the app's allowed origins); the answer then carries embed_nonce. "
        "Default: redirect.",
    )

    @field_validator("subscription_id", mode="before")
    @classmethod
    def _number_as_text(cls, value: Any) -> Any:
        if isinstance(value, int) and not isinstance(value, bool):
            return str(value)
        return value

    @field_validator("account")
    @classmethod
    def _created_at(cls, value: dict[str, Any]) -> dict[str, Any]:
        if "created_at" in value:
            moment = _moment(value["created_at"])
            if moment is not None:
                return {**value, "created_at": moment.isoformat().replace("+00:00", "Z")}
        return value

    @field_validator("subscription_id")
    @classmethod
    def _printable(cls, value: str) -> str:
        if not value.isprintable() or value.strip() != value:
            raise ValueError("subscription_id must be printable with no surrounding spaces")
        return value


# Epoch numbers above this are milliseconds (1e11 seconds is the year 5138).
_MILLISECONDS_FROM = 100_000_000_000


def _moment(value: Any) -> datetime | None:
    """An account's created_at as aware UTC: epoch seconds or milliseconds, or ISO 8601."""
    number: float | None = None
    if isinstance(value, int | float) and not isinstance(value, bool):
        number = float(value)
    elif isinstance(value, str) and value.strip().isdigit():
        number = float(value.strip())
    try:
        if number is not None:
            if abs(number) >= _MILLISECONDS_FROM:
                number /= 1000
            return datetime.fromtimestamp(number, UTC)
        if isinstance(value, str):
            parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
            return parsed.astimezone(UTC) if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    except (OverflowError, OSError, ValueError):
        return None
    return None


class PrecancelOk(BaseModel):
    valid: bool = True
    url: str = Field(description="The hosted cancel page for this session.")
    message: str = Field(description="The same URL (Brightback's answer carries it here).")
    session_id: str
    embed_nonce: str | None = Field(
        default=None,
        description="mode modal only: the secret the framed page and the calling page put in "
        "every message they exchange (postMessage).",
    )


class PrecancelError(BaseModel):
    valid: bool = False
    message: str = Field(description="Why, in words (Brightback's field).")
    error: dict[str, Any]


class CancelSessionOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    session_id: str
    subscription_id: str
    signed: bool
    request_fields: StoredJSON = Field(
        description="What the snippet sent: unsigned, the subscriber could have changed it."
    )
    signed_fields: StoredJSON = Field(
        default_factory=dict, description="What the business's signed_fields token vouched for."
    )
    enriched_fields: StoredJSON
    locale: str | None
    save_return_url: str | None = Field(description="None: stayflow's own result page.")
    cancel_confirmation_url: str | None = Field(description="None: stayflow's own result page.")
    experience_id: str | None
    experiment_id: str | None
    variant_id: str | None
    flow_version: int | None = Field(
        default=None,
        description="The flows version (GET /api/v1/flows/versions/{n}) the page was built "
        "from; None until the page is first opened.",
    )
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
