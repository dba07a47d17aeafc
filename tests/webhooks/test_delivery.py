"""Delivery through the job runner to real receivers on 127.0.0.1, verified with the
``standardwebhooks`` library; both databases."""

from __future__ import annotations

import base64
import hashlib
import hmac
import threading
import time
from datetime import timedelta

from sqlalchemy import select, update

from stayflow.db import transaction, utcnow
from stayflow.events import service as events_service
from stayflow.events.models import Event
from stayflow.jobs.worker import Worker
from stayflow.webhooks.models import FAILED, PENDING, WebhookDelivery, WebhookEndpoint
from stayflow.webhooks.tasks import CLOCK_SERVICE
from tests.webhooks.conftest import ENCRYPTOR
from tests.webhooks.helpers import HANG

BASE = "/api/v1/webhook-endpoints"


def emit(hooks, tenant, count, type_="session.deflected", start=0):
    app_pk = hooks.app_pk(tenant)
    with transaction(hooks.factory) as db:
        ids = [
            events_service.emit_event(db, app_pk, type_, {"n": start + i}).id for i in range(count)
        ]
    # Deliveries are due from the real time of the event; the test's clock never lags it.
    hooks.clock.now = max(hooks.clock.now, utcnow())
    return ids


def endpoint_pk(hooks, endpoint_id):
    with hooks.factory() as db:
        return db.scalar(
            select(WebhookEndpoint.id).where(WebhookEndpoint.endpoint_id == endpoint_id)
        )


def deliveries(hooks, endpoint_id):
    with hooks.factory() as db:
        return db.scalars(
            select(WebhookDelivery)
            .where(WebhookDelivery.endpoint_pk == endpoint_pk(hooks, endpoint_id))
            .order_by(WebhookDelivery.id)
        ).all()


def test_every_event_arrives_in_order_and_verifies(hooks, owner, receiver):
    ep = hooks.create(owner, receiver.url)
    ids = emit(hooks, owner, 12)
    hooks.run_jobs()
    payloads = receiver.verified(ep["secret"])
    assert [p["data"]["n"] for p in payloads] == list(range(12))
    assert [r.msg_id for r in receiver.received] == [f"msg_{i}" for i in ids]
    assert {p["type"] for p in payloads} == {"session.deflected"}
    assert all(p["timestamp"].endswith("Z") for p in payloads)
    attempts = hooks.client.get(f"{BASE}/{ep['id']}/attempts", headers=owner.headers).json()
    assert len(attempts["data"]) == 12
    assert {a["status_code"] for a in attempts["data"]} == {200}
    assert all(a["response"] == "ok" and a["latency_ms"] >= 0 for a in attempts["data"])


def test_event_type_filter_and_disabled_endpoints(hooks, owner, make_receiver):
    wanted, unwanted, off = make_receiver(), make_receiver(), make_receiver()
    hooks.create(owner, wanted.url, event_types=["session.saved"])
    hooks.create(owner, unwanted.url, event_types=["session.canceled"])
    hooks.create(owner, off.url, enabled=False)
    emit(hooks, owner, 2, type_="session.saved")
    hooks.run_jobs()
    assert len(wanted.received) == 2
    assert unwanted.received == [] and off.received == []


def test_500s_are_retried_until_it_recovers_none_lost_duplicates_only_by_id(hooks, owner, receiver):
    receiver.plan = [(500, {}, b"boom")] * 3 + [(200, {}, b"ok"), (503, {}, b"busy")]
    ep = hooks.create(owner, receiver.url)
    ids = emit(hooks, owner, 5)
    hooks.run_jobs()
    payloads = receiver.verified(ep["secret"])
    got = [r.msg_id for r in receiver.received]
    # In order: the first event four times (3 failures), the second twice, then the rest.
    assert got == [f"msg_{ids[0]}"] * 4 + [f"msg_{ids[1]}"] * 2 + [f"msg_{i}" for i in ids[2:]]
    assert sorted(set(got)) == sorted(f"msg_{i}" for i in ids)
    by_id = {r.msg_id: r.body for r in receiver.received}
    assert all(r.body == by_id[r.msg_id] for r in receiver.received)
    assert len(payloads) == len(got)
    rows = deliveries(hooks, ep["id"])
    assert [d.status for d in rows] == ["succeeded"] * 5
    assert [d.attempts for d in rows] == [4, 2, 1, 1, 1]
    log = hooks.client.get(f"{BASE}/{ep['id']}/attempts", headers=owner.headers).json()["data"]
    assert [a["status_code"] for a in reversed(log)][:6] == [500, 500, 500, 200, 503, 200]
    assert log[-1]["response"] == "boom"


