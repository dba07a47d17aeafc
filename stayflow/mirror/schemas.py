from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict


class WebhookReceived(BaseModel):
    received: bool = True
    event_id: str
    duplicate: bool


class BackfillStart(BaseModel):
    model_config = ConfigDict(extra="forbid")

    restart: bool = False


class BackfillOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    status: str
    pages: int
    subscriptions: int
    started_at: datetime
    finished_at: datetime | None
    error: str | None
