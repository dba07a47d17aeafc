"""The last step says exactly what happened, from Stripe's answer, in the subscriber's language;
an offer Stripe refuses at acceptance sends the subscriber back to the offers at once."""

from __future__ import annotations

import html
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
import stripe
from fastapi.testclient import TestClient
from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from stayflow.billing.actions.models import BillingAction
from stayflow.cancel_sessions.models import CancelSession
from stayflow.flows.copy import format_date
from stayflow.sandbox import Sandbox
from tests.billing_actions.helpers import flows_doc, retrieve
from tests.billing_actions.test_one_owner import _connect
from tests.cancel_flow.helpers import SAVE_URL, configure, start_session
from tests.conftest import Tenant

JSON = {"Accept": "application/json"}
REASON = {"reason_id": "too_expensive"}


def _date(ts: int, locale: str) -> str:
    return format_date(datetime.fromtimestamp(ts, UTC), locale)


@pytest.fixture
def flow(
    stripe_api: TestClient,
    owner: Tenant,
    sandbox: Sandbox,
    session_factory: sessionmaker[Session],
    stripe_client: stripe.StripeClient,
) -> dict[str, str]:
    _connect(session_factory, owner.app_id, sandbox.secret_key, cancel={"at_period_end": True})
    coupon = stripe_client.v1.coupons.create(
        {"percent_off": 20, "duration": "repeating", "duration_in_months": 3}
    ).id
    configure(stripe_api, owner)
    offers = [
        {"id": "off", "type": "discount", "coupon": coupon},
        {"id": "p", "type": "pause", "duration": 1, "interval": "month"},
    ]
    answer = stripe_api.put("/api/v1/flows", json=flows_doc(offers), headers=owner.headers)
    assert answer.status_code == 200, answer.text
    return {"coupon": coupon}


@pytest.fixture
def new_sub(
    stripe_client: stripe.StripeClient,
    make_paying_customer: Callable[..., stripe.Customer],
    make_price: Callable[..., stripe.Price],
) -> Callable[[], str]:
    def make() -> str:
        return str(
            stripe_client.v1.subscriptions.create(
                {"customer": make_paying_customer().id, "items": [{"price": make_price().id}]}
            ).id
        )

    return make


def _form(api: TestClient, token: str, action: str, lang: str, **body: Any) -> Any:
    headers = {"Accept-Language": lang}
    csrf = api.get(f"/c/{token}", headers={**JSON, **headers}).json()["csrf_token"]
    return api.post(
        f"/c/{token}/{action}",
        data={**body, "csrf_token": csrf},
        headers=headers,
        follow_redirects=False,
    )


@pytest.mark.parametrize(
    ("lang", "words"),
    [
        ("en", "20% off is applied to your next 3 invoices"),
        ("fr", "20\u00a0% de remise s'appliquent à vos 3 prochaines factures"),
        ("de", "20\u00a0% Rabatt gelten für Ihre nächsten 3 Rechnungen"),
    ],
)
def test_a_discount_says_its_terms(
    flow: dict[str, str],
    stripe_api: TestClient,
    owner: Tenant,
    new_sub: Callable[[], str],
    lang: str,
    words: str,
) -> None:
    token = start_session(stripe_api, owner, subscription_id=new_sub())
    done = _form(stripe_api, token, "accept", lang, offer_id="off")
    assert done.status_code == 303 and done.headers["location"] == SAVE_URL
    page = stripe_api.get(f"/c/{token}", headers={"Accept-Language": lang})
    assert page.status_code == 200
    assert f'<html lang="{lang}">' in page.text
    assert words in html.unescape(page.text).replace("\u202f", "\u00a0")
    assert f'href="{SAVE_URL}"' in page.text


def test_a_pause_and_a_cancel_say_their_dates_from_stripe(
    flow: dict[str, str],
    stripe_api: TestClient,
    owner: Tenant,
    new_sub: Callable[[], str],
    stripe_client: stripe.StripeClient,
) -> None:
    paused = new_sub()
    token = start_session(stripe_api, owner, subscription_id=paused)
    assert _form(stripe_api, token, "accept", "en", offer_id="p").status_code == 303
    resumes = retrieve(stripe_client, paused)["pause_collection"]["resumes_at"]
    page = stripe_api.get(f"/c/{token}").text
    assert f"Your subscription is paused until {_date(resumes, 'en')}" in page

    ending = new_sub()
    token = start_session(stripe_api, owner, subscription_id=ending)
    assert _form(stripe_api, token, "cancel", "fr", **REASON).status_code == 303
    cancel_at = retrieve(stripe_client, ending)["cancel_at"]
    page = stripe_api.get(f"/c/{token}", headers={"Accept-Language": "fr"}).text
    assert f"Votre abonnement prend fin le {_date(cancel_at, 'fr')}" in page
    assert "Aucun autre prélèvement ne sera effectué." in page
    # The business reads the same sentence in the session's record.
    session_id = stripe_api.get(f"/c/{token}", headers=JSON).json()["session_id"]
    record = stripe_api.get(f"/api/v1/cancel-sessions/{session_id}", headers=owner.headers)
    assert record.status_code == 200
    result = record.json()["result"]
    assert result["state"] == "done"
    assert result["message"] == (
        f"Your subscription ends on {_date(cancel_at, 'en')} — you keep access until then. "
        "No further charge will be made."
    )