def test_retries_run_out_and_the_queue_moves_on(hooks, owner, receiver):
    receiver.plan = [(404, {}, b"no")] * 8
    ep = hooks.create(owner, receiver.url)
    emit(hooks, owner, 2)
    hooks.run_jobs()
    rows = deliveries(hooks, ep["id"])
    assert [(d.status, d.attempts) for d in rows] == [("failed", 8), ("succeeded", 1)]
    assert rows[0].last_status_code == 404


def test_a_hanging_receiver_times_out_and_is_retried(hooks, owner, receiver):
    receiver.plan = [HANG]
    ep = hooks.create(owner, receiver.url)
    emit(hooks, owner, 1)
    hooks.run_jobs()
    log = hooks.client.get(f"{BASE}/{ep['id']}/attempts", headers=owner.headers).json()["data"]
    assert [a["status_code"] for a in reversed(log)] == [None, 200]
    assert "timeout" in log[-1]["error"]
    assert len(receiver.verified(ep["secret"])) == 2


def test_one_endpoints_trouble_does_not_hold_up_another(hooks, owner, make_receiver):
    bad, good = make_receiver(), make_receiver()
    bad.plan = [HANG, (500, {}, b"")] + [(500, {}, b"")] * 10
    bad_ep = hooks.create(owner, bad.url)
    good_ep = hooks.create(owner, good.url)
    ids = emit(hooks, owner, 6)
    hooks.run_jobs()
    assert [r.msg_id for r in good.received] == [f"msg_{i}" for i in ids]
    assert len(good.verified(good_ep["secret"])) == 6
    # The bad endpoint ran its schedule (8 attempts) on the first event, then went on.
    rows = deliveries(hooks, bad_ep["id"])
    assert rows[0].status == FAILED and rows[0].attempts == 8


def test_410_disables_the_endpoint_and_tells_the_app(hooks, owner, receiver):
    receiver.plan = [(410, {}, b"gone")]
    ep = hooks.create(owner, receiver.url)
    emit(hooks, owner, 3)
    hooks.run_jobs()
    assert len(receiver.received) == 1
    one = hooks.client.get(f"{BASE}/{ep['id']}", headers=owner.headers).json()
    assert one["enabled"] is False and one["disabled_reason"] == "gone"
    events = hooks.client.get(
        "/api/v1/events?type=webhook.endpoint.disabled", headers=owner.headers
    ).json()["data"]
    assert [e["data"]["endpoint_id"] for e in events] == [ep["id"]]
    assert [d.status for d in deliveries(hooks, ep["id"])] == [FAILED, PENDING, PENDING]
    # Enabled again, it delivers what was waiting, in order.
    hooks.client.patch(f"{BASE}/{ep['id']}", json={"enabled": True}, headers=owner.headers)
    hooks.run_jobs()
    assert len(receiver.received) == 3
    assert [d.status for d in deliveries(hooks, ep["id"])] == [FAILED, "succeeded", "succeeded"]


def test_retry_after_is_honoured_on_429(hooks, owner, receiver):
    receiver.plan = [(429, {"Retry-After": "120"}, b"slow down")]
    ep = hooks.create(owner, receiver.url)
    emit(hooks, owner, 1)
    pk = endpoint_pk(hooks, ep["id"])
    assert hooks.pump(pk) == "waiting"
    (row,) = deliveries(hooks, ep["id"])
    assert row.status == PENDING
    assert row.next_attempt_at - hooks.clock.now == timedelta(seconds=120)
    hooks.clock.advance(seconds=119)
    assert hooks.pump(pk) == "waiting"
    assert len(receiver.received) == 1
    hooks.clock.advance(seconds=2)
    assert hooks.pump(pk) == "idle"
    assert len(receiver.received) == 2


