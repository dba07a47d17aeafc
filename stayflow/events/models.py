from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from stayflow.db import Base, BigIntPK, utcnow


class Event(Base):
    """One thing that happened in an app (``session.saved``, ``billing.action.failed``, ...).

    Written in the same transaction as the change it records; outbound webhooks, alerts and
    the admin's timeline read it. The table keeps its first name, ``billing_events``, from
    when it held billing outcomes only (renaming it would break running deployments).
    """

    __tablename__ = "billing_events"
    __table_args__ = (Index("ix_billing_events_app_pk_id", "app_pk", "id"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    app_pk: Mapped[int] = mapped_column(ForeignKey("apps.id", ondelete="CASCADE"))
    type: Mapped[str] = mapped_column(String(60))
    data: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
