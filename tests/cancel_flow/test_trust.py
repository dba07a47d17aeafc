"""A subscriber cannot choose their own offers (issue 9, section 1).

The request body is the subscriber's: it can never set, shadow or extend the fields from
Stripe; the business vouches for fields by signing them; audiences that read unsigned
request fields are refused when saved unless the app opts in.
"""

from __future__ import annotations

import time

import pytest
import yaml
from click.testing import CliRunner

from stayflow.cancel_sessions import trust
from stayflow.cli.main import main
from tests.billing.helpers import connect
from tests.cancel_flow.helpers import configure, precancel_body, sign
from tests.conftest import TEST_SECRET_KEY

JSON = {"Accept": "application/json"}

VIP_FLOWS = """\
reasons:
  - {id: too_expensive, label: "It's too expensive", feedback: too_expensive}
offers:
  - {id: vip_ninety, type: discount, coupon: VIP90, headline: "VIP: 90% off"}
  - {id: pause_1m, type: pause, duration: 1, interval: month}
audiences:
  - id: vip
    rule:
      any:
        - {field: subscription.plan.amount, op: greater, value: 50000}
        - {field: subscription.metadata.tier, op: equals, value: vip}
experiences:
  - id: vip_flow
    audience: vip
    title: "VIP {{ subscription.plan.amount }}"
    offers: [vip_ninety]
  - id: default
    title: "Plan {{ subscription.plan.amount }} for {{ first_name | default('you') }}"
    offers: [pause_1m]
"""


def _page(api, token):
    response = api.get(f"/c/{token}", headers=JSON)
    assert response.status_code == 200, response.text
    return response.json()


def _record(api, tenant, session_id):
    response = api.get(f"/api/v1/cancel-sessions/{session_id}", headers=tenant.headers)
    assert response.status_code == 200, response.text
    return response.json()


@pytest.fixture
def vip_app(stripe_api, owner, sandbox, stripe_client, make_paying_customer, make_price):
    """An app on the sandbox with a VIP audience, and a $10/month subscription (not VIP)."""
    connect(stripe_api, owner, sandbox.secret_key)
    configure(stripe_api, owner)
    stripe_client.v1.coupons.create({"id": "VIP90", "percent_off": 90, "duration": "forever"})
    response = stripe_api.put(
        "/api/v1/flows", json=yaml.safe_load(VIP_FLOWS), headers=owner.headers
    )
    assert response.status_code == 200, response.text
    price = make_price(unit_amount=1000, interval="month", name="Basic")
    sub = stripe_client.v1.subscriptions.create(
        {"customer": make_paying_customer().id, "items": [{"price": price.id}]}
    )
    return owner, sub.id


@pytest.mark.parametrize(
    "extra",
    [
        {"subscription.plan.amount": 999999},
        {"subscription": {"plan": {"amount": 999999}, "metadata": {"tier": "vip"}}},
        {"subscription.metadata": {"tier": "vip"}, "subscription.plan": {"amount": 999999}},
        {"custom": {"x": 1}, "subscription": {"metadata": {"tier": "vip"}}},
    ],
    ids=["dotted", "nested", "dotted-prefix", "nested-beside-custom"],
)
def test_a_signed_request_cannot_add_stripe_fields_to_reach_a_vip_audience(
    stripe_api, vip_app, session_factory, extra
):
    tenant, sub_id = vip_app
    body = {**precancel_body(tenant, subscription_id=sub_id), **extra}
    response = stripe_api.post("/precancel", json=body)
    assert response.status_code == 200, response.text
    token = response.json()["url"].rsplit("/c/", 1)[1]
    page = _page(stripe_api, token)
    record = _record(stripe_api, tenant, page["session_id"])
    assert record["experience_id"] == "default"
    # Copy shows Stripe's amount, never the request's.
    assert page["copy"]["title"] == "Plan 1000 for you"
    answer = stripe_api.post(
        f"/c/{token}/reason",
        json={"reason_id": "too_expensive", "csrf_token": page["csrf_token"]},
        headers=JSON,
    )
    assert [o["id"] for o in answer.json()["page"]["offers"]] == ["pause_1m"]
    # The body is kept as sent (the business sees what was attempted), but only as request data.
    assert record["enriched_fields"]["subscription.plan.amount"] == 1000


def test_a_real_vip_subscription_still_gets_the_vip_offer(
    stripe_api, vip_app, stripe_client, make_paying_customer, make_price
):
    tenant, _ = vip_app
    big = make_price(unit_amount=90000, interval="month", name="Enterprise")
    sub = stripe_client.v1.subscriptions.create(
        {"customer": make_paying_customer().id, "items": [{"price": big.id}]}
    )
    body = precancel_body(tenant, subscription_id=sub.id)
    token = stripe_api.post("/precancel", json=body).json()["url"].rsplit("/c/", 1)[1]
    page = _page(stripe_api, token)
    assert page["copy"]["title"] == "VIP 90000"


