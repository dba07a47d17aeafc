from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from stayflow.db import Base, BigIntPK, utcnow


class FieldMapping(Base):
    """A stayflow field filled from a source path, converted to a data type."""

    __tablename__ = "field_mappings"
    __table_args__ = (UniqueConstraint("app_pk", "field"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    app_pk: Mapped[int] = mapped_column(ForeignKey("apps.id", ondelete="CASCADE"), index=True)
    field: Mapped[str] = mapped_column(String(64))
    source: Mapped[str] = mapped_column(String(300))
    type: Mapped[str] = mapped_column(String(20))
    # For money: where the currency comes from (a source path); by default the plan's.
    currency_source: Mapped[str | None] = mapped_column(String(300), default=None)
    position: Mapped[int] = mapped_column(default=0)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