def test_the_default_schedule_with_jitter(hooks, owner, receiver):
    receiver.plan = [(500, {}, b"")] * 8
    ep = hooks.create(owner, receiver.url)
    emit(hooks, owner, 1)
    pk = endpoint_pk(hooks, ep["id"])
    config = {"schedule": (0, 5, 300, 1800, 7200, 18000, 36000, 36000)}
    waits = []
    for _ in range(7):
        assert hooks.pump(pk, **config) == "waiting"
        (row,) = deliveries(hooks, ep["id"])
        waits.append((row.next_attempt_at - hooks.clock.now).total_seconds())
        hooks.clock.now = row.next_attempt_at
    for wait, base in zip(waits, (5, 300, 1800, 7200, 18000, 36000, 36000), strict=True):
        assert base * 0.9 <= wait <= base * 1.1
    assert hooks.pump(pk, **config) == "idle"
    (row,) = deliveries(hooks, ep["id"])
    assert (row.status, row.attempts) == (FAILED, 8)


def test_failing_for_five_days_disables_the_endpoint(hooks, owner, make_receiver):
    down = make_receiver()
    down.stop()  # nothing listens: connection refused
    ep = hooks.create(owner, down.url)
    pk = endpoint_pk(hooks, ep["id"])
    start = hooks.clock.now
    config = {"schedule": (0, 5, 300, 1800, 7200, 18000, 36000, 36000)}
    disabled_at = None
    for step in range(200):
        emit(hooks, owner, 1, start=step)
        while hooks.pump(pk, **config) == "waiting":
            (row,) = [d for d in deliveries(hooks, ep["id"]) if d.status == PENDING]
            hooks.clock.now = row.next_attempt_at
        one = hooks.client.get(f"{BASE}/{ep['id']}", headers=owner.headers).json()
        if not one["enabled"]:
            disabled_at = hooks.clock.now
            break
        assert hooks.clock.now - start < timedelta(days=5)
        hooks.clock.advance(hours=6)
    assert disabled_at is not None
    assert timedelta(days=5) <= disabled_at - start < timedelta(days=6)
    assert one["disabled_reason"] == "failing"
    assert one["failing_since"] is not None
    kinds = [
        e["type"] for e in hooks.client.get("/api/v1/events", headers=owner.headers).json()["data"]
    ]
    assert kinds.count("webhook.endpoint.disabled") == 1


def test_two_failures_five_days_apart_are_not_enough(hooks, owner, make_receiver):
    down = make_receiver()
    down.stop()
    ep = hooks.create(owner, down.url)
    pk = endpoint_pk(hooks, ep["id"])
    emit(hooks, owner, 1)
    hooks.pump(pk, schedule=(0,))
    hooks.clock.advance(days=5, hours=1)
    emit(hooks, owner, 1)
    hooks.pump(pk, schedule=(0,))
    one = hooks.client.get(f"{BASE}/{ep['id']}", headers=owner.headers).json()
    assert one["enabled"] is True and one["failing_since"] is not None


def test_a_success_ends_the_failure_streak(hooks, owner, receiver):
    receiver.plan = [(500, {}, b"")]
    ep = hooks.create(owner, receiver.url)
    emit(hooks, owner, 1)
    pk = endpoint_pk(hooks, ep["id"])
    hooks.pump(pk, schedule=(0, 0))
    one = hooks.client.get(f"{BASE}/{ep['id']}", headers=owner.headers).json()
    assert one["failing_since"] is None


