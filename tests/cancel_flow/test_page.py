"""The hosted page and its actions, as HTML forms and as headless JSON."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from sqlalchemy import select, update

from stayflow.cancel_sessions.models import CancelSession
from stayflow.db import transaction, utcnow
from stayflow.jobs.models import Job
from stayflow.jobs.worker import Worker
from tests.cancel_flow.helpers import GOODBYE_URL, SAVE_URL, apply_flows, configure, start_session

JSON = {"Accept": "application/json"}


@pytest.fixture
def flow(client, owner):
    configure(client, owner)
    apply_flows(client, owner)
    return owner


def page_json(client, token, **headers):
    response = client.get(f"/c/{token}", headers={**JSON, **headers})
    assert response.status_code == 200, response.text
    return response.json()


def post(client, token, action, body=None, csrf=None, **headers):
    payload = dict(body or {})
    if csrf is not None:
        payload["csrf_token"] = csrf
    return client.post(f"/c/{token}/{action}", json=payload, headers={**JSON, **headers})


def session_row(session_factory, session_id):
    with session_factory() as db:
        return db.scalar(select(CancelSession).where(CancelSession.session_id == session_id))


def jobs(session_factory, name=None):
    with session_factory() as db:
        query = select(Job).where(Job.name.like("billing.%")).order_by(Job.id)
        if name:
            query = query.where(Job.name == name)
        return list(db.scalars(query))


def test_headless_accept_flow_records_everything(client, flow, session_factory):
    token = start_session(client, flow)
    page = page_json(client, token)
    assert page["step"] == "reason"
    assert [r["id"] for r in page["reasons"]] == ["too_expensive", "not_using"]
    assert page["reasons"][1]["comment"] is True
    assert page["offers"] == [] and page["reason_required"] is True
    assert page["copy"]["title"] == "We're sorry to see you go"
    csrf = page["csrf_token"]
    chosen = post(
        client, token, "reason", {"reason_id": "too_expensive", "comment": " pricey "}, csrf
    )
    assert chosen.status_code == 200, chosen.text
    after = chosen.json()["page"]
    assert after["step"] == "offers"
    assert [o["id"] for o in after["offers"]] == ["twenty_off"]
    offer = after["offers"][0]
    assert offer["headline"] == "Stay for 20% off, friend"  # merge field fell back
    assert offer["button"] == "Take 20% off" and offer["details"] == {"coupon": "SAVE20"}
    accepted = post(client, token, "accept", {"offer_id": "twenty_off"}, csrf)
    assert accepted.status_code == 200, accepted.text
    assert accepted.json()["outcome"] == "saved"
    assert accepted.json()["redirect_url"] == SAVE_URL
    cs = session_row(session_factory, page["session_id"])
    assert cs.outcome == "saved" and cs.offer_accepted_id == "twenty_off"
    assert cs.experience_id == "default" and cs.reason_id == "too_expensive"
    assert cs.reason_feedback == "too_expensive" and cs.reason_comment == "pricey"
    assert cs.offers_shown == ["twenty_off"]
    assert cs.viewed_at and cs.reason_at and cs.outcome_at
    [job] = jobs(session_factory)
    assert job.name == "billing.apply_offer" and job.app_pk == cs.app_pk
    assert job.payload["session_id"] == cs.session_id
    assert job.payload["offer_id"] == "twenty_off"
    assert job.payload["offer"]["coupon"] == "SAVE20"
    assert job.payload["subscription_id"] == "sub_K1Vhej7WAk7k7Z"


def test_double_click_and_replay_record_one_outcome(client, flow, session_factory):
    token = start_session(client, flow)
    csrf = page_json(client, token)["csrf_token"]
    post(client, token, "reason", {"reason_id": "too_expensive"}, csrf)
    first = post(client, token, "accept", {"offer_id": "twenty_off"}, csrf)
    second = post(client, token, "accept", {"offer_id": "twenty_off"}, csrf)
    assert first.status_code == second.status_code == 200
    assert second.json()["replayed"] is True and second.json()["redirect_url"] == SAVE_URL
    assert len(jobs(session_factory)) == 1
    # Anything else after the outcome is refused, and changes nothing.
    assert post(client, token, "cancel", {}, csrf).status_code == 409
    assert post(client, token, "deflect", {}, csrf).status_code == 409
    assert post(client, token, "reason", {"reason_id": "not_using"}, csrf).status_code == 409
    assert len(jobs(session_factory)) == 1
    page = page_json(client, token)
    assert page["step"] == "finished" and page["outcome"] == "saved"


def test_concurrent_posts_record_one_outcome(client, flow, session_factory):
    from concurrent.futures import ThreadPoolExecutor

    token = start_session(client, flow)
    csrf = page_json(client, token)["csrf_token"]
    post(client, token, "reason", {"reason_id": "not_using"}, csrf)

    def hit(_):
        return post(client, token, "cancel", {}, csrf).status_code

    with ThreadPoolExecutor(8) as pool:
        codes = list(pool.map(hit, range(8)))
    assert set(codes) == {200}
    assert len(jobs(session_factory, "billing.cancel_subscription")) == 1


def test_cancel_flow_and_its_job(client, flow, session_factory):
    token = start_session(client, flow)
    csrf = page_json(client, token)["csrf_token"]
    no_reason = post(client, token, "cancel", {}, csrf)
    assert no_reason.status_code == 422
    assert no_reason.json()["error"]["type"] == "reason_required"
    done = post(client, token, "cancel", {"reason_id": "not_using", "comment": "busy"}, csrf)
    assert done.status_code == 200, done.text
    assert done.json()["outcome"] == "canceled" and done.json()["redirect_url"] == GOODBYE_URL
    [job] = jobs(session_factory)
    assert job.name == "billing.cancel_subscription"
    assert job.payload["feedback"] == "unused" and job.payload["comment"] == "busy"
    assert job.payload["reason_id"] == "not_using"


def test_reason_can_be_made_optional(client, flow, session_factory):
    configure(client, flow, reason_required=False)
    token = start_session(client, flow)
    page = page_json(client, token)
    assert page["reason_required"] is False
    done = post(client, token, "cancel", {}, page["csrf_token"])
    assert done.status_code == 200 and done.json()["outcome"] == "canceled"
    assert jobs(session_factory)[0].payload["reason_id"] is None


def test_deflect_enqueues_nothing(client, flow, session_factory):
    token = start_session(client, flow)
    page = page_json(client, token)
    done = post(client, token, "deflect", {}, page["csrf_token"])
    assert done.json()["outcome"] == "deflected" and done.json()["redirect_url"] == SAVE_URL
    assert jobs(session_factory) == []
    assert session_row(session_factory, page["session_id"]).outcome == "deflected"


def test_csrf_is_required_on_every_action(client, flow, session_factory):
    token = start_session(client, flow)
    page = page_json(client, token)
    for action in ("reason", "accept", "deflect", "cancel"):
        for csrf in (None, "", "0" * 64, page["csrf_token"][:-1] + "x"):
            response = post(client, token, action, {"reason_id": "too_expensive"}, csrf)
            assert response.status_code == 403, (action, csrf)
            assert response.json()["error"]["type"] == "csrf_failed"
    # Another session's token does not work here either.
    other_token = start_session(client, flow)
    other_csrf = page_json(client, other_token)["csrf_token"]
    assert post(client, token, "deflect", {}, other_csrf).status_code == 403
    # The header works as well as the body field.
    ok = client.post(f"/c/{token}/deflect", headers={**JSON, "X-CSRF-Token": page["csrf_token"]})
    assert ok.status_code == 200
    assert session_row(session_factory, page["session_id"]).outcome == "deflected"


def test_unknown_choices_are_4xx(client, flow):
    token = start_session(client, flow)
    csrf = page_json(client, token)["csrf_token"]
    assert post(client, token, "reason", {"reason_id": "bored"}, csrf).status_code == 400
    assert post(client, token, "accept", {"offer_id": "free_money"}, csrf).status_code == 400
    assert post(client, token, "reason", {"reason_id": ["x"]}, csrf).status_code == 400
    bad = client.post(
        f"/c/{token}/reason", content=b"[1]", headers={"Content-Type": "application/json"}
    )
    assert bad.status_code == 400


def test_html_form_flow_with_redirects(client, flow, session_factory):
    token = start_session(client, flow)
    html = client.get(f"/c/{token}")
    assert html.status_code == 200
    assert html.headers["content-type"].startswith("text/html")
    csp = html.headers["content-security-policy"]
    assert "default-src 'none'" in csp and "form-action 'self' https://app.example.com" in csp
    assert html.headers["referrer-policy"] == "no-referrer"
    assert html.headers["x-frame-options"] == "DENY"
    text = html.text
    assert '<html lang="en">' in text and "It&#39;s too expensive" in text
    assert not re.search(r'(src|href)="https?://', text)  # no external assets
    assert text.count("Cancel subscription") >= 1 and "Never mind, keep my subscription" in text
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', text).group(1)
    step2 = client.post(
        f"/c/{token}/reason",
        data={"csrf_token": csrf, "reason_id": "not_using", "comment": ""},
        follow_redirects=False,
    )
    assert step2.status_code == 303 and step2.headers["location"] == f"/c/{token}"
    offers = client.get(f"/c/{token}").text
    assert "Pause for 2 months instead" in offers
    assert "No thanks, cancel my subscription" in offers
    done = client.post(
        f"/c/{token}/accept",
        data={"csrf_token": csrf, "offer_id": "pause_2m"},
        follow_redirects=False,
    )
    assert done.status_code == 303 and done.headers["location"] == SAVE_URL
    again = client.post(
        f"/c/{token}/accept",
        data={"csrf_token": csrf, "offer_id": "pause_2m"},
        follow_redirects=False,
    )
    assert again.status_code == 303 and again.headers["location"] == SAVE_URL
    # The reopened link is the result page: what happened, and on to the business.
    finished = client.get(f"/c/{token}")
    assert finished.status_code == 200 and "Thank you for staying" in finished.text
    assert f'href="{SAVE_URL}"' in finished.text
    assert len(jobs(session_factory)) == 1


def test_html_missing_reason_shows_a_polite_error(client, flow):
    token = start_session(client, flow)
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', client.get(f"/c/{token}").text).group(1)
    response = client.post(f"/c/{token}/cancel", data={"csrf_token": csrf})
    assert response.status_code == 422
    assert 'role="alert"' in response.text and "Please choose a reason" in response.text
    bad_csrf = client.post(
        f"/c/{token}/cancel", data={"csrf_token": "nope", "reason_id": "too_expensive"}
    )
    assert bad_csrf.status_code == 403 and "out of date" in bad_csrf.text


def test_unknown_and_expired_sessions_are_polite(client, flow, session_factory):
    missing = client.get("/c/not-a-real-token")
    assert missing.status_code == 404 and "This link is not valid" in missing.text
    assert client.get("/c/not-a-real-token", headers=JSON).status_code == 404
    assert client.post("/c/nope/cancel", json={}, headers=JSON).status_code == 404
    token = start_session(client, flow)
    csrf = page_json(client, token)["csrf_token"]
    with transaction(session_factory) as db:
        db.execute(update(CancelSession).values(expires_at=utcnow() - timedelta(seconds=1)))
    expired = client.get(f"/c/{token}")
    assert expired.status_code == 410 and "This link has expired" in expired.text
    assert SAVE_URL in expired.text
    assert post(client, token, "cancel", {"reason_id": "not_using"}, csrf).status_code == 410
    assert page_json(client, token)["step"] == "expired"
    assert jobs(session_factory) == []


def test_merge_fields_and_escaping(client, owner):
    configure(client, owner)
    apply_flows(
        client,
        owner,
        """
