from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class AppOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    app_id: str
    name: str
    settings: dict[str, Any]
    created_at: datetime


class AppPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200)


class ApiKeyOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    key_id: str
    name: str
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None


class ApiKeyCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(default="default", min_length=1, max_length=200)


class ApiKeyCreated(ApiKeyOut):
    api_key: str = Field(description="The key itself; shown only this once.")


class AppDeleted(BaseModel):
    app_id: str
    deleted: bool = True
    rows: dict[str, int] = Field(description="Rows removed, per table.")


class SubscriberErase(BaseModel):
    """Name the subscriber by exactly one of the two ids."""

    model_config = ConfigDict(extra="forbid")

    subscription_id: str | None = Field(default=None, min_length=1, max_length=255)
    customer_id: str | None = Field(default=None, min_length=1, max_length=255)


class SubscriberErased(BaseModel):
    subscription_ids: list[str] = Field(description="The subscriptions whose traces were erased.")
    customer_ids: list[str]
    counts: dict[str, int] = Field(description="Rows erased or removed, per table.")
