from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from stayflow.crypto import register_encrypted
from stayflow.db import Base, BigIntPK, JSONType, utcnow


class BillingConnection(Base):
    """An app's link to its Stripe account: the key (encrypted), what it may do, the setup.

    The row outlives a disconnect (the key and webhook secret are erased, the setup stays).
    """

    __tablename__ = "billing_connections"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    app_pk: Mapped[int] = mapped_column(ForeignKey("apps.id", ondelete="CASCADE"), unique=True)
    provider: Mapped[str] = mapped_column(String(20), default="stripe")
    api_key_encrypted: Mapped[str | None] = mapped_column(Text, default=None)
    key_kind: Mapped[str | None] = mapped_column(String(20), default=None)
    account_id: Mapped[str | None] = mapped_column(String(100), default=None)
    livemode: Mapped[bool] = mapped_column(default=False)
    # {"subscriptions:read": {"granted": true|false|null, "message": "..."}, ...}
    permissions: Mapped[dict[str, Any]] = mapped_column(default=dict)
    checked_at: Mapped[datetime | None] = mapped_column(default=None)
    connected_at: Mapped[datetime | None] = mapped_column(default=None)
    # The Stripe webhook endpoint feeding the mirror.
    webhook_endpoint_id: Mapped[str | None] = mapped_column(String(100), default=None)
    webhook_secret_encrypted: Mapped[str | None] = mapped_column(Text, default=None)
    webhook_managed: Mapped[bool] = mapped_column(default=False)
    webhook_configured_at: Mapped[datetime | None] = mapped_column(default=None)
    # The event types the managed endpoint was last asked for (None: before this was kept);
    # a sync brings an endpoint whose list differs from billing.service.WEBHOOK_EVENTS up to date.
    webhook_events: Mapped[list[str] | None] = mapped_column(JSONType, default=None)
    last_event_at: Mapped[datetime | None] = mapped_column(default=None)
    # Use cases on/off and cancel options (see billing.schemas.BillingSetup).
    setup: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    @property
    def connected(self) -> bool:
        return self.api_key_encrypted is not None


register_encrypted(BillingConnection, "api_key_encrypted", "webhook_secret_encrypted")
