"""Time, events, webhooks, idempotency, restricted keys and faults, through the SDK."""

from __future__ import annotations

import http.server
import threading
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
import stripe

from stayflow.sandbox import Sandbox

DAY = 86_400


@pytest.fixture
def paying(make_paying_customer: Callable[..., stripe.Customer]) -> stripe.Customer:
    return make_paying_customer()


@pytest.fixture
def price(make_price: Callable[..., stripe.Price]) -> stripe.Price:
    return make_price(2000)


def _sub(
    client: stripe.StripeClient, customer: str, price: str, **extra: Any
) -> stripe.Subscription:
    return client.v1.subscriptions.create(
        {"customer": customer, "items": [{"price": price}], **extra}
    )


def test_renewal_bills_the_next_period(
    stripe_client: stripe.StripeClient,
    sandbox: Sandbox,
    paying: stripe.Customer,
    price: stripe.Price,
) -> None:
    sub = _sub(stripe_client, paying.id, price.id)
    first_end = sub["items"].data[0].current_period_end
    sandbox.advance_clock(to=first_end + 60)
    renewed = stripe_client.v1.subscriptions.retrieve(sub.id, {"expand": ["latest_invoice"]})
    item = renewed["items"].data[0]
    assert item.current_period_start == first_end and item.current_period_end > first_end
    invoice = renewed.latest_invoice
    assert isinstance(invoice, stripe.Invoice)
    assert invoice.billing_reason == "subscription_cycle" and invoice.status == "paid"
    assert invoice.amount_paid == 2000 and invoice.period_end == first_end
    events = stripe_client.v1.events.list({"type": "customer.subscription.updated"}).data
    assert events and events[0].data.object["id"] == sub.id
    previous = events[0].data.previous_attributes
    assert previous is not None and "items" in previous and "latest_invoice" in previous
    paid = stripe_client.v1.events.list({"type": "invoice.paid"}).data
    assert paid[0].data.object["id"] == invoice.id


def test_trial_then_first_charge(
    stripe_client: stripe.StripeClient,
    sandbox: Sandbox,
    paying: stripe.Customer,
    price: stripe.Price,
) -> None:
    sub = _sub(stripe_client, paying.id, price.id, trial_period_days=14)
    assert sub.status == "trialing" and sub.trial_end is not None
    first = stripe_client.v1.invoices.retrieve(str(sub.latest_invoice))
    assert first.total == 0 and first.status == "paid"
    longer = stripe_client.v1.subscriptions.update(sub.id, {"trial_end": sub.trial_end + 7 * DAY})
    assert longer.trial_end == sub.trial_end + 7 * DAY
    assert longer["items"].data[0].current_period_end == longer.trial_end
    sandbox.advance_clock(to=longer.trial_end + 1)
    after = stripe_client.v1.subscriptions.retrieve(sub.id, {"expand": ["latest_invoice"]})
    assert after.status == "active" and after.billing_cycle_anchor == longer.trial_end
    assert isinstance(after.latest_invoice, stripe.Invoice)
    assert after.latest_invoice.amount_paid == 2000


def test_trial_end_now(
    stripe_client: stripe.StripeClient, paying: stripe.Customer, price: stripe.Price
) -> None:
    sub = _sub(stripe_client, paying.id, price.id, trial_period_days=30)
    now = stripe_client.v1.subscriptions.update(sub.id, {"trial_end": "now"})
    assert now.status == "active" and now.latest_invoice != sub.latest_invoice
    with pytest.raises(stripe.InvalidRequestError) as err:
        stripe_client.v1.subscriptions.update(sub.id, {"trial_end": sub.created + 800 * DAY})
    assert err.value.param == "trial_end"


