from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from stayflow.events.schemas import EVENT_TYPES

MAX_URL = 2048


def _check_url(value: str) -> str:
    value = value.strip()
    from urllib.parse import urlsplit

    parts = urlsplit(value)
    if parts.scheme == "mailto":
        addresses = [a.strip() for a in parts.path.split(",") if a.strip()]
        if (
            not addresses
            or len(addresses) > 20
            or any(
                a.count("@") != 1 or a.startswith("@") or a.endswith("@") or " " in a
                for a in addresses
            )
        ):
            raise ValueError("a mailto: URL needs 1 to 20 comma-separated addresses")
        return "mailto:" + ",".join(addresses)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("must be an absolute http(s) URL (or mailto: for an email digest)")
    if parts.username or parts.password:
        raise ValueError("must not carry credentials")
    return value


def check_kind_url(kind: str, url: str) -> None:
    if (kind == "email_digest") != url.startswith("mailto:"):
        raise ValueError("url: an email_digest endpoint takes a mailto: URL, and only it does")


def _check_types(value: list[str]) -> list[str]:
    unknown = sorted(set(value) - set(EVENT_TYPES))
    if unknown:
        raise ValueError(f"unknown event types {unknown}; known: {list(EVENT_TYPES)}")
    return sorted(set(value))


class EndpointCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: Literal["webhook", "slack", "email_digest"] = Field(
        "webhook",
        description="webhook (Standard Webhooks, signed), slack (a Slack incoming webhook: "
        "one formatted message per event) or email_digest (url is mailto:...; a daily email "
        "of the day's saves and cancels, over STAYFLOW_SMTP_URL).",
    )
    url: str = Field(max_length=MAX_URL)
    description: str = Field("", max_length=500)
    event_types: list[str] = Field(
        default_factory=list, max_length=50, description="Empty: every event type."
    )
    enabled: bool = True
    legacy_signature: bool = Field(
        False, description="Also send Brightback's X-Hub-Signature (HMAC-SHA1 of the body)."
    )

    _url = field_validator("url")(_check_url)
    _types = field_validator("event_types")(_check_types)

    @model_validator(mode="after")
    def _kind_matches_url(self) -> EndpointCreate:
        check_kind_url(self.kind, self.url)
        return self


class EndpointUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str | None = Field(None, max_length=MAX_URL)
    description: str | None = Field(None, max_length=500)
    event_types: list[str] | None = Field(None, max_length=50)
    enabled: bool | None = None
    legacy_signature: bool | None = None

    @field_validator("url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        return None if value is None else _check_url(value)

    @field_validator("event_types")
    @classmethod
    def _types(cls, value: list[str] | None) -> list[str] | None:
        return None if value is None else _check_types(value)


class EndpointOut(BaseModel):
    id: str
    kind: str
    url: str
    description: str
    event_types: list[str]
    enabled: bool
    legacy_signature: bool
    disabled_reason: str | None = Field(
        description="Why stayflow stopped delivering: gone (410) or failing (5 days)."
    )
    disabled_at: datetime | None
    failing_since: datetime | None
    previous_secret_expires_at: datetime | None
    created_at: datetime


class EndpointWithSecret(EndpointOut):
    secret: str = Field(description="whsec_...; shown only in this answer.")


class EndpointList(BaseModel):
    data: list[EndpointOut]


class RotateSecret(BaseModel):
    model_config = ConfigDict(extra="forbid")

    overlap_seconds: int = Field(
        86400, ge=0, le=7 * 86400, description="How long the old secret still signs too."
    )


class ResendRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    event_id: int | None = Field(None, ge=1, le=2**62)
    failed_since: datetime | None = Field(
        None, description="Resend every delivery to this endpoint that failed since then."
    )


class ResendResult(BaseModel):
    queued: int


class TestEventResult(BaseModel):
    event_id: int


class AttemptOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    event_id: int
    msg_id: str
    at: datetime
    status_code: int | None
    latency_ms: int
    response: str = Field(description="The first KB of the answer.")
    error: str | None
    succeeded: bool


class AttemptList(BaseModel):
    data: list[AttemptOut]
    has_more: bool


class DeliveryOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    event_id: int
    msg_id: str
    status: str
    attempts: int
    next_attempt_at: datetime
    last_status_code: int | None
    last_error: str | None
    created_at: datetime
    finished_at: datetime | None


class DeliveryList(BaseModel):
    data: list[DeliveryOut]
    has_more: bool


class EventOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    type: str
    data: dict[str, Any]
    created_at: datetime


class EventList(BaseModel):
    data: list[EventOut]
    has_more: bool
