"""Settings → Stripe, App settings and Field mappings, against the Stripe sandbox."""

from __future__ import annotations

import html
import re

import pytest

from stayflow.apps import repository as apps_repository
from stayflow.cancel_sessions import settings as flow_settings
from stayflow.enrichment import service as enrichment_service


@pytest.fixture
def settings(settings, sandbox):
    """Every StripeClient of the app under test talks to the (reset) sandbox."""
    return settings.model_copy(update={"stripe_api_base": sandbox.url})


def _post(user, page: str, action: str, **data):
    return user.client.post(action, data={"csrf": user.csrf(page), **data})


def test_connect_a_restricted_key_names_the_missing_permission(signed_in, add_user, owner, sandbox):
    add_user("olga@example.com", owner.app_id)
    olga = signed_in("olga@example.com")
    page = f"/admin/apps/{owner.app_id}/settings/stripe"
    before = olga.client.get(page)
    assert before.status_code == 200 and "Not connected." in before.text
    key = sandbox.create_restricted_key(
        {"subscriptions": "write", "customers": "read", "products": "read", "events": "read"}
    )
    done = _post(olga, page, f"{page}/connect", api_key=key)
    assert done.status_code == 303, done.text
    report = olga.client.get(page).text
    assert "Connected to acct_" in report and "(test mode)" in report
    assert key not in report
    # prices:read is missing (enrichment, offers), coupons:read too (offers), named as Stripe
    # names the setting.
    assert "Add Prices: Read to the key in Stripe." in report
    assert "Add Coupons: Read to the key in Stripe." in report
    assert "add Webhook Endpoints: Write" in report
    enrichment = re.search(r'id="uc-enrichment".*?</article>', report, re.S).group(0)
    assert "missing permissions" in enrichment and "prices:read" in enrichment
    cancels = re.search(r'id="uc-cancels".*?</article>', report, re.S).group(0)
    assert "ready" in cancels and "Add " not in cancels
    # Re-check and disconnect.
    assert _post(olga, page, f"{page}/recheck").status_code == 303
    assert _post(olga, page, f"{page}/disconnect").status_code == 303
    assert "Not connected." in olga.client.get(page).text


def test_a_bad_or_refused_key_is_a_message_and_nothing_is_stored(
    signed_in, add_user, owner, session_factory, sandbox
):
    add_user("olga@example.com", owner.app_id)
    olga = signed_in("olga@example.com")
    page = f"/admin/apps/{owner.app_id}/settings/stripe"
    bad = _post(olga, page, f"{page}/connect", api_key="pk_test_123")
    assert bad.status_code == 400 and "Paste a restricted key" in bad.text
    refused = _post(olga, page, f"{page}/connect", api_key="rk_test_notarealkey0000000000")
    assert refused.status_code == 400 and "Stripe refused this key" in refused.text
    assert "rk_test_notarealkey" not in refused.text
    assert "Not connected." in olga.client.get(page).text


def test_use_cases_and_cancel_options(signed_in, add_user, owner, sandbox, session_factory):
    add_user("olga@example.com", owner.app_id)
    olga = signed_in("olga@example.com")
    page = f"/admin/apps/{owner.app_id}/settings/stripe"
    assert _post(olga, page, f"{page}/connect", api_key=sandbox.secret_key).status_code == 303
    text = olga.client.get(page).text
    assert "cancel_at_period_end=true" in text and "prorate=true" in text  # one line each
    saved = _post(
        olga,
        page,
        f"{page}/setup",
        enrichment="1",
        attribution="1",
        cancels="1",
        timing="now",
        prorate="1",
    )
    assert saved.status_code == 303
    with session_factory() as db:
        from stayflow.billing import service as billing_service

        app = apps_repository.get_app_by_public_id(db, owner.app_id)
        setup = billing_service.get_setup(db, app)
    assert setup.offers is False and setup.cancels is True
    assert setup.cancel.at_period_end is False and setup.cancel.prorate is True
    wrong = _post(olga, page, f"{page}/setup", cancels="1", timing="period_end", invoice_now="1")
    assert wrong.status_code == 400 and "immediate cancel only" in wrong.text
    odd = _post(olga, page, f"{page}/setup", timing="tomorrow")
    assert odd.status_code == 400
    with session_factory() as db:
        app = apps_repository.get_app_by_public_id(db, owner.app_id)
        assert billing_service.get_setup(db, app) == setup  # unchanged by the refusals


def test_viewers_and_editors_cannot_change_stripe_or_app_settings(
    signed_in, add_user, owner, sandbox
):
    add_user("eddy@example.com", owner.app_id, "editor")
    add_user("vera@example.com", owner.app_id, "viewer")
    stripe_page = f"/admin/apps/{owner.app_id}/settings/stripe"
    app_page = f"/admin/apps/{owner.app_id}/settings"
    for email in ("eddy@example.com", "vera@example.com"):
        user = signed_in(email)
        shown = user.client.get(stripe_page).text
        assert 'name="api_key"' not in shown and "Only an owner can change these." in shown
        for action, data in (
            (f"{stripe_page}/connect", {"api_key": sandbox.secret_key}),
            (f"{stripe_page}/disconnect", {}),
            (f"{stripe_page}/setup", {"timing": "now"}),
            (app_page, {"allowed_origins": "https://evil.example"}),
        ):
            assert _post(user, stripe_page, action, **data).status_code == 403, (email, action)
    vera = signed_in("vera@example.com")
    assert _post(vera, stripe_page, f"{stripe_page}/recheck").status_code == 403
    assert "Not connected." in vera.client.get(stripe_page).text