@pytest.mark.parametrize(
    ("behavior", "invoice_status"),
    [("void", "void"), ("mark_uncollectible", "uncollectible"), ("keep_as_draft", "draft")],
)
def test_pause_collection_then_resume(
    stripe_client: stripe.StripeClient,
    sandbox: Sandbox,
    paying: stripe.Customer,
    price: stripe.Price,
    behavior: str,
    invoice_status: str,
) -> None:
    sub = _sub(stripe_client, paying.id, price.id)
    end = sub["items"].data[0].current_period_end
    resumes = end + 5 * DAY
    stripe_client.v1.subscriptions.update(
        sub.id,
        {"pause_collection": {"behavior": behavior, "resumes_at": resumes}},  # type: ignore[typeddict-item]
    )
    sandbox.advance_clock(to=end + 1)
    paused = stripe_client.v1.subscriptions.retrieve(sub.id, {"expand": ["latest_invoice"]})
    assert paused.status == "active" and paused.pause_collection is not None
    assert isinstance(paused.latest_invoice, stripe.Invoice)
    assert paused.latest_invoice.status == invoice_status
    assert paused.latest_invoice.amount_paid == 0
    sandbox.advance_clock(to=resumes + 1)
    resumed = stripe_client.v1.subscriptions.retrieve(sub.id)
    assert resumed.pause_collection is None
    updates = stripe_client.v1.events.list({"type": "customer.subscription.updated"}).data
    assert updates[0].data.previous_attributes is not None
    assert updates[0].data.previous_attributes["pause_collection"]["behavior"] == behavior


def test_period_end_cancel_happens_on_time(
    stripe_client: stripe.StripeClient,
    sandbox: Sandbox,
    paying: stripe.Customer,
    price: stripe.Price,
) -> None:
    sub = _sub(stripe_client, paying.id, price.id)
    sub = stripe_client.v1.subscriptions.update(sub.id, {"cancel_at_period_end": True})
    end = sub["items"].data[0].current_period_end
    sandbox.advance_clock(to=end + 10)
    done = stripe_client.v1.subscriptions.retrieve(sub.id)
    assert done.status == "canceled" and done.ended_at == end
    assert done.canceled_at == sub.canceled_at and done.latest_invoice == sub.latest_invoice
    deleted = stripe_client.v1.events.list({"type": "customer.subscription.deleted"}).data
    assert [e.data.object["id"] for e in deleted] == [sub.id]


def test_repeating_coupon_expires(
    stripe_client: stripe.StripeClient,
    sandbox: Sandbox,
    paying: stripe.Customer,
    price: stripe.Price,
) -> None:
    coupon = stripe_client.v1.coupons.create(
        {"percent_off": 50, "duration": "repeating", "duration_in_months": 1}
    )
    promo = stripe_client.v1.promotion_codes.create(
        {"promotion": {"type": "coupon", "coupon": coupon.id}, "code": "HALF"}
    )
    sub = _sub(stripe_client, paying.id, price.id, discounts=[{"promotion_code": promo.id}])
    assert stripe_client.v1.invoices.retrieve(str(sub.latest_invoice)).total == 1000
    end = sub["items"].data[0].current_period_end
    sandbox.advance_clock(to=end + 1)
    renewed = stripe_client.v1.subscriptions.retrieve(sub.id, {"expand": ["latest_invoice"]})
    assert renewed.discounts == []
    assert isinstance(renewed.latest_invoice, stripe.Invoice)
    assert renewed.latest_invoice.total == 2000
    assert stripe_client.v1.promotion_codes.retrieve(promo.id).times_redeemed == 1


def test_events_wildcards_and_created_filter(
    stripe_client: stripe.StripeClient,
    sandbox: Sandbox,
    paying: stripe.Customer,
    price: stripe.Price,
) -> None:
    sub = _sub(stripe_client, paying.id, price.id)
    cursor = stripe_client.v1.events.list({"limit": 1}).data[0].created
    sandbox.advance_clock(5)
    stripe_client.v1.subscriptions.update(sub.id, {"metadata": {"x": "y"}})
    recent = stripe_client.v1.events.list({"created": {"gt": cursor}}).data
    assert [e.type for e in recent] == ["customer.subscription.updated"]
    assert recent[0].data.previous_attributes is not None
    assert recent[0].data.previous_attributes["metadata"].to_dict() == {"x": None}
    types = {
        e.type
        for e in stripe_client.v1.events.list(
            {"type": "customer.subscription.*"}
        ).auto_paging_iter()
    }
    assert types == {"customer.subscription.created", "customer.subscription.updated"}
    invoice_types = {
        e.type
        for e in stripe_client.v1.events.list(
            {"types": ["invoice.paid", "customer.subscription.created"]}
        ).data
    }
    assert invoice_types == {"invoice.paid", "customer.subscription.created"}