def test_secret_rotation_signs_with_both_during_the_overlap(hooks, owner, receiver):
    ep = hooks.create(owner, receiver.url)
    rotated = hooks.client.post(
        f"{BASE}/{ep['id']}/rotate-secret", json={"overlap_seconds": 600}, headers=owner.headers
    ).json()
    emit(hooks, owner, 1)
    pk = endpoint_pk(hooks, ep["id"])
    hooks.pump(pk)
    assert len(receiver.verified(ep["secret"])) == 1
    assert len(receiver.verified(rotated["secret"])) == 1
    assert len(receiver.received[0].headers["webhook-signature"].split(" ")) == 2
    # After the overlap only the new secret signs (the signature is checked by hand: the
    # library refuses a timestamp 11 minutes off its own clock).
    hooks.clock.advance(minutes=11)
    emit(hooks, owner, 1)
    hooks.pump(pk)
    got = receiver.received[1]
    sigs = got.headers["webhook-signature"].split(" ")
    assert len(sigs) == 1
    signed = f"{got.msg_id}.{got.headers['webhook-timestamp']}.".encode() + got.body
    key = base64.b64decode(rotated["secret"].removeprefix("whsec_"))
    assert (
        sigs[0] == "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    )


def test_brightback_legacy_signature(hooks, owner, receiver):
    ep = hooks.create(owner, receiver.url, legacy_signature=True)
    emit(hooks, owner, 1)
    hooks.run_jobs()
    (got,) = receiver.received
    expected = hmac.new(ep["secret"].encode(), got.body, hashlib.sha1).hexdigest()
    assert got.headers["X-Hub-Signature"] == "sha1=" + expected
    assert len(receiver.verified(ep["secret"])) == 1


def test_resend_one_event_and_everything_failed_since(hooks, owner, receiver):
    receiver.plan = [(500, {}, b"")] * 2
    ep = hooks.create(owner, receiver.url)
    ids = emit(hooks, owner, 3)
    pk = endpoint_pk(hooks, ep["id"])
    hooks.pump(pk, schedule=(0,))
    assert [d.status for d in deliveries(hooks, ep["id"])] == [FAILED, FAILED, "succeeded"]
    since = (hooks.clock.now - timedelta(minutes=1)).isoformat()
    resent = hooks.client.post(
        f"{BASE}/{ep['id']}/resend", json={"failed_since": since}, headers=owner.headers
    )
    assert resent.json() == {"queued": 2}
    one = hooks.client.post(
        f"{BASE}/{ep['id']}/resend", json={"event_id": ids[2]}, headers=owner.headers
    )
    assert one.json() == {"queued": 1}
    hooks.run_jobs()
    got = [r.msg_id for r in receiver.received]
    assert got[3:] == [f"msg_{ids[0]}", f"msg_{ids[1]}", f"msg_{ids[2]}"]
    assert len(receiver.verified(ep["secret"])) == 6


def test_send_test_event_goes_to_that_endpoint_only(hooks, owner, make_receiver):
    target, bystander = make_receiver(), make_receiver()
    ep = hooks.create(owner, target.url)
    hooks.create(owner, bystander.url)
    response = hooks.client.post(f"{BASE}/{ep['id']}/test", headers=owner.headers)
    assert response.status_code == 200
    hooks.run_jobs()
    (payload,) = target.verified(ep["secret"])
    assert payload["type"] == "webhook.test"
    assert payload["data"]["endpoint_id"] == ep["id"]
    assert bystander.received == []


def test_the_job_runner_uses_an_injected_clock_for_the_schedule(hooks, owner, receiver):
    receiver.plan = [(500, {}, b"")]
    ep = hooks.create(owner, receiver.url)
    emit(hooks, owner, 1)
    hooks.settings = hooks.settings.model_copy(update={"webhooks_retry_schedule": "0,3600"})
    hooks.run_jobs(**{CLOCK_SERVICE: hooks.clock})
    (row,) = deliveries(hooks, ep["id"])
    assert row.status == PENDING and row.attempts == 1
    assert len(receiver.received) == 1
    with hooks.factory() as db:
        assert db.scalar(select(Event.id)) is not None


def _wait_for(predicate, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"gave up after {timeout}s waiting for {what}")


def test_hanging_endpoints_hold_up_no_other_endpoint_in_the_running_worker(
    hooks, owner, make_receiver
):
    """Three endpoints hang (each holds its request open) while a worker with two slots runs:
    a fourth endpoint still gets all its events, in order, while the three still hang."""
    hanging = [make_receiver() for _ in range(3)]
    for receiver in hanging:
        receiver.plan = [HANG]
        hooks.create(owner, receiver.url)
    good = make_receiver()
    good_ep = hooks.create(owner, good.url)
    # The timeout outlasts the wait below: no hanging request ends before it gives up.
    settings = hooks.settings.model_copy(update={"webhooks_timeout_seconds": 60.0})
    worker = Worker(
        hooks.factory,
        concurrency=2,
        poll_interval=0.05,
        services={"settings": settings, "encryptor": ENCRYPTOR},
    )
    worker.start()
    try:
        ids = emit(hooks, owner, 5)
        _wait_for(
            lambda: len(good.received) >= 5 and all(r.in_flight == 1 for r in hanging),
            30,
            "the good endpoint's five deliveries while the others hang",
        )
        # Every hanging endpoint still holds its first request: none timed out or was retried.
        assert [(len(r.received), r.in_flight) for r in hanging] == [(1, 1)] * 3
        assert [r.msg_id for r in good.received] == [f"msg_{i}" for i in ids]
        assert len(good.verified(good_ep["secret"])) == 5
    finally:
        for receiver in hanging:
            receiver.released.set()
        worker.stop(timeout=10)


def test_one_endpoint_never_has_two_requests_in_flight(hooks, owner, make_receiver):
    """Many events for two endpoints, a worker with many lane threads: each endpoint still
    gets one request at a time (its bound), in order."""
    receivers = [make_receiver(), make_receiver()]
    for receiver in receivers:
        receiver.pause = 0.05
        hooks.create(owner, receiver.url)
    worker = Worker(
        hooks.factory,
        lane_concurrency=16,
        poll_interval=0.05,
        services={"settings": hooks.settings, "encryptor": ENCRYPTOR},
    )
    worker.start()
    try:
        ids: list[int] = []
        for start in range(0, 24, 3):  # several commits, each waking the lane
            ids += emit(hooks, owner, 3, start=start)
        _wait_for(lambda: all(len(r.received) >= 24 for r in receivers), 60, "every delivery")
    finally:
        worker.stop(timeout=10)
    for receiver in receivers:
        assert [r.msg_id for r in receiver.received] == [f"msg_{i}" for i in ids]
        assert receiver.most_in_flight == 1


def test_no_connection_or_lock_is_held_while_a_request_hangs(hooks, owner, receiver):
    """While an endpoint's request is in flight, its job holds no database connection, no
    transaction and no lock (on SQLite: not the write turn; on PostgreSQL: no row lock on
    the endpoint), so a hanging endpoint takes nothing the others' deliveries need."""
    receiver.plan = [HANG]
    ep = hooks.create(owner, receiver.url)
    pk = endpoint_pk(hooks, ep["id"])
    settings = hooks.settings.model_copy(update={"webhooks_timeout_seconds": 60.0})
    worker = Worker(hooks.factory, services={"settings": settings, "encryptor": ENCRYPTOR})
    emit(hooks, owner, 1)
    runner = threading.Thread(target=worker.run_until_idle, kwargs={"timeout": 30})
    runner.start()
    try:
        _wait_for(lambda: receiver.in_flight == 1, 10, "the request in flight")
        pool = hooks.factory.kw["bind"].pool
        assert pool.checkedout() == 0
        asked = time.monotonic()
        with transaction(hooks.factory) as db:
            db.execute(
                update(WebhookEndpoint)
                .where(WebhookEndpoint.id == pk)
                .values(description="touched while its request hangs")
            )
        assert time.monotonic() - asked < 1.0
        assert receiver.in_flight == 1
    finally:
        receiver.released.set()
        runner.join(30)
        worker.stop(timeout=1)