def test_app_settings_save_and_refuse_bad_values(signed_in, add_user, owner, session_factory):
    add_user("olga@example.com", owner.app_id)
    olga = signed_in("olga@example.com")
    page = f"/admin/apps/{owner.app_id}/settings"
    form = {
        "allowed_origins": "https://app.example.com\n\nhttp://localhost:3000",
        "allowed_redirect_domains": "*.example.com",
        "save_return_url": "https://app.example.com/account",
        "cancel_confirmation_url": "",
        "reason_required": "1",
        "signed_fields_max_age_seconds": "900",
        "session_expiry_minutes": "120",
        "abandon_after_minutes": "30",
        "pass_thru_expiry_minutes": "15",
        "window_days": "45",
    }
    saved = _post(olga, page, page, **form)
    assert saved.status_code == 303 and saved.headers["location"].endswith("?saved=1")
    shown = olga.client.get(page + "?saved=1").text
    assert "Saved." in shown and "http://localhost:3000\nhttps://app.example.com" in shown
    assert 'value="45"' in shown
    with session_factory() as db:
        app = apps_repository.get_app_by_public_id(db, owner.app_id)
        flow = flow_settings.read(app)
    assert flow.allowed_origins == ["http://localhost:3000", "https://app.example.com"]
    assert flow.session_expiry_minutes == 120 and flow.reason_required
    assert flow.allow_unsigned_precancel is False
    for field, value, expect in (
        ("allowed_origins", "http://app.example.com", "only localhost may use http"),
        ("session_expiry_minutes", "2", "session_expiry_minutes"),
        ("window_days", "400", "1 to 365"),
        ("window_days", "soon", "whole number of days"),
    ):
        refused = _post(olga, page, page, **{**form, field: value})
        assert refused.status_code == 400, (field, refused.text)
        assert expect in html.unescape(refused.text), field
    with session_factory() as db:
        app = apps_repository.get_app_by_public_id(db, owner.app_id)
        assert flow_settings.read(app) == flow  # unchanged


def test_map_a_field_from_a_sample_subscription_and_see_it_converted(
    signed_in,
    add_user,
    owner,
    sandbox,
    stripe_client,
    make_price,
    make_paying_customer,
    session_factory,
):
    add_user("olga@example.com", owner.app_id)
    add_user("vera@example.com", owner.app_id, "viewer")
    olga = signed_in("olga@example.com")
    stripe_page = f"/admin/apps/{owner.app_id}/settings/stripe"
    assert (
        _post(olga, stripe_page, f"{stripe_page}/connect", api_key=sandbox.secret_key).status_code
        == 303
    )
    customer = make_paying_customer(email="ada@example.com")
    price = make_price(unit_amount=1999, interval="month")
    sub = stripe_client.v1.subscriptions.create(
        {"customer": customer.id, "items": [{"price": price.id}]}
    )
    page = f"/admin/apps/{owner.app_id}/fields"
    loaded = olga.client.get(page, params={"subscription": sub.id})
    assert loaded.status_code == 200
    assert '<option value="subscription.plan.amount"' in loaded.text
    assert "subscription.plan.amount = 1999" in loaded.text
    preview = _post(
        olga,
        page,
        f"{page}/preview",
        subscription=sub.id,
        field="price",
        source="subscription.plan.amount",
        type="money",
    )
    assert preview.status_code == 200
    converted = re.search(r'class="preview".*?</p>', preview.text, re.S).group(0)
    assert "19.99" in converted and "usd" in converted
    failing = _post(
        olga,
        page,
        f"{page}/preview",
        subscription=sub.id,
        field="x",
        source="subscription.customer.email",
        type="integer",
    )
    assert "does not convert to this type" in failing.text
    saved = _post(
        olga,
        page,
        page,
        subscription=sub.id,
        field="plan_amount",
        source="subscription.plan.amount",
        type="decimal",
    )
    assert saved.status_code == 303
    row = re.search(
        r"<tr><td><code>plan_amount</code>.*?</tr>",
        olga.client.get(saved.headers["location"]).text,
        re.S,
    ).group(0)
    assert "subscription.plan.amount" in row and '<code class="sample">1999</code>' in row
    bad = _post(olga, page, page, subscription=sub.id, field="has space", source="x", type="text")
    assert bad.status_code == 400 and "field" in bad.text
    unknown = olga.client.get(page, params={"subscription": "sub_nope"})
    assert unknown.status_code == 200 and "no subscription" in unknown.text
    vera = signed_in("vera@example.com")
    assert "Map a field" not in vera.client.get(page).text
    refused = _post(
        vera, page, page, field="other", source="subscription.plan.amount", type="integer"
    )
    assert refused.status_code == 403
    gone = _post(vera, page, f"{page}/plan_amount/delete")
    assert gone.status_code == 403
    with session_factory() as db:
        app = apps_repository.get_app_by_public_id(db, owner.app_id)
        assert [m.field for m in enrichment_service.list_mappings(db, app.id)] == ["plan_amount"]
    assert _post(olga, page, f"{page}/plan_amount/delete").status_code == 303
    with session_factory() as db:
        assert enrichment_service.list_mappings(db, app.id) == []


def test_another_apps_settings_are_404(signed_in, add_user, owner, other):
    add_user("olga@example.com", owner.app_id)
    olga = signed_in("olga@example.com")
    token = olga.csrf(f"/admin/apps/{owner.app_id}/settings")
    for path in ("settings", "settings/stripe", "fields"):
        assert olga.client.get(f"/admin/apps/{other.app_id}/{path}").status_code == 404
    for path in ("settings", "settings/stripe/disconnect", "fields", "fields/x/delete"):
        post = olga.client.post(f"/admin/apps/{other.app_id}/{path}", data={"csrf": token})
        assert post.status_code == 404, path