def test_idempotency_key(
    stripe_client: stripe.StripeClient, paying: stripe.Customer, price: stripe.Price
) -> None:
    key = str(uuid.uuid4())
    params: Any = {"customer": paying.id, "items": [{"price": price.id}]}
    first = stripe_client.v1.subscriptions.create(params, {"idempotency_key": key})
    again = stripe_client.v1.subscriptions.create(params, {"idempotency_key": key})
    assert again.id == first.id
    assert again.last_response is not None
    assert again.last_response.headers.get("idempotent-replayed") == "true"
    assert len(stripe_client.v1.subscriptions.list().data) == 1
    with pytest.raises(stripe.IdempotencyError):
        stripe_client.v1.subscriptions.create(
            {**params, "metadata": {"other": "1"}}, {"idempotency_key": key}
        )


class _Receiver(http.server.BaseHTTPRequestHandler):
    received: list[tuple[bytes, str]] = []
    fail_first = 0
    arrived: threading.Event  # set on each delivery accepted (the fixture makes one per test)

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        cls = type(self)
        if cls.fail_first > 0:
            cls.fail_first -= 1
            self.send_response(500)
        else:
            cls.received.append((body, self.headers["Stripe-Signature"]))
            cls.arrived.set()
            self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def receiver() -> Iterator[tuple[str, type[_Receiver]]]:
    handler = type(
        "Handler", (_Receiver,), {"received": [], "fail_first": 0, "arrived": threading.Event()}
    )
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hook", handler
    server.shutdown()
    server.server_close()


def _arrived(event: threading.Event, sandbox: Sandbox, timeout: float = 10) -> None:
    """Wait for a receiver to see a delivery; if it never does, say what the sandbox did."""
    if not event.wait(timeout):
        raise AssertionError(
            f"no delivery arrived in {timeout} s; the sandbox's deliveries: "
            f"{sandbox.webhook_deliveries()[-5:]}"
        )


def _wait(cond: Callable[[], bool], tries: int = 200) -> None:
    """Until the sandbox's own state says so (bounded; fails the test when it never does)."""
    for _ in range(tries):
        if cond():
            return
        threading.Event().wait(0.05)
    raise AssertionError("the sandbox never reached the expected state")


def test_webhooks_signed_and_retried(
    stripe_client: stripe.StripeClient,
    sandbox: Sandbox,
    paying: stripe.Customer,
    price: stripe.Price,
    receiver: tuple[str, type[_Receiver]],
) -> None:
    url, handler = receiver
    sandbox.configure(webhook_retry_delays=[0.1, 0.1, 0.1])
    endpoint = stripe_client.v1.webhook_endpoints.create(
        {"url": url, "enabled_events": ["customer.subscription.*"]}
    )
    assert endpoint.secret is not None and endpoint.secret.startswith("whsec_")
    assert "secret" not in stripe_client.v1.webhook_endpoints.retrieve(endpoint.id)
    handler.fail_first = 2
    sub = _sub(stripe_client, paying.id, price.id)
    _arrived(handler.arrived, sandbox)  # a delivery accepted by the receiver
    body, signature = handler.received[0]
    event = stripe.Webhook.construct_event(body, signature, endpoint.secret)
    assert event.type == "customer.subscription.created"
    assert event.data.object["id"] == sub.id
    with pytest.raises(stripe.SignatureVerificationError):
        stripe.Webhook.construct_event(body, signature, "whsec_wrong")
    # The receiver answered; the sandbox records the delivery once it has read the answer.
    _wait(lambda: sandbox.webhook_deliveries()[0]["status"] == "delivered")
    deliveries = sandbox.webhook_deliveries()
    assert deliveries[0]["status"] == "delivered" and deliveries[0]["attempts"] == 3
    _wait(lambda: stripe_client.v1.events.retrieve(event.id).pending_webhooks == 0)
    assert stripe_client.v1.events.retrieve(event.id).pending_webhooks == 0


