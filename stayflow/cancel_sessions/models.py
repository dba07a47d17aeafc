from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from stayflow.db import Base, BigIntPK, JSONType, utcnow

SAVED = "saved"
DEFLECTED = "deflected"
CANCELED = "canceled"
REDIRECTED = "redirected"
ABANDONED = "abandoned"
# ``abandoned`` is not final: a subscriber who comes back before the link expires may still act.
FINAL_OUTCOMES = (SAVED, DEFLECTED, CANCELED, REDIRECTED)
OUTCOMES = (*FINAL_OUTCOMES, ABANDONED)


class CancelSession(Base):
    """One visit to the cancel flow, from precancel to its outcome."""

    __tablename__ = "cancel_sessions"
    __table_args__ = (
        Index("ix_cancel_sessions_app_pk_created_at", "app_pk", "created_at"),
        # The reports' comments, newest first, walk only the sessions that have one.
        Index(
            "ix_cancel_sessions_app_commented_at",
            "app_pk",
            "created_at",
            postgresql_where=text("reason_comment IS NOT NULL"),
            sqlite_where=text("reason_comment IS NOT NULL"),
        ),
        Index("ix_cancel_sessions_outcome_abandon_at", "outcome", "abandon_at"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    session_id: Mapped[str] = mapped_column(String(40), unique=True)
    app_pk: Mapped[int] = mapped_column(ForeignKey("apps.id", ondelete="CASCADE"))
    # SHA-256 of the page token; the token itself is only in the subscriber's URL.
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    subscription_id: Mapped[str] = mapped_column(String(255))
    signed: Mapped[bool] = mapped_column(default=True)
    # What the snippet sent, minus auth_hash and signed_fields: unsigned, the subscriber's.
    request_fields: Mapped[dict[str, Any]] = mapped_column(default=dict)
    # What a valid signed_fields token vouched for (nested), under ``signed.*`` in rules.
    signed_fields: Mapped[dict[str, Any]] = mapped_column(default=dict)
    # What the enricher added (dotted keys), at the first view.
    enriched_fields: Mapped[dict[str, Any]] = mapped_column(default=dict)
    locale: Mapped[str | None] = mapped_column(String(35), default=None)
    # From the request, else the app's default; None: the flow ends on stayflow's result page.
    save_return_url: Mapped[str | None] = mapped_column(String(2048), default=None)
    cancel_confirmation_url: Mapped[str | None] = mapped_column(String(2048), default=None)
    # The business page's origin when the snippet opened this session in a modal (checked
    # against the app's allowed origins at precancel and again at every view); None: redirect.
    embed_origin: Mapped[str | None] = mapped_column(String(255), default=None)
    experience_id: Mapped[str | None] = mapped_column(String(100), default=None)
    experiment_id: Mapped[str | None] = mapped_column(String(100), default=None)
    variant_id: Mapped[str | None] = mapped_column(String(100), default=None)
    # The experience's reasons, offers and copy as they were when assigned.
    flow: Mapped[dict[str, Any]] = mapped_column(default=dict)
    # The live flows version (flow_versions.number) the snapshot above was taken from.
    flow_version: Mapped[int | None] = mapped_column(default=None)
    offers_shown: Mapped[list[str]] = mapped_column(JSONType, default=list)
    reason_id: Mapped[str | None] = mapped_column(String(100), default=None)
    reason_feedback: Mapped[str | None] = mapped_column(String(40), default=None)
    reason_comment: Mapped[str | None] = mapped_column(Text, default=None)
    offer_accepted_id: Mapped[str | None] = mapped_column(String(100), default=None)
    outcome: Mapped[str | None] = mapped_column(String(16), default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    viewed_at: Mapped[datetime | None] = mapped_column(default=None)
    reason_at: Mapped[datetime | None] = mapped_column(default=None)
    outcome_at: Mapped[datetime | None] = mapped_column(default=None)
    expires_at: Mapped[datetime] = mapped_column()
    abandon_at: Mapped[datetime] = mapped_column()

    @property
    def finished(self) -> bool:
        return self.outcome in FINAL_OUTCOMES