# --- signed fields ------------------------------------------------------------------------


def _signed_body(tenant, fields, *, timestamp=None, subscription_id="sub_K1Vhej7WAk7k7Z"):
    token = trust.sign_fields(
        tenant.app_secret,
        subscription_id,
        fields,
        int(time.time()) if timestamp is None else timestamp,
    )
    return precancel_body(tenant, subscription_id=subscription_id, signed_fields=token)


SIGNED_FLOWS = """\
reasons: [{id: r, label: "Why?"}]
offers:
  - {id: big_account, type: trial_extension, days: 30}
  - {id: everyone, type: trial_extension, days: 7}
audiences:
  - {id: big, rule: {field: signed.account.seats, op: greater, value: 100}}
experiences:
  - {id: big_flow, audience: big, title: "Hi {{ account.company_name }}", offers: [big_account]}
  - {id: default, offers: [everyone]}
"""


def test_signed_fields_drive_audiences_and_win_over_request_values(client, owner):
    configure(client, owner)
    response = client.put("/api/v1/flows", json=yaml.safe_load(SIGNED_FLOWS), headers=owner.headers)
    assert response.status_code == 200 and response.json()["warnings"] == []
    body = _signed_body(owner, {"account": {"seats": 250, "company_name": "Acme Corp"}})
    body["account"] = {"seats": 1, "company_name": "<changed in the browser>"}
    answer = client.post("/precancel", json=body)
    assert answer.status_code == 200, answer.text
    page = _page(client, answer.json()["url"].rsplit("/c/", 1)[1])
    assert page["copy"]["title"] == "Hi Acme Corp"
    record = _record(client, owner, page["session_id"])
    assert record["experience_id"] == "big_flow" and record["signed"] is True
    assert record["signed_fields"] == {"account": {"seats": 250, "company_name": "Acme Corp"}}
    assert "signed_fields" not in record["request_fields"]
    # The same seats only in the unsigned body: no big account.
    plain = precancel_body(owner, account={"seats": 250})
    token = client.post("/precancel", json=plain).json()["url"].rsplit("/c/", 1)[1]
    assert _record(client, owner, _page(client, token)["session_id"])["experience_id"] == "default"


def test_dotted_signed_keys_are_nested_and_signed_fields_alone_authenticate(client, owner):
    configure(client, owner)
    body = _signed_body(owner, {"account.seats": 5, "custom.plan": "gold"})
    body.pop("auth_hash")
    answer = client.post("/precancel", json=body)
    assert answer.status_code == 200, answer.text
    page = _page(client, answer.json()["url"].rsplit("/c/", 1)[1])
    record = _record(client, owner, page["session_id"])
    assert record["signed"] is True
    assert record["signed_fields"] == {"account": {"seats": 5}, "custom": {"plan": "gold"}}


def _flip_last(token):
    """The same token with its signature's last hex digit changed."""
    return token[:-1] + ("1" if token[-1] == "0" else "0")


@pytest.mark.parametrize(
    "make_token",
    [
        lambda t, now: trust.sign_fields(t.app_secret, "sub_K1Vhej7WAk7k7Z", {}, now - 601),
        lambda t, now: trust.sign_fields(t.app_secret, "sub_K1Vhej7WAk7k7Z", {}, now + 3600),
        lambda t, now: trust.sign_fields(t.app_secret, "sub_other", {}, now),
        lambda t, now: trust.sign_fields("sfs_wrong", "sub_K1Vhej7WAk7k7Z", {}, now),
        lambda t, now: _flip_last(
            trust.sign_fields(t.app_secret, "sub_K1Vhej7WAk7k7Z", {"a": 1}, now)
        ),
        lambda t, now: trust.sign_fields(
            t.app_secret, "sub_K1Vhej7WAk7k7Z", {"subscription.plan.amount": 9}, now
        ),
        lambda t, now: "v1.not-base64!.abc",
        lambda t, now: "garbage",
    ],
    ids=[
        "expired",
        "future",
        "other-subscription",
        "other-secret",
        "tampered",
        "stripe-field",
        "malformed",
        "garbage",
    ],
)
def test_bad_signed_fields_are_refused(client, owner, make_token):
    configure(client, owner)
    body = precancel_body(owner, signed_fields=make_token(owner, int(time.time())))
    response = client.post("/precancel", json=body)
    assert response.status_code == 400, response.text
    assert response.json()["valid"] is False
    assert response.json()["error"]["type"] == "invalid_signature"


