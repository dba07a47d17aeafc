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