def test_sandbox_webhook_route(
    stripe_client: stripe.StripeClient, sandbox: Sandbox, receiver: tuple[str, type[_Receiver]]
) -> None:
    url, handler = receiver
    secret = sandbox.add_webhook(url, ["customer.created"], secret="whsec_fixed")
    assert secret == "whsec_fixed"
    stripe_client.v1.customers.create({"email": "w@example.com"})
    _arrived(handler.arrived, sandbox)  # a delivery accepted by the receiver
    event = stripe.Webhook.construct_event(*handler.received[0], secret)
    assert event.type == "customer.created"


def test_restricted_keys(
    sandbox: Sandbox,
    stripe_client: stripe.StripeClient,
    paying: stripe.Customer,
    price: stripe.Price,
) -> None:
    sub = _sub(stripe_client, paying.id, price.id)
    key = sandbox.create_restricted_key({"subscriptions": "read", "customers": "write"})
    limited = sandbox.client(key)
    assert limited.v1.subscriptions.retrieve(sub.id).id == sub.id
    limited.v1.customers.create({"email": "ok@example.com"})
    with pytest.raises(stripe.PermissionError) as err:
        limited.v1.subscriptions.update(sub.id, {"metadata": {"a": "b"}})
    assert err.value.http_status == 403
    assert "rak_subscription_write" in str(err.value.user_message)
    with pytest.raises(stripe.PermissionError):
        limited.v1.events.list()
    with pytest.raises(stripe.AuthenticationError) as auth:
        sandbox.client("rk_test_unknown").v1.customers.list()
    assert auth.value.http_status == 401


def test_configured_secret_keys(sandbox: Sandbox) -> None:
    sandbox.configure(secret_keys=["sk_test_only_this"])
    assert sandbox.client("sk_test_only_this").v1.customers.list().data == []
    with pytest.raises(stripe.AuthenticationError):
        sandbox.client("sk_test_other").v1.customers.list()
    sandbox.configure(secret_keys=None)


def test_injected_500_then_sdk_retry_succeeds(sandbox: Sandbox, paying: stripe.Customer) -> None:
    sandbox.inject_fault("error", status=500, method="POST", path="/v1/customers", times=1)
    retrying = sandbox.client(max_network_retries=2)
    created = retrying.v1.customers.create({"email": "r@example.com"})
    assert created.email == "r@example.com"
    sandbox.inject_fault("error", status=500, times=1)
    with pytest.raises(stripe.APIError):
        sandbox.client().v1.customers.list()


def test_lost_answer_is_replayed_by_idempotency(
    sandbox: Sandbox, paying: stripe.Customer, price: stripe.Price
) -> None:
    sandbox.inject_fault("drop", method="POST", path="/v1/subscriptions", after=True)
    retrying = sandbox.client(max_network_retries=2)
    sub = retrying.v1.subscriptions.create({"customer": paying.id, "items": [{"price": price.id}]})
    # the first attempt ran, its answer was lost; the retry (same key) got the stored answer
    assert [s.id for s in sandbox.client().v1.subscriptions.list().data] == [sub.id]


def test_429_and_rate_limit(sandbox: Sandbox) -> None:
    sandbox.inject_fault("error", status=429, times=1)
    with pytest.raises(stripe.RateLimitError) as err:
        sandbox.client().v1.customers.list()
    assert err.value.json_body is not None
    assert err.value.json_body["error"]["code"] == "rate_limit"
    sandbox.set_rate_limit(5)
    client = sandbox.client()
    outcomes = []
    for _ in range(12):
        try:
            client.v1.customers.list()
            outcomes.append(200)
        except stripe.RateLimitError:
            outcomes.append(429)
    assert 429 in outcomes and outcomes[0] == 200
    sandbox.set_rate_limit(None)