def test_a_tampered_payload_with_a_kept_signature_is_refused(client, owner):
    configure(client, owner)
    token = trust.sign_fields(
        owner.app_secret, "sub_K1Vhej7WAk7k7Z", {"seats": 1}, int(time.time())
    )
    forged = trust.sign_fields("x", "sub_K1Vhej7WAk7k7Z", {"seats": 999}, int(time.time()))
    payload = forged.split(".")[1]
    body = precancel_body(owner, signed_fields=f"v1.{payload}.{token.rsplit('.', 1)[1]}")
    assert client.post("/precancel", json=body).status_code == 400


def test_the_expiry_is_a_per_app_setting(client, owner):
    configure(client, owner, signed_fields_max_age_seconds=3600)
    now = int(time.time())
    body = precancel_body(
        owner,
        signed_fields=trust.sign_fields(owner.app_secret, "sub_K1Vhej7WAk7k7Z", {}, now - 1800),
    )
    assert client.post("/precancel", json=body).status_code == 200


@pytest.mark.parametrize(
    "shape",
    [str.upper, lambda h: f"  {h}  ", lambda h: f"\t{h.upper()}\n"],
    ids=["upper", "spaces", "tab-newline-upper"],
)
def test_auth_hash_in_upper_case_or_padded_is_accepted(client, owner, shape):
    configure(client, owner)
    body = precancel_body(owner)
    body["auth_hash"] = shape(sign(owner.app_secret, body["subscription_id"]))
    response = client.post("/precancel", json=body)
    assert response.status_code == 200, response.text


def test_auth_hash_without_its_leading_zeros_is_accepted(client, owner):
    """Java's BigInteger(1, digest).toString(16) drops leading zeros; it is the same digest."""
    configure(client, owner)
    sub_id = next(
        f"sub_{n}" for n in range(2000) if sign(owner.app_secret, f"sub_{n}").startswith("0")
    )
    body = precancel_body(owner, subscription_id=sub_id)
    body["auth_hash"] = body["auth_hash"].lstrip("0")
    assert len(body["auth_hash"]) < 64
    assert client.post("/precancel", json=body).status_code == 200
    body["auth_hash"] = body["auth_hash"][:-1] + ("1" if body["auth_hash"][-1] == "0" else "0")
    assert client.post("/precancel", json=body).status_code == 400


def test_a_signed_token_in_upper_case_hex_is_accepted(client, owner):
    configure(client, owner)
    token = trust.sign_fields(owner.app_secret, "sub_K1Vhej7WAk7k7Z", {}, int(time.time()))
    message, _, digest = token.rpartition(".")
    body = precancel_body(owner, signed_fields=f"{message}.{digest.upper()}")
    assert client.post("/precancel", json=body).status_code == 200


# --- saving flows that target unsigned fields ----------------------------------------------

UNSIGNED_FLOWS = """\
offers: [{id: o, type: trial_extension, days: 7}]
audiences:
  - {id: big, rule: {all: [{field: custom.seats, op: greater, value: 100}]}}
experiences:
  - {id: big_flow, audience: big, offers: [o]}
  - {id: default, offers: []}
"""


def test_saving_an_audience_on_an_unsigned_field_is_refused_unless_the_app_opts_in(client, owner):
    configure(client, owner)
    doc = yaml.safe_load(UNSIGNED_FLOWS)
    refused = client.put("/api/v1/flows", json=doc, headers=owner.headers)
    assert refused.status_code == 400, refused.text
    error = refused.json()["error"]
    assert error["type"] == "unsigned_targeting"
    assert "'custom.seats'" in error["message"] and "signed.custom.seats" in error["message"]
    on_email = {"rule": {"field": "email", "op": "contains", "value": "@bigco.com"}}
    one = client.put("/api/v1/flows/audiences/other", json=on_email, headers=owner.headers)
    assert one.status_code == 400
    assert client.get("/api/v1/flows", headers=owner.headers).json()["version"] == 0

    configure(client, owner, allow_unsigned_targeting=True)
    accepted = client.put("/api/v1/flows", json=doc, headers=owner.headers)
    assert accepted.status_code == 200, accepted.text
    [warning] = accepted.json()["warnings"]
    assert "'custom.seats'" in warning and "allow_unsigned_targeting" in warning


def test_mapped_fields_count_as_their_source(client, owner):
    configure(client, owner)
    mappings = [
        {"field": "seats", "source": "custom.seats", "type": "integer"},
        {"field": "price", "source": "subscription.plan.amount", "type": "integer"},
    ]
    assert (
        client.put(
            "/api/v1/field-mappings", json={"mappings": mappings}, headers=owner.headers
        ).status_code
        == 200
    )
    on_price = {"id": "a", "rule": {"field": "price", "op": "greater", "value": 1}}
    assert (
        client.put("/api/v1/flows/audiences/a", json=on_price, headers=owner.headers).status_code
        == 200
    )
    on_seats = {"id": "b", "rule": {"field": "seats", "op": "greater", "value": 1}}
    response = client.put("/api/v1/flows/audiences/b", json=on_seats, headers=owner.headers)
    assert response.status_code == 400 and "'seats'" in response.json()["error"]["message"]


