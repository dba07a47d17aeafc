"""The daily email digest: yesterday's saves and cancels, per ``email_digest`` endpoint.

An hourly schedule enqueues ``webhooks.send_digest`` for yesterday (UTC) for every enabled
``email_digest`` endpoint, with a unique key per (endpoint, day), so each day's digest is
sent once however many workers run; a failed send is retried by the job runner. Mail goes
out through ``STAYFLOW_SMTP_URL``: ``smtp://[user:password@]host[:port][?from=a@b&starttls=1]``
or ``smtps://...`` (TLS from the start). Without it no digest is sent.
"""

from __future__ import annotations

import smtplib
import ssl
from collections import Counter
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from email.message import EmailMessage
from urllib.parse import parse_qs, unquote, urlsplit

from sqlalchemy import select
from sqlalchemy.orm import Session

from stayflow.apps.models import App
from stayflow.db import utcnow
from stayflow.events.models import Event
from stayflow.events.schemas import SessionCompleted
from stayflow.jobs import service as jobs_service
from stayflow.webhooks import slack
from stayflow.webhooks.models import EMAIL_DIGEST, WebhookEndpoint

SEND_DIGEST_JOB = "webhooks.send_digest"
SCAN_DIGESTS_JOB = "webhooks.scan_digests"
MAX_LINES = 100
SMTP_TIMEOUT = 15.0


class SmtpNotConfigured(Exception):
    pass


@dataclass(frozen=True)
class SmtpTarget:
    host: str
    port: int
    username: str | None
    password: str | None
    sender: str
    tls: bool
    starttls: bool

    @classmethod
    def parse(cls, url: str) -> SmtpTarget:
        parts = urlsplit(url)
        if parts.scheme not in ("smtp", "smtps") or not parts.hostname:
            raise SmtpNotConfigured("STAYFLOW_SMTP_URL must look like smtp://host:port")
        query = parse_qs(parts.query)
        tls = parts.scheme == "smtps"
        return cls(
            host=parts.hostname,
            port=parts.port or (465 if tls else 25),
            username=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password else None,
            sender=query.get("from", [f"stayflow@{parts.hostname}"])[0],
            tls=tls,
            starttls=query.get("starttls", ["0"])[0] in ("1", "true", "yes"),
        )

    def send(self, message: EmailMessage) -> None:
        message["From"] = self.sender
        client: smtplib.SMTP
        if self.tls:
            client = smtplib.SMTP_SSL(
                self.host, self.port, timeout=SMTP_TIMEOUT, context=ssl.create_default_context()
            )
        else:
            client = smtplib.SMTP(self.host, self.port, timeout=SMTP_TIMEOUT)
        with client:
            if self.starttls:
                client.starttls(context=ssl.create_default_context())
            if self.username:
                client.login(self.username, self.password or "")
            client.send_message(message)


def day_bounds(day: date) -> tuple[datetime, datetime]:
    start = datetime.combine(day, time(0), tzinfo=utcnow().tzinfo)
    return start, start + timedelta(days=1)


def compose(db: Session, ep: WebhookEndpoint, day: date) -> EmailMessage:
    """The digest of ``day`` (UTC) for the endpoint's app."""
    app = db.get(App, ep.app_pk)
    assert app is not None
    start, end = day_bounds(day)
    rows = db.scalars(
        select(Event)
        .where(
            Event.app_pk == ep.app_pk,
            Event.type == SessionCompleted.event_type,
            Event.created_at >= start,
            Event.created_at < end,
        )
        .order_by(Event.id)
    ).all()
    counts = Counter(str(r.data.get("outcome")) for r in rows)
    saves = counts["saved"] + counts["redirected"]
    lines = [slack.line(r.type, r.data) for r in rows[:MAX_LINES]]
    if len(rows) > MAX_LINES:
        lines.append(f"... and {len(rows) - MAX_LINES} more (GET /api/v1/events)")
    message = EmailMessage()
    message["To"] = ep.url.removeprefix("mailto:")
    message["Subject"] = (
        f"stayflow {app.name}, {day.isoformat()}: {saves} saved, {counts['canceled']} canceled"
    )
    summary = (
        f"{day.isoformat()} (UTC) for {app.name}: {saves} saved, {counts['canceled']} "
        f"canceled, {counts['deflected']} changed their mind."
    )
    message.set_content("\n".join([summary, "", *lines, ""]) if lines else summary + "\n")
    return message


def enqueue_due(db: Session, now: datetime) -> int:
    """Queue yesterday's digest for every enabled email_digest endpoint (once per day)."""
    yesterday = (now - timedelta(days=1)).date()
    rows = db.execute(
        select(WebhookEndpoint.id, WebhookEndpoint.app_pk).where(
            WebhookEndpoint.kind == EMAIL_DIGEST, WebhookEndpoint.enabled.is_(True)
        )
    ).all()
    queued = 0
    for endpoint_pk, app_pk in rows:
        job = jobs_service.enqueue(
            db,
            SEND_DIGEST_JOB,
            {"endpoint_pk": endpoint_pk, "day": yesterday.isoformat()},
            app_pk=app_pk,
            unique_key=f"{SEND_DIGEST_JOB}:{endpoint_pk}:{yesterday.isoformat()}",
        )
        queued += job is not None
    return queued