reasons: [{id: r, label: "Reason for {{ custom.note | default('you') }}"}]
offers:
  - {id: o, type: trial_extension, days: 7, headline: "Hi {{ first_name | default('there') }}"}
experiences: [{id: d, title: "Hello {{ custom.note }}", offers: [o]}]
""",
    )
    payload = '<script>window.__xss=1</script><img src=x onerror="window.__xss=1">'
    token = start_session(client, owner, first_name="<b>Ada</b>", custom={"note": payload})
    html = client.get(f"/c/{token}").text
    assert "<script>window.__xss" not in html and "<img src=x" not in html
    assert "&lt;script&gt;window.__xss=1&lt;/script&gt;" in html
    page = page_json(client, token)
    assert page["copy"]["title"] == f"Hello {payload}"  # JSON carries text; clients show it as text
    assert page["reasons"][0]["label"] == f"Reason for {payload}"
    csrf = page["csrf_token"]
    offers = post(client, token, "reason", {"reason_id": "r"}, csrf).json()["page"]["offers"]
    assert offers[0]["headline"] == "Hi <b>Ada</b>"
    html = client.get(f"/c/{token}").text
    assert "Hi &lt;b&gt;Ada&lt;/b&gt;" in html


def test_locale_from_snippet_then_accept_language(client, owner):
    configure(client, owner)
    apply_flows(
        client,
        owner,
        """
