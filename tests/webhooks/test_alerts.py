"""Alerts: Slack incoming-webhook messages on the delivery machinery, and the daily email
digest sent to a real SMTP server (aiosmtpd) on 127.0.0.1."""

from __future__ import annotations

import json
import socket
from datetime import UTC, date, datetime, timedelta
from email import message_from_bytes

import pytest
from sqlalchemy import select

from stayflow.db import transaction, utcnow
from stayflow.events import service as events_service
from stayflow.events.models import Event
from stayflow.jobs.models import Job
from stayflow.webhooks import digest, slack
from stayflow.webhooks.models import WebhookEndpoint

BASE = "/api/v1/webhook-endpoints"

COMPLETED = {
    "app_id": "app_1",
    "session_id": "cs_1",
    "subscription_id": "sub_1",
    "customer_id": "cus_1",
    "customer_name": "Ada",
    "plan_name": "Pro",
    "outcome": "saved",
    "mrr": {"amount": 4900, "currency": "usd"},
    "offer_accepted": {"id": "twenty_off", "type": "discount", "details": {"headline": "20% off"}},
    "reason_id": "too_expensive",
    "reason_label": "Too expensive",
    "billing": {"action": "apply_offer", "status": "applied", "error": None},
}


def _block_kit_shape(body):
    """What Slack's incoming webhooks accept: text, and blocks of known shapes."""
    assert set(body) == {"text", "blocks"}
    assert isinstance(body["text"], str) and body["text"]
    for block in body["blocks"]:
        if block["type"] == "section":
            assert set(block) == {"type", "text"}
            assert block["text"]["type"] == "mrkdwn" and block["text"]["text"]
        else:
            assert block["type"] == "context"
            assert set(block) == {"type", "elements"}
            for element in block["elements"]:
                assert element["type"] == "mrkdwn" and element["text"]


def test_the_slack_line_tells_the_story():
    assert slack.line("session.completed", COMPLETED) == (
        "Ada (Pro, $49/mo) accepted 20% off — reason: too expensive"
    )
    canceled = {**COMPLETED, "outcome": "canceled", "offer_accepted": None, "comment": "dear"}
    assert slack.line("session.completed", canceled) == (
        "Ada (Pro, $49/mo) canceled — reason: too expensive (“dear”)"
    )
    failed = {**COMPLETED, "billing": {"action": "apply_offer", "status": "failed", "error": "x"}}
    assert slack.line("session.completed", failed).endswith("— billing failed: x")
    unknown = {"subscription_id": "sub_9", "outcome": "deflected"}
    assert slack.line("session.completed", unknown) == "sub_9 changed their mind and stayed"
    assert slack.money(4950, "eur") == "€49.50"
    assert slack.money(4900, "jpy") == "¥4900" or slack.money(4900, "jpy") == "4900 JPY"
    _block_kit_shape(slack.message("session.completed", COMPLETED))


def test_a_slack_endpoint_gets_formatted_messages_through_the_queue(hooks, owner, receiver):
    hooks.create(owner, receiver.url, kind="slack", event_types=["session.completed"])
    receiver.plan = [(500, {}, b"")]  # retried like any delivery
    app_pk = hooks.app_pk(owner)
    with transaction(hooks.factory) as db:
        events_service.emit_event(db, app_pk, "session.completed", COMPLETED)
        events_service.emit_event(db, app_pk, "session.saved", {"session_id": "cs_1"})
    hooks.run_jobs()
    assert len(receiver.received) == 2
    first, second = receiver.received
    assert first.body == second.body
    body = json.loads(second.body)
    _block_kit_shape(body)
    assert body["text"] == "Ada (Pro, $49/mo) accepted 20% off — reason: too expensive"
    assert "webhook-signature" not in {k.lower() for k in second.headers}


def test_an_email_digest_endpoint_takes_mailto_only(hooks, owner):
    bad = hooks.client.post(
        BASE, json={"kind": "email_digest", "url": "https://x.example.com"}, headers=owner.headers
    )
    assert bad.status_code == 422
    bad = hooks.client.post(BASE, json={"url": "mailto:ops@example.com"}, headers=owner.headers)
    assert bad.status_code == 422
    ep = hooks.create(owner, "mailto:ops@example.com, cfo@example.com", kind="email_digest")
    assert ep["url"] == "mailto:ops@example.com,cfo@example.com"
    test = hooks.client.post(f"{BASE}/{ep['id']}/test", headers=owner.headers)
    assert test.status_code == 400


@pytest.fixture
def smtp_server():
    from aiosmtpd.controller import Controller

    class Keep:
        def __init__(self):
            self.messages = []

        async def handle_DATA(self, server, session, envelope):
            self.messages.append((envelope.rcpt_tos, envelope.content))
            return "250 OK"

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    handler = Keep()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield handler, f"smtp://127.0.0.1:{port}?from=sf@example.com"
    finally:
        controller.stop()


def test_the_daily_digest_is_mailed_once(hooks, owner, smtp_server):
    handler, smtp_url = smtp_server
    hooks.settings = hooks.settings.model_copy(update={"smtp_url": smtp_url})
    ep = hooks.create(owner, "mailto:ops@example.com", kind="email_digest")
    app_pk = hooks.app_pk(owner)
    yesterday = (utcnow() - timedelta(days=1)).date()
    noon = datetime.combine(yesterday, datetime.min.time(), tzinfo=UTC) + timedelta(hours=12)
    canceled = {**COMPLETED, "session_id": "cs_2", "outcome": "canceled", "offer_accepted": None}
    with transaction(hooks.factory) as db:
        for data in (COMPLETED, canceled):
            events_service.emit_event(db, app_pk, "session.completed", data, at=noon)
        # Today's outcome belongs to tomorrow's digest.
        events_service.emit_event(db, app_pk, "session.completed", COMPLETED)
    with transaction(hooks.factory) as db:
        assert digest.enqueue_due(db, utcnow()) == 1
    with transaction(hooks.factory) as db:
        assert digest.enqueue_due(db, utcnow()) == 0  # once per day
    hooks.run_jobs()
    ((rcpts, raw),) = handler.messages
    assert rcpts == ["ops@example.com"]
    mail = message_from_bytes(raw)
    assert mail["Subject"] == f"stayflow owner, {yesterday.isoformat()}: 1 saved, 1 canceled"
    assert mail["From"] == "sf@example.com"
    text = mail.get_payload(decode=True).decode()
    assert "Ada (Pro, $49/mo) accepted 20% off — reason: too expensive" in text
    assert "Ada (Pro, $49/mo) canceled — reason: too expensive" in text
    with hooks.factory() as db:
        jobs = db.scalars(select(Job).where(Job.name == digest.SEND_DIGEST_JOB)).all()
        assert [j.status for j in jobs] == ["succeeded"]
        assert db.scalar(select(WebhookEndpoint.kind)) == "email_digest"
        assert db.scalar(select(Event.id).where(Event.type == "webhook.test")) is None
    assert ep["kind"] == "email_digest"
    assert isinstance(yesterday, date)
