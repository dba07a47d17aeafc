"""Pass-thru URLs through the hosted page, their tokens checked by the code in
docs/webhooks.md: the Python snippet and the JavaScript one run by Node.js, neither of
which uses stayflow's code."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from tests.cancel_flow.helpers import FLOWS_YAML, apply_flows, configure, start_session

DOC = Path(__file__).resolve().parents[2] / "docs" / "webhooks.md"
JSON_HEADERS = {"Accept": "application/json"}
SAVED_URL = "https://billing.example.com/stayflow/saved?src=sf"
CANCEL_URL = "https://billing.example.com/stayflow/cancel"


def _snippet(language: str) -> str:
    doc = DOC.read_text()
    section = doc[doc.index("## Pass-thru URLs") :]
    found = re.search(rf"```{language}\n(.*?)```", section, re.S)
    assert found is not None
    return found.group(1)


def python_verify(token, secret, now=None):
    namespace: dict = {}
    exec(_snippet("python"), namespace)
    return namespace["verify_stayflow_token"](token, secret, now)


def js_verify(tmp_path, token, secret, now=None):
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed")
    script = tmp_path / "verify.js"
    script.write_text(
        _snippet("js")
        + "\nconst [token, secret, now] = process.argv.slice(2);\n"
        + "try { console.log(JSON.stringify(verifyStayflowToken(token, secret, "
        + "now ? Number(now) : undefined))); }\n"
        + "catch (e) { console.log(JSON.stringify({error: e.message})); }\n"
    )
    args = [node, str(script), token, secret] + ([str(now)] if now is not None else [])
    done = subprocess.run(args, capture_output=True, text=True, timeout=30, check=True)
    return json.loads(done.stdout)


@pytest.fixture
def flow(client, owner):
    configure(client, owner, cancel_pass_thru_url=CANCEL_URL, pass_thru_expiry_minutes=10)
    doc = FLOWS_YAML.replace(
        "    coupon: SAVE20\n", f"    coupon: SAVE20\n    pass_thru_url: '{SAVED_URL}'\n"
    )
    apply_flows(client, owner, doc)
    return owner


def act(client, token, action, body):
    page = client.get(f"/c/{token}", headers=JSON_HEADERS).json()
    response = client.post(
        f"/c/{token}/{action}",
        json={**body, "csrf_token": page["csrf_token"]},
        headers=JSON_HEADERS,
    )
    assert response.status_code == 200, response.text
    return response.json()


def token_of(url, base):
    assert url.startswith(base.split("?")[0])
    query = parse_qs(urlsplit(url).query)
    if "?" in base:
        assert query["src"] == ["sf"]  # the business's own query survives
    (token,) = query["stayflow_token"]
    return token


def test_an_accepted_offer_passes_thru_with_a_token_both_snippets_verify(client, flow, tmp_path):
    token = start_session(client, flow, subscription_id="sub_pass1")
    act(client, token, "reason", {"reason_id": "too_expensive"})
    answer = act(client, token, "accept", {"offer_id": "twenty_off"})
    signed = token_of(answer["redirect_url"], SAVED_URL)
    for payload in (
        python_verify(signed, flow.app_secret),
        js_verify(tmp_path, signed, flow.app_secret),
    ):
        assert payload["outcome"] == "saved"
        assert payload["offer_id"] == "twenty_off"
        assert payload["subscription_id"] == "sub_pass1"
        assert payload["session_id"].startswith("cs_")
        assert payload["expires"] - payload["timestamp"] == 600
        assert abs(payload["timestamp"] - time.time()) < 300
    later = python_verify(signed, flow.app_secret)["expires"]
    with pytest.raises(ValueError, match="expired"):
        python_verify(signed, flow.app_secret, now=later)
    assert js_verify(tmp_path, signed, flow.app_secret, now=later) == {"error": "expired"}
    with pytest.raises(ValueError, match="bad signature"):
        python_verify(signed, "sfs_someone-else")
    assert js_verify(tmp_path, signed, "sfs_someone-else") == {"error": "bad signature"}
    forged = signed[:-1] + ("0" if signed[-1] != "0" else "1")
    assert js_verify(tmp_path, forged, flow.app_secret) == {"error": "bad signature"}


def test_a_cancel_passes_thru_and_a_deflect_does_not(client, flow, tmp_path):
    token = start_session(client, flow, subscription_id="sub_pass2")
    answer = act(client, token, "cancel", {"reason_id": "not_using"})
    payload = js_verify(tmp_path, token_of(answer["redirect_url"], CANCEL_URL), flow.app_secret)
    assert payload["outcome"] == "canceled"
    assert payload["offer_id"] is None
    assert payload["subscription_id"] == "sub_pass2"
    other = start_session(client, flow, subscription_id="sub_pass3")
    answer = act(client, other, "deflect", {})
    assert "stayflow_token" not in answer["redirect_url"]


def test_without_pass_thru_urls_nothing_changes(client, owner):
    configure(client, owner)
    apply_flows(client, owner)
    token = start_session(client, owner)
    answer = act(client, token, "cancel", {"reason_id": "not_using"})
    assert "stayflow_token" not in answer["redirect_url"]


def test_a_pass_thru_url_must_be_https(client, owner):
    response = client.patch(
        "/api/v1/cancel-flow/settings",
        json={"cancel_pass_thru_url": "http://billing.example.com/x"},
        headers=owner.headers,
    )
    assert response.status_code == 400
    assert "https" in response.json()["error"]["message"]
