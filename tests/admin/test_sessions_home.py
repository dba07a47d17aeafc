"""The sessions list's filters and pages, one session's story, and Home's attention panels
and signing code, with sessions run through the real hosted page."""

from __future__ import annotations

import html
import os
import re
import shutil
import subprocess

from stayflow.admin import views
from tests.cancel_flow.helpers import apply_flows, configure, sign, start_session

JSON = {"Accept": "application/json"}


def _run(api, tenant, subscription_id: str, email: str, reason: str, accept: str | None) -> str:
    token = start_session(api, tenant, subscription_id=subscription_id, email=email)
    page = api.get(f"/c/{token}", headers=JSON).json()
    csrf = page["csrf_token"]
    chosen = api.post(
        f"/c/{token}/reason",
        json={"reason_id": reason, "comment": "too pricey for us", "csrf_token": csrf},
        headers=JSON,
    )
    assert chosen.status_code == 200, chosen.text
    if accept:
        done = api.post(
            f"/c/{token}/accept", json={"offer_id": accept, "csrf_token": csrf}, headers=JSON
        )
        assert done.status_code == 200, done.text
    return str(page["session_id"])


def test_filters_pages_and_the_story(browser_client, signed_in, add_user, owner, monkeypatch):
    api = browser_client()
    configure(api, owner)
    apply_flows(api, owner)
    saved = _run(api, owner, "sub_saved1", "ada@example.com", "too_expensive", "twenty_off")
    open_ = _run(api, owner, "sub_open2", "Bob@Example.com", "not_using", None)
    add_user("vera@example.com", owner.app_id, "viewer")
    vera = signed_in("vera@example.com")
    base = f"/admin/apps/{owner.app_id}/sessions"

    def listed(**params) -> set[str]:
        response = vera.client.get(base, params=params)
        assert response.status_code == 200, response.text
        return set(re.findall(r"/sessions/(cs_[A-Za-z0-9_]+)\"", response.text))

    assert listed() == {saved, open_}
    assert listed(reason="too_expensive") == {saved}
    assert listed(offer="twenty_off") == {saved}
    assert listed(experience="default") == {saved, open_}
    assert listed(experience="annual_flow") == set()
    assert listed(email="bob@example.COM") == {open_}
    assert listed(outcome="saved", reason="not_using") == set()
    assert listed(outcome="open") == {open_}

    # A page at a time: the next link carries the filters and continues after the last row.
    monkeypatch.setattr(views, "PAGE_SIZE", 1)
    first = vera.client.get(base, params={"experience": "default"}).text
    assert set(re.findall(r"/sessions/(cs_[A-Za-z0-9_]+)\"", first)) == {open_}
    more = html.unescape(re.search(r'href="([^"]+)" rel="next"', first).group(1))
    assert "experience=default" in more and f"after={open_}" in more
    second = vera.client.get(more).text
    assert set(re.findall(r"/sessions/(cs_[A-Za-z0-9_]+)\"", second)) == {saved}
    assert 'rel="next"' not in second and "Newest" in second

    story = vera.client.get(f"{base}/{saved}").text
    steps = re.findall(r"<h3>(.*?)</h3>", story)
    assert steps[0] == "The snippet opened a session for sub_saved1"
    assert "Chose a reason" in steps and "Offers shown" in steps
    assert "Accepted the offer twenty_off (discount)" in steps
    assert any(s.startswith("Event session.saved") for s in steps)
    assert "Comment: too pricey for us" in story
    assert "Signed by your server." in story and "Mapped fields" in story
    # The flow version shown is said once, as a link to that version.
    assert len(re.findall(r"[Vv]ersion \d", story)) == 1
    assert f"/admin/apps/{owner.app_id}/flow/history/" in story


def test_home_attention_and_signing_code(signed_in, add_user, owner, browser_client):
    add_user("ada@example.com", owner.app_id)
    ada = signed_in("ada@example.com")
    home = ada.client.get(f"/admin/apps/{owner.app_id}").text
    assert "Saves awaiting validation" in home and "None: every endpoint answers." in home
    for language in ("Python", "Node", "Ruby", "PHP"):
        assert '<label for="sign-' in home and f">{language}</label>" in home
    assert 'data-copy="snippet"' in home


def _code(language: str) -> str:
    return views.SIGNING_CODE[language]


def test_the_python_and_node_signing_code_make_the_hash_stayflow_checks():
    secret, subscription_id = "appsecret_test_123", "sub_K1Vhej7WAk7k7Z"
    scope = {"subscription_id": subscription_id}
    os.environ["STAYFLOW_APP_SECRET"] = secret
    try:
        exec(_code("Python"), scope)
    finally:
        del os.environ["STAYFLOW_APP_SECRET"]
    assert scope["auth_hash"] == sign(secret, subscription_id)
    node = shutil.which("node")
    if node is not None:  # Node 20 is on the CI machines; the Python check above always runs
        script = (
            f"const subscriptionId = {subscription_id!r};\n"
            + _code("Node")
            + "\nprocess.stdout.write(authHash);"
        )
        done = subprocess.run(
            [node, "-e", script],
            env={"STAYFLOW_APP_SECRET": secret, "PATH": os.environ["PATH"]},
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        )
        assert done.stdout == sign(secret, subscription_id)
    for language in ("Ruby", "PHP"):
        assert "STAYFLOW_APP_SECRET" in _code(language) and "sha256" in _code(language).lower()
