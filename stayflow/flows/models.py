from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey
from sqlalchemy.orm import Mapped, mapped_column

from stayflow.db import Base, BigIntPK, utcnow


class FlowConfig(Base):
    """One app's flows document (normalized JSON), replaced as a whole on every change."""

    __tablename__ = "flow_configs"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    app_pk: Mapped[int] = mapped_column(ForeignKey("apps.id", ondelete="CASCADE"), unique=True)
    document: Mapped[dict[str, Any]] = mapped_column(default=dict)
    version: Mapped[int] = mapped_column(default=0)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