reasons:
  - {id: price, label: "Too expensive", translations: {fr: {label: "Trop cher"}}}
offers:
  - {id: p, type: pause, duration: 2, interval: month}
experiences: [{id: d, offers: [p]}]
""",
    )
    fr = start_session(client, owner, locale="fr-CA")
    page = page_json(client, fr, **{"Accept-Language": "de"})
    assert page["locale"] == "fr" and page["reasons"][0]["label"] == "Trop cher"
    assert page["copy"]["title"] == "Nous sommes désolés de vous voir partir"
    html = client.get(f"/c/{fr}").text
    assert '<html lang="fr">' in html and "Pourquoi résiliez-vous\u202f?" in html
    de = start_session(client, owner)
    page = page_json(client, de, **{"Accept-Language": "it;q=0.9, de-DE;q=0.8, en;q=0.5"})
    assert page["locale"] == "de" and page["reasons"][0]["label"] == "Too expensive"
    csrf = page["csrf_token"]
    offers = post(
        client, de, "reason", {"reason_id": "price"}, csrf, **{"Accept-Language": "de"}
    ).json()["page"]["offers"]
    assert offers[0]["headline"] == "Stattdessen 2 Monate pausieren"
    assert (
        page_json(client, start_session(client, owner), **{"Accept-Language": "xx"})["locale"]
        == "en"
    )


def test_builtin_reasons_when_none_configured(client, owner):
    configure(client, owner)
    token = start_session(client, owner, locale="de")
    page = page_json(client, token)
    assert page["reasons"][0] == {
        "id": "too_expensive",
        "label": "Es ist zu teuer",
        "comment": False,
    }
    assert page["step"] == "reason"
    done = post(client, token, "cancel", {"reason_id": "switched_service"}, page["csrf_token"])
    assert done.status_code == 200


@pytest.fixture
def stripe_page(settings, owner, sandbox, stripe_client, make_paying_customer, make_price):
    """The app with its real Stripe enricher, talking to the sandbox; owner connected, flows
    applied, and a yearly subscription for a customer named Ada."""
    from fastapi.testclient import TestClient

    from stayflow.app import create_app

    app = create_app(settings.model_copy(update={"stripe_api_base": sandbox.url}))
    with TestClient(app) as test_client:
        configure(test_client, owner)
        apply_flows(test_client, owner)
        connected = test_client.put(
            "/api/v1/billing/stripe", json={"api_key": sandbox.secret_key}, headers=owner.headers
        )
        assert connected.status_code == 200, connected.text
        customer = make_paying_customer(name="Ada")
        sub = stripe_client.v1.subscriptions.create(
            {"customer": customer.id, "items": [{"price": make_price(24000, "year").id}]}
        )
        yield test_client, sub.id


def _sandbox_calls(sandbox, rule):
    return next(r["hits"] for r in sandbox.faults()["rules"] if r["id"] == rule)


def test_enrichment_feeds_audiences_once(stripe_page, owner, sandbox, session_factory):
    """The real enricher against the sandbox: one Stripe call at the first view (counted at
    the sandbox), none at precancel or at the second view; its fields pick the experience."""
    client, sub_id = stripe_page
    counter = sandbox.inject_fault("latency", seconds=0, path="/v1/*", times=None)
    token = start_session(client, owner, subscription_id=sub_id)
    assert _sandbox_calls(sandbox, counter) == 0  # precancel never calls Stripe
    page = page_json(client, token)
    page_json(client, token)
    assert _sandbox_calls(sandbox, counter) == 1  # at the first view only
    cs = session_row(session_factory, page["session_id"])
    assert cs.experience_id == "annual_flow"
    assert cs.enriched_fields["subscription.plan.interval"] == "year"
    assert cs.enriched_fields["subscription.customer.name"] == "Ada"
    assert cs.enriched_fields["enrichment.stripe_calls"] == 1


def test_a_failing_enricher_still_shows_the_default(stripe_page, owner, sandbox, session_factory):
    """Stripe answering 500 to everything (the sandbox's fault, not a stand-in enricher)."""
    client, sub_id = stripe_page
    sandbox.inject_fault("error", status=500, path="/v1/*", times=None)
    token = start_session(client, owner, subscription_id=sub_id)
    page = page_json(client, token)
    assert page["step"] == "reason"
    assert session_row(session_factory, page["session_id"]).experience_id == "default"


def test_experiment_variant_is_recorded(client, flow, session_factory):
    client.put(
        "/api/v1/flows/experiments/split",
        json={
            "variants": [
                {"id": "a", "experience": "default"},
                {"id": "b", "experience": "annual_flow"},
            ]
        },
        headers=flow.headers,
    )
    seen = set()
    for i in range(12):
        token = start_session(client, flow, subscription_id=f"sub_{i}")
        cs = session_row(session_factory, page_json(client, token)["session_id"])
        assert cs.experiment_id == "split"
        seen.add((cs.variant_id, cs.experience_id))
        # The same subscription gets the same variant in a new session.
        again = start_session(client, flow, subscription_id=f"sub_{i}")
        assert (
            session_row(session_factory, page_json(client, again)["session_id"]).variant_id
            == cs.variant_id
        )
    assert seen == {("a", "default"), ("b", "annual_flow")}


def test_abandoned_job(client, flow, session_factory):
    idle = start_session(client, flow)
    active = start_session(client, flow)
    idle_page, active_page = page_json(client, idle), page_json(client, active)
    post(client, active, "deflect", {}, active_page["csrf_token"])
    with transaction(session_factory) as db:
        db.execute(update(CancelSession).values(abandon_at=utcnow() - timedelta(seconds=1)))
        from stayflow.jobs.service import enqueue

        enqueue(db, "cancel_sessions.mark_abandoned", {})
    worker = Worker(session_factory)
    worker.run_until_idle(timeout=30)
    assert session_row(session_factory, idle_page["session_id"]).outcome == "abandoned"
    assert session_row(session_factory, active_page["session_id"]).outcome == "deflected"
    with session_factory() as db:
        [job] = db.scalars(select(Job).where(Job.name == "cancel_sessions.mark_abandoned")).all()
        assert job.status == "succeeded"
    # Coming back before the link expires still works, and replaces "abandoned".
    done = post(client, idle, "cancel", {"reason_id": "not_using"}, idle_page["csrf_token"])
    assert done.status_code == 200
    assert session_row(session_factory, idle_page["session_id"]).outcome == "canceled"


def test_abandon_schedule_is_registered():
    from stayflow.jobs.registry import load_handlers

    registry = load_handlers()
    assert "cancel_sessions.mark_abandoned" in registry.handlers
    assert any(s.handler == "cancel_sessions.mark_abandoned" for s in registry.schedules.values())


def test_admin_sessions_list_filters_and_pages(client, flow):
    tokens = [start_session(client, flow, subscription_id=f"sub_{i}") for i in range(5)]
    for token in tokens[:2]:
        page = page_json(client, token)
        post(client, token, "deflect", {}, page["csrf_token"])
    h = flow.headers
    everything = client.get("/api/v1/cancel-sessions", headers=h).json()
    assert len(everything["data"]) == 5 and everything["has_more"] is False
    assert [s["subscription_id"] for s in everything["data"]] == [
        f"sub_{i}" for i in range(4, -1, -1)
    ]
    deflected = client.get("/api/v1/cancel-sessions?outcome=deflected", headers=h).json()["data"]
    assert {s["subscription_id"] for s in deflected} == {"sub_0", "sub_1"}
    open_ = client.get("/api/v1/cancel-sessions?outcome=open", headers=h).json()["data"]
    assert len(open_) == 3
    first = client.get("/api/v1/cancel-sessions?limit=2", headers=h).json()
    assert len(first["data"]) == 2 and first["has_more"] is True
    cursor = first["data"][-1]["session_id"]
    rest = client.get(f"/api/v1/cancel-sessions?limit=2&starting_after={cursor}", headers=h).json()
    assert [s["subscription_id"] for s in rest["data"]] == ["sub_2", "sub_1"]
    future = (utcnow() + timedelta(hours=1)).isoformat()
    assert (
        client.get("/api/v1/cancel-sessions", params={"created_after": future}, headers=h).json()[
            "data"
        ]
        == []
    )
    assert (
        len(
            client.get(
                "/api/v1/cancel-sessions", params={"created_before": future}, headers=h
            ).json()["data"]
        )
        == 5
    )
    one = client.get(f"/api/v1/cancel-sessions/{deflected[0]['session_id']}", headers=h).json()
    assert one["outcome"] == "deflected" and one["request_fields"]["email"] == "ada@example.com"
    assert "token_hash" not in one and "flow" not in one
    assert client.get("/api/v1/cancel-sessions?outcome=weird", headers=h).status_code == 422
    assert client.get("/api/v1/cancel-sessions?limit=1000", headers=h).status_code == 422
    assert client.get("/api/v1/cancel-sessions/cs_nope", headers=h).status_code == 404


REDIRECT_FLOWS = """\
reasons:
  - {id: too_hard, label: "It's too hard to use", feedback: too_complex}
offers:
  - id: talk
    type: redirect
    url: https://support.example.com/chat?topic=cancel
    headline: "Talk to a person first"
    button: "Chat with support"
    reasons: [too_hard]
experiences:
  - {id: default, reasons: [too_hard], offers: [talk]}
"""


def test_redirect_offer_end_to_end(client, owner, session_factory):
    """A redirect offer through the HTML page: allowed by the page's CSP, answered with a 303
    to its URL, recorded as `redirected` once (replays too), no billing job, visible in the
    admin API."""
    configure(client, owner)
    apply_flows(client, owner, REDIRECT_FLOWS)
    token = start_session(client, owner)
    html = client.get(f"/c/{token}")
    assert "form-action 'self'" in html.headers["content-security-policy"]
    assert "https://support.example.com" in html.headers["content-security-policy"]
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', html.text).group(1)
    step = client.post(
        f"/c/{token}/reason",
        data={"csrf_token": csrf, "reason_id": "too_hard", "comment": ""},
        follow_redirects=False,
    )
    assert step.status_code == 303
    offers = client.get(f"/c/{token}").text
    assert "Talk to a person first" in offers and "Chat with support" in offers
    for _ in range(2):  # the second is a replay (a double click): the same answer
        done = client.post(
            f"/c/{token}/accept",
            data={"csrf_token": csrf, "offer_id": "talk"},
            follow_redirects=False,
        )
        assert done.status_code == 303
        assert done.headers["location"] == "https://support.example.com/chat?topic=cancel"
    # A reopened finished link shows the result page (the last step), not the offers again.
    finished = client.get(f"/c/{token}")
    assert finished.status_code == 200 and 'id="result-message"' in finished.text
    assert "Chat with support" not in finished.text
    assert jobs(session_factory) == []  # no billing work for a redirect
    listed = client.get(
        "/api/v1/cancel-sessions", params={"outcome": "redirected"}, headers=owner.headers
    ).json()["data"]
    assert len(listed) == 1 and listed[0]["outcome"] == "redirected"
    assert listed[0]["offer_accepted_id"] == "talk"


def test_confirm_step_says_when_and_how_the_subscription_ends(stripe_page, owner, stripe_client):
    """Before the subscriber confirms, the page says what the app's cancel options will do
    in Stripe: the date the paid period ends (from Stripe), or now with a credit/invoice."""
    from stayflow.flows.copy import format_date

    client, sub_id = stripe_page
    period_end = stripe_client.v1.subscriptions.retrieve(sub_id)["items"]["data"][0][
        "current_period_end"
    ]
    token = start_session(client, owner, subscription_id=sub_id)
    body = page_json(client, token)["copy"]["confirm_body"]
    assert format_date(period_end, "en") in body
    assert "keep access until then" in body
    french = page_json(client, token, **{"Accept-Language": "fr"})["copy"]["confirm_body"]
    assert format_date(period_end, "fr") in french

    setup = client.put(
        "/api/v1/billing/stripe/setup",
        json={"cancel": {"at_period_end": False, "prorate": True, "all_subscriptions": True}},
        headers=owner.headers,
    )
    assert setup.status_code == 200, setup.text
    body = page_json(client, start_session(client, owner, subscription_id=sub_id))["copy"][
        "confirm_body"
    ]
    assert body.startswith("Your subscription will end now")
    assert "credited" in body and "other subscriptions" in body
    assert format_date(period_end, "en") not in body


def test_confirm_step_makes_no_promise_without_a_stripe_connection(client, flow):
    """stayflow does not cancel for an app without a key: the page names no date."""
    body = page_json(client, start_session(client, flow))["copy"]["confirm_body"]
    assert body == "Your subscription will be cancelled. You can come back any time."
