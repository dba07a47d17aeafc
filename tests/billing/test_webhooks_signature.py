"""POST /stripe/webhooks/<app_id>: verified, stored once, applied in order-proof jobs.

These tests sign events themselves (as Stripe does) to reach cases the sandbox will not
produce on purpose: forged, stale, tampered. Sandbox-signed deliveries are in
test_mirror_sandbox.py.
"""

from __future__ import annotations

import time

from sqlalchemy import select

from stayflow.jobs.models import Job
from stayflow.mirror.models import MirrorSubscription, StripeEvent
from tests.billing.helpers import count, event, run_jobs, set_webhook_secret, sign, subscription_obj

SECRET = "whsec_test_" + "s" * 24


def _post(client, app_id, body, header):
    headers = {"Content-Type": "application/json"}
    if header is not None:
        headers["Stripe-Signature"] = header
    return client.post(f"/stripe/webhooks/{app_id}", content=body, headers=headers)


def test_good_event_is_stored_once_and_a_replay_changes_nothing(client, owner, session_factory):
    set_webhook_secret(session_factory, owner.app_id, SECRET)
    body = event("evt_1", "customer.subscription.created", subscription_obj("sub_A"), 1_000)
    first = _post(client, owner.app_id, body, sign(body, SECRET))
    assert first.status_code == 200, first.text
    assert first.json() == {"received": True, "event_id": "evt_1", "duplicate": False}
    again = _post(client, owner.app_id, body, sign(body, SECRET))
    assert again.status_code == 200
    assert again.json()["duplicate"] is True
    assert count(session_factory, StripeEvent) == 1
    assert count(session_factory, Job, Job.name == "mirror.apply_event") == 1


def test_forged_stale_tampered_and_unsigned_get_400_and_change_nothing(
    client, owner, session_factory
):
    set_webhook_secret(session_factory, owner.app_id, SECRET)
    body = event("evt_2", "customer.subscription.created", subscription_obj("sub_B"), 1_000)
    now = int(time.time())
    cases = [
        sign(body, "whsec_wrong_secret_000000000"),  # forged
        sign(body, SECRET, now - 301),  # stale: past the 300 s tolerance
        sign(body + b" ", SECRET),  # the signature of another body (tampered)
        None,  # unsigned
        "t=abc,v1=zz",  # garbage
    ]
    for header in cases:
        response = _post(client, owner.app_id, body, header)
        assert response.status_code == 400, (header, response.text)
        assert response.json()["error"]["type"] == "invalid_signature"
    # Still inside the tolerance: accepted.
    assert _post(client, owner.app_id, body, sign(body, SECRET, now - 290)).status_code == 200
    assert count(session_factory, StripeEvent) == 1


def test_another_apps_secret_does_not_verify_and_unknown_app_is_404(
    client, owner, other, session_factory
):
    set_webhook_secret(session_factory, owner.app_id, SECRET)
    set_webhook_secret(session_factory, other.app_id, "whsec_other_" + "o" * 24)
    body = event("evt_3", "customer.subscription.created", subscription_obj("sub_C"), 1_000)
    assert _post(client, other.app_id, body, sign(body, SECRET)).status_code == 400
    assert _post(client, "app_doesnotexist", body, sign(body, SECRET)).status_code == 404
    assert count(session_factory, StripeEvent) == 0


def test_an_app_without_a_webhook_secret_refuses(client, owner, session_factory):
    body = event("evt_4", "customer.subscription.created", subscription_obj("sub_D"), 1_000)
    response = _post(client, owner.app_id, body, sign(body, SECRET))
    assert response.status_code == 400
    assert count(session_factory, StripeEvent) == 0


def _status(session_factory, sub_id):
    with session_factory() as db:
        row = db.scalar(
            select(MirrorSubscription).where(MirrorSubscription.subscription_id == sub_id)
        )
        return None if row is None else (row.status, row.version, row.cancel_at_period_end)


def test_out_of_order_and_duplicate_events_never_roll_a_row_back(
    client, owner, session_factory, settings
):
    set_webhook_secret(session_factory, owner.app_id, SECRET)
    created = event("evt_c", "customer.subscription.created", subscription_obj("sub_E"), 100)
    updated = event(
        "evt_u",
        "customer.subscription.updated",
        subscription_obj("sub_E", cancel_at_period_end=True),
        200,
    )
    deleted = event(
        "evt_d", "customer.subscription.deleted", subscription_obj("sub_E", "canceled"), 300
    )
    # Newest first, then the older ones, then a duplicate of the middle one.
    for body in (updated, created):
        assert _post(client, owner.app_id, body, sign(body, SECRET)).status_code == 200
    run_jobs(session_factory, settings)
    assert _status(session_factory, "sub_E") == ("active", 200, True)

    assert _post(client, owner.app_id, deleted, sign(deleted, SECRET)).status_code == 200
    run_jobs(session_factory, settings)
    assert _status(session_factory, "sub_E") == ("canceled", 300, False)

    # An older update delivered late (Stripe retries for days): still canceled.
    late = event(
        "evt_late", "customer.subscription.updated", subscription_obj("sub_E", "past_due"), 250
    )
    assert _post(client, owner.app_id, late, sign(late, SECRET)).status_code == 200
    assert _post(client, owner.app_id, updated, sign(updated, SECRET)).json()["duplicate"] is True
    run_jobs(session_factory, settings)
    assert _status(session_factory, "sub_E") == ("canceled", 300, False)
    with session_factory() as db:
        outcomes = dict(db.execute(select(StripeEvent.event_id, StripeEvent.outcome)).all())
    assert outcomes == {
        "evt_u": "applied",
        "evt_c": "stale",
        "evt_d": "applied",
        "evt_late": "stale",
    }


def test_mirror_rows_are_per_app(client, owner, other, session_factory, settings):
    other_secret = "whsec_other_" + "o" * 24
    set_webhook_secret(session_factory, owner.app_id, SECRET)
    set_webhook_secret(session_factory, other.app_id, other_secret)
    mine = event("evt_m", "customer.subscription.created", subscription_obj("sub_F"), 100)
    theirs = event(
        "evt_m", "customer.subscription.created", subscription_obj("sub_F", "past_due"), 100
    )
    assert _post(client, owner.app_id, mine, sign(mine, SECRET)).json()["duplicate"] is False
    assert (
        _post(client, other.app_id, theirs, sign(theirs, other_secret)).json()["duplicate"] is False
    )
    run_jobs(session_factory, settings)
    with session_factory() as db:
        rows = db.execute(
            select(MirrorSubscription.app_pk, MirrorSubscription.status).order_by(
                MirrorSubscription.app_pk
            )
        ).all()
    assert [status for _, status in rows] == ["active", "past_due"]