def _cli(database_url, *args):
    env = {"STAYFLOW_DATABASE_URL": database_url, "STAYFLOW_SECRET_KEY": TEST_SECRET_KEY}
    return CliRunner().invoke(main, list(args), env=env, catch_exceptions=False)


def test_flows_apply_refuses_unsigned_targeting_and_warns_with_the_opt_in(
    client, owner, database_url, tmp_path
):
    source = tmp_path / "flows.yaml"
    source.write_text(UNSIGNED_FLOWS)
    refused = _cli(database_url, "flows", "apply", str(source), "--app", owner.app_id, "--yes")
    assert refused.exit_code == 1, refused.output
    assert "custom.seats" in refused.output and "allow_unsigned_targeting" in refused.output
    assert client.get("/api/v1/flows", headers=owner.headers).json()["version"] == 0
    # The opt-in can come with the file itself (its settings section).
    source.write_text(UNSIGNED_FLOWS + "settings: {allow_unsigned_targeting: true}\n")
    applied = _cli(database_url, "flows", "apply", str(source), "--app", owner.app_id, "--yes")
    assert applied.exit_code == 0, applied.output
    assert "warning: audience 'big' reads 'custom.seats'" in applied.output
    assert "applied: version 1" in applied.output
    assert client.get("/api/v1/cancel-flow/settings", headers=owner.headers).json()[
        "allow_unsigned_targeting"
    ]


def test_rules_saved_before_the_check_see_no_unsigned_field_without_the_opt_in(
    client, owner, session_factory
):
    """A stored document that targets a request field (saved before this check) no longer
    matches on the subscriber's word; with the opt-in it does."""
    from sqlalchemy import select

    from stayflow.apps.models import App
    from stayflow.db import transaction
    from stayflow.flows.models import FlowConfig

    configure(client, owner)
    with transaction(session_factory) as db:
        app = db.scalar(select(App).where(App.app_id == owner.app_id))
        doc = yaml.safe_load(UNSIGNED_FLOWS)
        db.add(FlowConfig(app_pk=app.id, document=doc, version=1))
    body = precancel_body(owner, custom={"seats": 500})
    token = client.post("/precancel", json=body).json()["url"].rsplit("/c/", 1)[1]
    assert _record(client, owner, _page(client, token)["session_id"])["experience_id"] == "default"
    configure(client, owner, allow_unsigned_targeting=True)
    token = client.post("/precancel", json=body).json()["url"].rsplit("/c/", 1)[1]
    assert _record(client, owner, _page(client, token)["session_id"])["experience_id"] == "big_flow"


# --- the views, directly --------------------------------------------------------------------


def test_request_fields_never_shadow_or_extend_enriched_ones():
    enriched = {
        "subscription.plan.amount": 1000,
        "plan_value": 10,
        "enrichment.missing_fields": ["seats_from_stripe"],
    }
    request = {
        "subscription.plan.amount": 5,
        "subscription": {"plan": {"amount": 5}, "x": 1},
        "customer": {"email": "x"},
        "plan_value": 99,
        "seats_from_stripe": 99,
        "enrichment.source": "live",
        "signed": {"tier": "vip"},
        "email": "a@example.com",
        "custom": {"seats": 3},
    }
    fields = trust.rule_fields(request, enriched, {"tier": "gold"}, allow_unsigned=True)
    assert fields["subscription.plan.amount"] == 1000 and "subscription" not in fields
    assert "customer" not in fields and fields["plan_value"] == 10
    assert "seats_from_stripe" not in fields and fields["signed"] == {"tier": "gold"}
    assert fields["email"] == "a@example.com" and fields["custom"] == {"seats": 3}
    assert fields["request"]["custom"] == {"seats": 3} and "subscription" not in fields["request"]
    closed = trust.rule_fields(request, enriched, {}, allow_unsigned=False)
    assert "email" not in closed and "custom" not in closed
    before = repr(request)
    context = trust.copy_context(request, enriched, {"custom": {"plan": "gold"}})
    assert repr(request) == before  # the session's stored fields are not changed
    assert context["subscription"] == {"plan": {"amount": 1000}}
    assert context["custom"] == {"seats": 3, "plan": "gold"} and context["plan_value"] == 10
    assert context["request"]["custom"] == {"seats": 3}  # the unsigned value, as sent
