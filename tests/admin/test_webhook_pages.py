"""Webhooks screens: endpoints with the secret shown once, edit, rotate, test event, the
delivery log and resend, against a real receiver and the real job runner."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from sqlalchemy import select

from stayflow.crypto import Encryptor
from stayflow.jobs.worker import Worker
from stayflow.webhooks.models import WebhookEndpoint
from tests.conftest import TEST_SECRET_KEY
from tests.webhooks.helpers import Receiver


@pytest.fixture
def settings(settings):
    # A loopback receiver needs the private-address guard off; retries come at once.
    return settings.model_copy(
        update={
            "webhooks_allow_private": True,
            "webhooks_retry_schedule": "0,0,0",
            "webhooks_timeout_seconds": 2.0,
        }
    )


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    found = Receiver().start()
    yield found
    found.stop()


def _run_jobs(session_factory, settings) -> int:
    worker = Worker(
        session_factory,
        services={"settings": settings, "encryptor": Encryptor(TEST_SECRET_KEY)},
    )
    try:
        return worker.run_until_idle(timeout=60)
    finally:
        worker.stop(timeout=1)


def _post(user, page: str, action: str, data=None):
    pairs = list(data.items()) if isinstance(data, dict) else list(data or [])
    form: dict[str, list[str]] = {"csrf": [user.csrf(page)]}
    for name, value in pairs:
        form.setdefault(name, []).append(value)
    return user.client.post(action, data=form)


def _secret(html: str) -> str:
    found = re.search(r'id="signing-secret" readonly value="(whsec_[^"]+)"', html)
    assert found, html
    return found.group(1)


def test_endpoint_lifecycle_with_deliveries_and_resend(
    signed_in, add_user, owner, receiver, session_factory, settings
):
    add_user("eddy@example.com", owner.app_id, "editor")
    eddy = signed_in("eddy@example.com")
    page = f"/admin/apps/{owner.app_id}/webhooks"
    made = _post(
        eddy,
        page,
        page,
        [
            ("kind", "webhook"),
            ("url", receiver.url),
            ("description", "Our CRM"),
            ("event_types", "webhook.test"),
            ("event_types", "session.canceled"),
        ],
    )
    assert made.status_code == 200, made.text
    secret = _secret(made.text)
    with session_factory() as db:
        ep = db.scalars(select(WebhookEndpoint)).one()
        assert secret not in ep.secret_encrypted
        assert sorted(ep.event_types) == ["session.canceled", "webhook.test"]
    detail = f"{page}/{ep.endpoint_id}"
    shown = eddy.client.get(detail).text
    assert "Our CRM" in shown and secret not in shown  # never shown again
    assert "Nothing delivered yet." in shown

    # A test event reaches the receiver, signed with the secret shown once.
    receiver.plan = [(500, {}, b"down")]
    assert _post(eddy, detail, f"{detail}/test").status_code == 303
    _run_jobs(session_factory, settings)
    log = eddy.client.get(detail).text
    assert "failed" in log or "pending" in log
    assert "HTTP 500" in log
    receiver.plan = []
    event_id = re.search(r'name="event_id" value="(\d+)"', log).group(1)
    assert _post(eddy, detail, f"{detail}/resend", {"event_id": event_id}).status_code == 303
    _run_jobs(session_factory, settings)
    after = eddy.client.get(detail).text
    assert "delivered" in after
    payloads = receiver.verified(secret)
    assert payloads and all(p["type"] == "webhook.test" for p in payloads)

    # Edit: switch off, change the description; bad URL refused with a message.
    edited = _post(
        eddy, detail, detail, {"url": receiver.url, "description": "CRM v2", "enabled": ""}
    )
    assert edited.status_code == 303
    shown = eddy.client.get(detail).text
    assert "CRM v2" in shown and "badge err" in shown
    bad = _post(eddy, detail, detail, {"url": "ftp://nope", "enabled": "1"})
    assert bad.status_code == 400 and "http(s) URL" in bad.text
    # Rotate: a new secret, shown once, different from the first.
    rotated = _post(eddy, detail, f"{detail}/rotate")
    assert rotated.status_code == 200 and _secret(rotated.text) != secret
    assert _post(eddy, detail, f"{detail}/delete").status_code == 303
    assert eddy.client.get(detail).status_code == 404


def test_slack_destination_and_bad_input(signed_in, add_user, owner, session_factory):
    add_user("eddy@example.com", owner.app_id, "editor")
    eddy = signed_in("eddy@example.com")
    page = f"/admin/apps/{owner.app_id}/webhooks"
    slack = _post(
        eddy, page, page, {"kind": "slack", "url": "https://hooks.slack.com/services/T/B/x"}
    )
    assert slack.status_code == 200 and "Slack alert" in slack.text
    for data, expect in (
        ({"kind": "webhook", "url": "not a url"}, "http(s) URL"),
        ({"kind": "email_digest", "url": "https://example.com"}, "mailto"),
        ({"kind": "webhook", "url": "https://x.example", "event_types": "no.such"}, "unknown"),
        ({"kind": "pigeon", "url": "https://x.example"}, "kind"),
    ):
        refused = _post(eddy, page, page, data)
        assert refused.status_code == 400, data
        assert expect in refused.text, (data, expect)
    with session_factory() as db:
        assert [e.kind for e in db.scalars(select(WebhookEndpoint))] == ["slack"]


def test_viewers_cannot_change_webhooks_and_other_apps_are_404(
    signed_in, add_user, owner, other, session_factory, receiver
):
    add_user("eddy@example.com", owner.app_id, "editor")
    add_user("vera@example.com", owner.app_id, "viewer")
    add_user("otto@example.com", other.app_id, "owner")
    eddy = signed_in("eddy@example.com")
    page = f"/admin/apps/{owner.app_id}/webhooks"
    _post(eddy, page, page, {"kind": "webhook", "url": receiver.url})
    with session_factory() as db:
        ep = db.scalars(select(WebhookEndpoint)).one()
    detail = f"{page}/{ep.endpoint_id}"
    vera = signed_in("vera@example.com")
    assert "Add an endpoint" not in vera.client.get(page).text
    assert "Send a test event" not in vera.client.get(detail).text
    for action, data in (
        (page, {"url": receiver.url}),
        (detail, {"url": "https://evil.example"}),
        (f"{detail}/rotate", {}),
        (f"{detail}/test", {}),
        (f"{detail}/resend", {"event_id": "1"}),
        (f"{detail}/delete", {}),
    ):
        assert _post(vera, page, action, data).status_code == 403, action
    otto = signed_in("otto@example.com")
    token = otto.csrf(f"/admin/apps/{other.app_id}/webhooks")
    assert otto.client.get(detail).status_code == 404
    # Their own app's URL with our endpoint id: still not found.
    theirs = f"/admin/apps/{other.app_id}/webhooks/{ep.endpoint_id}"
    assert otto.client.get(theirs).status_code == 404
    assert otto.client.post(f"{theirs}/delete", data={"csrf": token}).status_code == 404
    with session_factory() as db:
        assert db.scalars(select(WebhookEndpoint)).one().url == receiver.url