def test_hang_past_client_timeout(sandbox: Sandbox) -> None:
    """A hang as long as the sandbox allows (600 s): the client's 0.5 s timeout must end the
    call. Judged by an event (the call returned) with a bound, not by timing the call."""
    sandbox.inject_fault("hang", seconds=600, times=1)
    client = sandbox.client(http_client=stripe.RequestsClient(timeout=0.5))
    raised: list[BaseException] = []
    done = threading.Event()

    def call() -> None:
        try:
            client.v1.customers.list()
        except BaseException as exc:
            raised.append(exc)
        finally:
            done.set()

    threading.Thread(target=call, daemon=True).start()
    assert done.wait(timeout=60), "the client waited on the hang instead of timing out"
    assert len(raised) == 1 and isinstance(raised[0], stripe.APIConnectionError)


def _counting_rule(sandbox: Sandbox) -> int:
    """A fault rule that delays nothing and counts every API request it sees."""
    return sandbox.inject_fault("latency", seconds=0, path="/v1/*", times=None)


def _hits(sandbox: Sandbox, rule: int) -> int:
    return next(r["hits"] for r in sandbox.faults()["rules"] if r["id"] == rule)


def _wait_for_hits(sandbox: Sandbox, rule: int, count: int) -> None:
    """Until the sandbox has received ``count`` requests (an event on its side; bounded)."""
    for _ in range(400):
        if _hits(sandbox, rule) >= count:
            return
        threading.Event().wait(0.025)
    raise AssertionError(f"the sandbox never received {count} request(s)")


def _in_flight_conflict(sandbox: Sandbox) -> tuple[list[httpx.Response], httpx.Response]:
    """Send a request with an Idempotency-Key, and once the sandbox has it (claimed, and
    waiting out its latency), a second with the same key: (first's answers, second)."""
    rule = _counting_rule(sandbox)
    headers = {"Authorization": f"Bearer {sandbox.secret_key}", "Idempotency-Key": "same-key"}
    first: list[httpx.Response] = []

    def post() -> httpx.Response:
        return httpx.post(
            f"{sandbox.url}/v1/customers",
            data={"email": "c@example.com"},
            headers=headers,
            timeout=30,
        )

    thread = threading.Thread(target=lambda: first.append(post()))
    thread.start()
    _wait_for_hits(sandbox, rule, 1)  # the first is inside the sandbox, its key claimed
    second = post()  # while the first is still waiting out its latency
    thread.join(30)
    return first, second


def test_latency(sandbox: Sandbox) -> None:
    """Latency holds a request inside the sandbox after its key is claimed: seen as a second
    request with the same key answered 409 while the first waits (no stopwatch)."""
    sandbox.set_latency(2000)
    first, second = _in_flight_conflict(sandbox)
    assert second.status_code == 409 and [r.status_code for r in first] == [200]
    assert sandbox.faults()["latency_ms"] == 2000
    sandbox.set_latency(0)


def test_control_routes_answer_json(sandbox: Sandbox) -> None:
    now = httpx.get(f"{sandbox.url}/_sandbox/clock").json()["now"]
    moved = httpx.post(f"{sandbox.url}/_sandbox/clock", json={"advance": 3600}).json()["now"]
    assert moved - now >= 3600
    bad = httpx.post(f"{sandbox.url}/_sandbox/clock", json={"to": 0})
    assert bad.status_code == 400 and bad.json()["error"]["type"] == "invalid_request_error"
    missing = httpx.get(f"{sandbox.url}/v1/nothing", headers={"Authorization": "Bearer sk_test_x"})
    assert (
        missing.status_code == 404
        and "Unrecognized request URL" in missing.json()["error"]["message"]
    )


def test_independent_instances_and_state_file(tmp_path: Any) -> None:
    path = tmp_path / "state.pickle"
    with Sandbox.start(state_file=path) as one, Sandbox.start() as two:
        assert one.url != two.url
        made = one.client().v1.customers.create({"email": "kept@example.com"})
        assert two.client().v1.customers.list().data == []
    with Sandbox.start(state_file=path) as again:
        assert again.client().v1.customers.retrieve(made.id).email == "kept@example.com"


def test_subprocess_mode() -> None:
    with Sandbox.start(subprocess=True) as sb:
        assert sb.client().v1.customers.create({}).id.startswith("cus_")
        before = sb.now()
        assert sb.advance_clock(60) >= before + 60


