from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from stayflow.crypto import register_encrypted
from stayflow.db import Base, BigIntPK, JSONType, utcnow

PENDING = "pending"
SUCCEEDED = "succeeded"
FAILED = "failed"
DELIVERY_STATUSES = (PENDING, SUCCEEDED, FAILED)

WEBHOOK = "webhook"  # Standard Webhooks, signed
SLACK = "slack"  # a Slack incoming webhook: a formatted message, unsigned
EMAIL_DIGEST = "email_digest"  # a daily email (``url`` is mailto:), not per event
KINDS = (WEBHOOK, SLACK, EMAIL_DIGEST)

DISABLED_GONE = "gone"  # the endpoint answered 410
DISABLED_FAILING = "failing"  # failing for 5 days


class WebhookEndpoint(Base):
    """Where an app wants its events delivered."""

    __tablename__ = "webhook_endpoints"
    __table_args__ = (Index("ix_webhook_endpoints_app_pk_enabled", "app_pk", "enabled"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    endpoint_id: Mapped[str] = mapped_column(String(40), unique=True)
    app_pk: Mapped[int] = mapped_column(ForeignKey("apps.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(20), default=WEBHOOK)
    url: Mapped[str] = mapped_column(String(2048))
    description: Mapped[str] = mapped_column(String(500), default="")
    # Empty: every type.
    event_types: Mapped[list[str]] = mapped_column(JSONType, default=list)
    enabled: Mapped[bool] = mapped_column(default=True)
    # Also send Brightback's legacy ``X-Hub-Signature`` (HMAC-SHA1 of the body).
    legacy_signature: Mapped[bool] = mapped_column(default=False)
    # ``whsec_...``, encrypted; during a rotation the previous one signs too until it expires.
    secret_encrypted: Mapped[str] = mapped_column(Text)
    previous_secret_encrypted: Mapped[str | None] = mapped_column(Text, default=None)
    previous_secret_expires_at: Mapped[datetime | None] = mapped_column(default=None)
    disabled_reason: Mapped[str | None] = mapped_column(String(20), default=None)
    disabled_at: Mapped[datetime | None] = mapped_column(default=None)
    # The failure streak: when it began, and failures counted at least 12 h apart.
    failing_since: Mapped[datetime | None] = mapped_column(default=None)
    failure_strikes: Mapped[int] = mapped_column(default=0)
    last_strike_at: Mapped[datetime | None] = mapped_column(default=None)
    # Bumped by every new delivery; the delivery job stops only if it did not move.
    enqueued_seq: Mapped[int] = mapped_column(BigInteger, default=0)
    # The one delivery job queued or running for this endpoint (None: none).
    pending_job_id: Mapped[int | None] = mapped_column(BigInteger, default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class WebhookDelivery(Base):
    """One event owed to one endpoint; delivered in ``id`` order per endpoint."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        Index("ix_webhook_deliveries_endpoint_pk_status_id", "endpoint_pk", "status", "id"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    app_pk: Mapped[int] = mapped_column(ForeignKey("apps.id", ondelete="CASCADE"))
    endpoint_pk: Mapped[int] = mapped_column(ForeignKey("webhook_endpoints.id", ondelete="CASCADE"))
    event_id: Mapped[int] = mapped_column(ForeignKey("billing_events.id", ondelete="CASCADE"))
    # ``webhook-id``: the same for every attempt and every resend of this event.
    msg_id: Mapped[str] = mapped_column(String(60))
    status: Mapped[str] = mapped_column(String(16), default=PENDING)
    attempts: Mapped[int] = mapped_column(default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_status_code: Mapped[int | None] = mapped_column(default=None)
    last_error: Mapped[str | None] = mapped_column(Text, default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(default=None)


class WebhookAttempt(Base):
    """One HTTP request made for a delivery: the endpoint's delivery log."""

    __tablename__ = "webhook_attempts"
    __table_args__ = (Index("ix_webhook_attempts_endpoint_pk_id", "endpoint_pk", "id"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    app_pk: Mapped[int] = mapped_column(ForeignKey("apps.id", ondelete="CASCADE"))
    endpoint_pk: Mapped[int] = mapped_column(ForeignKey("webhook_endpoints.id", ondelete="CASCADE"))
    delivery_pk: Mapped[int] = mapped_column(
        ForeignKey("webhook_deliveries.id", ondelete="CASCADE")
    )
    event_id: Mapped[int] = mapped_column(BigInteger)
    msg_id: Mapped[str] = mapped_column(String(60))
    at: Mapped[datetime] = mapped_column(default=utcnow)
    status_code: Mapped[int | None] = mapped_column(default=None)
    latency_ms: Mapped[int] = mapped_column(default=0)
    # The first KB of the answer's body.
    response: Mapped[str] = mapped_column(Text, default="")
    error: Mapped[str | None] = mapped_column(Text, default=None)
    succeeded: Mapped[bool] = mapped_column(default=False)


register_encrypted(WebhookEndpoint, "secret_encrypted", "previous_secret_encrypted")
