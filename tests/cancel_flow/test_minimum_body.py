"""The minimum precancel body (issue 10, section 1): app_id + subscription_id (+ auth_hash).

Where the flow ends: the request's URLs, else the app's defaults (settings API or the flows
file), else stayflow's own result page (the finished page of /c/<token>).
"""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from stayflow.cli.main import main
from tests.cancel_flow.helpers import GOODBYE_URL, SAVE_URL, apply_flows, configure, sign
from tests.conftest import TEST_SECRET_KEY

JSON = {"Accept": "application/json"}
APP_SAVE = "https://app.example.com/welcome-back"
APP_GOODBYE = "https://app.example.com/sorry"


def minimum(tenant, subscription_id="sub_min1", **extra):
    return {
        "app_id": tenant.app_id,
        "subscription_id": subscription_id,
        "auth_hash": sign(tenant.app_secret, subscription_id),
        **extra,
    }


def _start(client, body):
    response = client.post("/precancel", json=body)
    assert response.status_code == 200, response.text
    return response.json()["url"].rsplit("/c/", 1)[1]


def _cancel(client, token, accept=JSON):
    page = client.get(f"/c/{token}", headers=JSON).json()
    return client.post(
        f"/c/{token}/cancel",
        json={"reason_id": "too_expensive", "csrf_token": page["csrf_token"]},
        headers=accept,
        follow_redirects=False,
    )


def _accept(client, token, offer_id="twenty_off"):
    page = client.get(f"/c/{token}", headers=JSON).json()
    client.post(
        f"/c/{token}/reason",
        json={"reason_id": "too_expensive", "csrf_token": page["csrf_token"]},
        headers=JSON,
    )
    return client.post(
        f"/c/{token}/accept",
        data={"offer_id": offer_id, "csrf_token": page["csrf_token"]},
        follow_redirects=False,
    )


def test_the_minimum_body_opens_a_session_that_ends_on_stayflows_result_page(client, owner):
    configure(client, owner)
    apply_flows(client, owner)
    token = _start(client, minimum(owner))
    record = client.get(
        "/api/v1/cancel-sessions",
        headers=owner.headers,
    ).json()["data"][0]
    assert record["save_return_url"] is None and record["cancel_confirmation_url"] is None
    done = _cancel(client, token)
    assert done.status_code == 200, done.text
    assert done.json()["redirect_url"] == f"http://127.0.0.1:8000/c/{token}"
    # The browser form goes to the session's finished page: stayflow's result page, which
    # says what happened (no Stripe here, so the offer is recorded on the account).
    html_token = _start(client, minimum(owner, subscription_id="sub_min2"))
    form = _accept(client, html_token)
    assert form.status_code == 303 and form.headers["location"] == f"/c/{html_token}"
    finished = client.get(form.headers["location"])
    assert finished.status_code == 200 and 'id="result-message"' in finished.text
    assert "Your offer is saved on your account." in finished.text
    assert 'href="None"' not in finished.text and "Continue" not in finished.text


def test_app_defaults_apply_and_the_requests_urls_override_them(client, owner):
    configure(client, owner, save_return_url=APP_SAVE, cancel_confirmation_url=APP_GOODBYE)
    apply_flows(client, owner)
    token = _start(client, minimum(owner))
    assert _cancel(client, token).json()["redirect_url"] == APP_GOODBYE
    assert _accept(client, _start(client, minimum(owner))).headers["location"] == APP_SAVE
    own = minimum(owner, save_return_url=SAVE_URL, cancel_confirmation_url=GOODBYE_URL)
    assert _cancel(client, _start(client, own)).json()["redirect_url"] == GOODBYE_URL
    assert _accept(client, _start(client, own)).headers["location"] == SAVE_URL
    # The app's default is the business's own, so it is not held to allowed_redirect_domains;
    # a request's URL still is.
    evil = minimum(owner, save_return_url="https://evil.example/x")
    assert client.post("/precancel", json=evil).json()["error"]["type"] == "redirect_not_allowed"


@pytest.mark.parametrize(
    "value", ["javascript:alert(1)", "/relative", "http://app.example.com/x", "nope"]
)
def test_default_urls_must_be_absolute_https(client, owner, value):
    response = client.patch(
        "/api/v1/cancel-flow/settings", json={"save_return_url": value}, headers=owner.headers
    )
    assert response.status_code == 400, response.text
    assert "save_return_url" in response.json()["error"]["message"]


def test_a_default_can_be_cleared_with_an_empty_string(client, owner):
    configure(client, owner, save_return_url=APP_SAVE)
    cleared = configure(client, owner, save_return_url="")
    assert cleared["save_return_url"] is None


def test_the_flows_file_carries_the_default_urls(client, owner, database_url, tmp_path):
    source = tmp_path / "flows.yaml"
    source.write_text(
        "reasons: [{id: too_expensive, label: Too expensive}]\n"
        "settings:\n"
        "  allowed_origins: [https://app.example.com]\n"
        f"  save_return_url: {APP_SAVE}\n"
        f"  cancel_confirmation_url: {APP_GOODBYE}\n"
    )
    env = {"STAYFLOW_DATABASE_URL": database_url, "STAYFLOW_SECRET_KEY": TEST_SECRET_KEY}
    runner = CliRunner()
    args = ["flows", "apply", str(source), "--app", owner.app_id, "--yes"]
    applied = runner.invoke(main, args, env=env, catch_exceptions=False)
    assert applied.exit_code == 0, applied.output
    settings = client.get("/api/v1/cancel-flow/settings", headers=owner.headers).json()
    assert settings["save_return_url"] == APP_SAVE
    assert settings["cancel_confirmation_url"] == APP_GOODBYE
    token = _start(client, minimum(owner))
    assert _cancel(client, token).json()["redirect_url"] == APP_GOODBYE
    exported = runner.invoke(
        main, ["flows", "export", "-", "--app", owner.app_id], env=env, catch_exceptions=False
    )
    assert exported.exit_code == 0 and f"save_return_url: {APP_SAVE}" in exported.output
    bad = tmp_path / "bad.yaml"
    bad.write_text("settings: {save_return_url: 'javascript:alert(1)'}\n")
    refused = runner.invoke(
        main, ["flows", "apply", str(bad), "--app", owner.app_id, "--yes"], env=env
    )
    assert refused.exit_code == 1 and "settings.save_return_url" in refused.output