def test_without_a_return_url_the_flow_ends_on_the_result_page(
    flow: dict[str, str],
    stripe_api: TestClient,
    owner: Tenant,
    new_sub: Callable[[], str],
    session_factory: sessionmaker[Session],
) -> None:
    token = start_session(stripe_api, owner, subscription_id=new_sub())
    with session_factory() as db:
        # No business page to return to (per-app defaults may be absent).
        db.execute(update(CancelSession).values(save_return_url=""))
        db.commit()
    done = _form(stripe_api, token, "accept", "en", offer_id="off")
    assert done.status_code == 303 and done.headers["location"] == f"/c/{token}"
    page = stripe_api.get(done.headers["location"])
    assert "20% off is applied to your next 3 invoices" in page.text
    assert "Continue" not in page.text


def test_an_offer_stripe_refuses_sends_the_subscriber_back_to_the_offers(
    flow: dict[str, str],
    stripe_api: TestClient,
    owner: Tenant,
    new_sub: Callable[[], str],
    stripe_client: stripe.StripeClient,
    session_factory: sessionmaker[Session],
) -> None:
    stripe_client.v1.coupons.delete(flow["coupon"])
    sub_id = new_sub()
    token = start_session(stripe_api, owner, subscription_id=sub_id)
    csrf = stripe_api.get(f"/c/{token}", headers=JSON).json()["csrf_token"]
    stripe_api.post(f"/c/{token}/reason", json={**REASON, "csrf_token": csrf}, headers=JSON)
    refused = _form(stripe_api, token, "accept", "en", offer_id="off")
    # At once, on the offers step, without the refused offer; nothing recorded as saved.
    assert refused.status_code == 200
    assert "this offer is no longer available" in refused.text
    assert 'value="off"' not in refused.text and 'value="p"' in refused.text
    page = stripe_api.get(f"/c/{token}", headers=JSON).json()
    assert page["step"] == "offers" and page["outcome"] is None
    assert [o["id"] for o in page["offers"]] == ["p"]
    with session_factory() as db:
        assert db.scalars(select(BillingAction)).all() == []
    assert retrieve(stripe_client, sub_id)["discounts"] == []
    # Asking for it again is refused up front; nothing is sent to Stripe.
    again = stripe_api.post(
        f"/c/{token}/accept", json={"offer_id": "off", "csrf_token": csrf}, headers=JSON
    )
    assert again.status_code == 400 and "not available" in again.json()["error"]["message"]
    # The business sees the refusal: an event, and the offer flagged.
    events = stripe_api.get("/api/v1/billing/events", headers=owner.headers).json()["data"]
    (event,) = [e for e in events if e["type"] == "billing.offer.refused"]
    assert event["data"]["offer_id"] == "off" and flow["coupon"] in event["data"]["error"]
    flagged = stripe_api.get("/api/v1/billing/offers/refused", headers=owner.headers).json()
    assert [f["offer_id"] for f in flagged["data"]] == ["off"]
    # Another subscriber is not offered it either; the choice left still works.
    other = start_session(stripe_api, owner, subscription_id=new_sub())
    csrf = stripe_api.get(f"/c/{other}", headers=JSON).json()["csrf_token"]
    answer = stripe_api.post(
        f"/c/{other}/reason", json={**REASON, "csrf_token": csrf}, headers=JSON
    ).json()
    assert [o["id"] for o in answer["page"]["offers"]] == ["p"]
    canceled = _form(stripe_api, token, "cancel", "en")
    assert canceled.status_code == 303
    assert retrieve(stripe_client, sub_id)["cancel_at_period_end"] is True
    # The business fixes the offer (saving checks it with Stripe): the flag is gone.
    coupon = stripe_client.v1.coupons.create({"percent_off": 10, "duration": "once"}).id
    doc = flows_doc([{"id": "off", "type": "discount", "coupon": coupon}])
    assert stripe_api.put("/api/v1/flows", json=doc, headers=owner.headers).status_code == 200
    flagged = stripe_api.get("/api/v1/billing/offers/refused", headers=owner.headers).json()
    assert flagged["data"] == []
