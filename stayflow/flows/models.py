from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from stayflow.db import Base, BigIntPK, JSONType, utcnow


class FlowConfig(Base):
    """One app's live flows document (normalized JSON), replaced as a whole on every change,
    and at most one draft beside it (not live until published)."""

    __tablename__ = "flow_configs"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    app_pk: Mapped[int] = mapped_column(ForeignKey("apps.id", ondelete="CASCADE"), unique=True)
    document: Mapped[dict[str, Any]] = mapped_column(default=dict)
    # The number of the live version (flow_versions.number); 0 before the first change.
    version: Mapped[int] = mapped_column(default=0)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    draft: Mapped[dict[str, Any] | None] = mapped_column(JSONType, default=None)
    draft_message: Mapped[str | None] = mapped_column(String(500), default=None)
    draft_author: Mapped[str | None] = mapped_column(String(320), default=None)
    draft_updated_at: Mapped[datetime | None] = mapped_column(default=None)
    # The live version when the draft was last saved (the live flows may have moved on since).
    draft_base_version: Mapped[int | None] = mapped_column(default=None)


class FlowVersion(Base):
    """One change to an app's live flows: who, when, why, the whole document and the diff."""

    __tablename__ = "flow_versions"
    __table_args__ = (UniqueConstraint("app_pk", "number"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    app_pk: Mapped[int] = mapped_column(ForeignKey("apps.id", ondelete="CASCADE"))
    number: Mapped[int] = mapped_column()
    # An admin user's email, "api key <key id>", "cli", or "migration".
    author: Mapped[str] = mapped_column(String(320))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    message: Mapped[str | None] = mapped_column(String(500), default=None)
    document: Mapped[dict[str, Any]] = mapped_column(default=dict)
    # Unified diff (YAML) from the previous version's document to this one.
    diff: Mapped[str] = mapped_column(Text, default="")