def test_concurrent_same_idempotency_key_gets_409(sandbox: Sandbox) -> None:
    sandbox.set_latency(2000)
    first, conflict = _in_flight_conflict(sandbox)
    results = [*first, conflict]
    assert sorted(r.status_code for r in results) == [200, 409]
    assert conflict.json()["error"]["type"] == "idempotency_error"
    assert conflict.headers["stripe-should-retry"] == "true"
    sandbox.set_latency(0)
    headers = {"Authorization": f"Bearer {sandbox.secret_key}", "Idempotency-Key": "same-key"}
    again = httpx.post(
        f"{sandbox.url}/v1/customers", data={"email": "c@example.com"}, headers=headers
    )
    assert again.headers["idempotent-replayed"] == "true"
    created = next(r for r in results if r.status_code == 200).json()
    assert again.json()["id"] == created["id"]
    assert len(sandbox.client().v1.customers.list().data) == 1


def test_client_timeout_does_not_stop_the_request(sandbox: Sandbox) -> None:
    sandbox.set_latency(600)
    client = sandbox.client(http_client=stripe.RequestsClient(timeout=0.2))
    with pytest.raises(stripe.APIConnectionError):
        client.v1.customers.create({"email": "slow@example.com"})
    sandbox.set_latency(0)
    _wait(lambda: bool(sandbox.client().v1.customers.list().data))
    # as on Stripe, the request the client gave up on still ran
    assert [c.email for c in sandbox.client().v1.customers.list().data] == ["slow@example.com"]


def test_injected_error_with_retry_after(sandbox: Sandbox) -> None:
    sandbox.inject_fault("error", status=429, retry_after=7, times=1)
    with pytest.raises(stripe.RateLimitError) as err:
        sandbox.client().v1.customers.list()
    assert err.value.headers is not None and err.value.headers["retry-after"] == "7"
    sandbox.inject_fault("error", status=503, retry_after=1.5, times=1)
    with pytest.raises(stripe.APIError) as api:
        sandbox.client().v1.customers.list()
    assert api.value.http_status == 503 and api.value.headers["retry-after"] == "1.5"


def test_webhooks_in_flight_counts_an_event_until_its_receiver_answers(
    stripe_client: stripe.StripeClient, sandbox: Sandbox
) -> None:
    """What ``stayflow demo`` waits on before it moves the clock (the event's job must exist)."""
    release, entered = threading.Event(), threading.Event()

    class Holding(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers["Content-Length"]))
            entered.set()
            release.wait(10)
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Holding)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        assert sandbox.app is not None
        em = sandbox.app.em
        sandbox.add_webhook(f"http://127.0.0.1:{server.server_address[1]}/", ["customer.created"])
        assert em.webhooks_in_flight() == 0
        stripe_client.v1.customers.create({"email": "held@example.com"})
        assert em.webhooks_in_flight() == 1  # in the outbox until the next tick
        _arrived(entered, sandbox)
        assert em.webhooks_in_flight() == 1  # posted; the answer not read yet
        release.set()
        _wait(lambda: em.webhooks_in_flight() == 0)
        assert sandbox.webhook_deliveries()[0]["status"] == "delivered"
    finally:
        release.set()
        server.shutdown()
        server.server_close()


def test_a_tick_that_fails_does_not_stop_the_ticker(
    stripe_client: stripe.StripeClient,
    sandbox: Sandbox,
    receiver: tuple[str, type[_Receiver]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A stand-in fault (monkeypatched: no request makes the real outbox raise on demand):
    one tick raising once must leave every later webhook of the sandbox delivered."""
    assert sandbox.app is not None
    em = sandbox.app.em
    real = em.take_outbox
    calls = {"n": 0}

    def failing_once() -> list[tuple[dict[str, Any], list[dict[str, Any]]]]:
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("a bad tick")
        return real()

    monkeypatch.setattr(em, "take_outbox", failing_once)
    url, handler = receiver
    sandbox.add_webhook(url, ["customer.created"])
    stripe_client.v1.customers.create({"email": "tick@example.com"})
    _arrived(handler.arrived, sandbox)
    assert calls["n"] >= 2
