"""Pages and their checks: app membership (404 elsewhere), roles (403), home, sessions."""

from __future__ import annotations

from sqlalchemy import select

from stayflow.admin.models import Membership
from stayflow.apps import repository as apps_repository
from stayflow.db import transaction
from stayflow.events.service import emit_event
from tests.cancel_flow.helpers import ORIGIN, configure, precancel_body

XSS = '<script>alert("x")</script>'


def _precancel(client, tenant, subscription_id: str, **extra) -> str:
    configure(client, tenant)
    body = precancel_body(tenant, subscription_id, **extra)
    response = client.post("/precancel", json=body, headers={"Origin": ORIGIN})
    assert response.status_code == 200, response.text
    return str(response.json()["session_id"])


def test_a_user_of_one_app_gets_404_for_another_apps_pages_and_sessions(
    browser_client, signed_in, add_user, owner, other
):
    api = browser_client()
    theirs = _precancel(api, other, "sub_theirs")
    mine = _precancel(api, owner, "sub_mine")
    add_user("ada@example.com", owner.app_id)
    ada = signed_in("ada@example.com")
    for path in (
        f"/admin/apps/{other.app_id}",
        f"/admin/apps/{other.app_id}/sessions",
        f"/admin/apps/{other.app_id}/sessions/{theirs}",
        f"/admin/apps/{other.app_id}/members",
        f"/admin/apps/{owner.app_id}/sessions/{theirs}",
        "/admin/apps/app_does_not_exist",
        f"/admin/switch?app={other.app_id}",
    ):
        response = ada.client.get(path)
        assert response.status_code == 404, path
        assert "sub_theirs" not in response.text
        assert response.headers["content-type"].startswith("text/html")
    assert ada.client.get(f"/admin/apps/{owner.app_id}/sessions/{mine}").status_code == 200
    token = ada.csrf(f"/admin/apps/{owner.app_id}")
    refused = ada.client.post(
        f"/admin/apps/{other.app_id}/members/remove",
        data={"csrf": token, "email": "ada@example.com"},
    )
    assert refused.status_code == 404


def test_signed_out_visitors_are_sent_to_sign_in(browser_client, owner):
    client = browser_client()
    for path in ("/admin", f"/admin/apps/{owner.app_id}", f"/admin/apps/{owner.app_id}/sessions"):
        response = client.get(path)
        assert response.status_code == 303
        assert response.headers["location"].startswith("/admin/login?next=")
    post = client.post(f"/admin/apps/{owner.app_id}/members/remove", data={"email": "x@y.z"})
    assert post.status_code == 303


def test_viewer_and_editor_are_refused_owner_actions_by_the_server(
    signed_in, add_user, owner, session_factory
):
    add_user("olga@example.com", owner.app_id, "owner")
    add_user("eddy@example.com", owner.app_id, "editor")
    add_user("vera@example.com", owner.app_id, "viewer")
    members = f"/admin/apps/{owner.app_id}/members"
    remove = f"{members}/remove"
    for email in ("vera@example.com", "eddy@example.com"):
        user = signed_in(email)
        page = user.client.get(members)
        assert page.status_code == 200 and "Remove" not in page.text  # no button shown...
        response = user.client.post(  # ...and the server refuses the request anyway
            remove, data={"csrf": user.csrf(members), "email": "olga@example.com"}
        )
        assert response.status_code == 403, email
        assert "cannot do this" in response.text
    with session_factory() as db:
        assert len(db.scalars(select(Membership)).all()) == 3
    olga = signed_in("olga@example.com")
    forged = olga.client.post(remove, data={"csrf": "forged", "email": "vera@example.com"})
    assert forged.status_code == 403
    done = olga.client.post(remove, data={"csrf": olga.csrf(members), "email": "vera@example.com"})
    assert done.status_code == 303
    last = olga.client.post(remove, data={"csrf": olga.csrf(members), "email": "olga@example.com"})
    assert last.status_code == 403 and "last owner" in last.text
    with session_factory() as db:
        assert len(db.scalars(select(Membership)).all()) == 2


def test_home_shows_stripe_state_outcomes_and_the_snippet(signed_in, add_user, owner, other):
    add_user("ada@example.com", owner.app_id)
    add_user("ada@example.com", other.app_id, "viewer")
    ada = signed_in("ada@example.com")
    home = ada.client.get(f"/admin/apps/{owner.app_id}")
    assert home.status_code == 200
    text = home.text
    assert "Not connected." in text and "No Stripe key is connected" in text
    assert "Sessions this week" in text
    assert f"app_id: &#34;{owner.app_id}&#34;" in text  # the snippet, escaped in a textarea
    assert "/js/stayflow.js" in text
    # The switcher lists both apps and takes the user to the other one.
    assert f'value="{other.app_id}"' in text
    switched = ada.client.get(f"/admin/switch?app={other.app_id}")
    assert switched.headers["location"] == f"/admin/apps/{other.app_id}"
    assert home.headers["x-frame-options"] == "DENY"
    csp = home.headers["content-security-policy"]
    # Scripts only as the admin's own static files (no inline script), framed by nobody.
    assert "script-src 'self';" in csp and "unsafe-inline" not in csp
    assert "frame-ancestors 'none'" in csp


def test_sessions_list_filters_and_the_story(
    browser_client, signed_in, add_user, owner, session_factory
):
    api = browser_client()
    first = _precancel(api, owner, "sub_alpha", custom={"note": XSS})
    second = _precancel(api, owner, "sub_beta")
    with transaction(session_factory) as db:
        app_pk = apps_repository.get_app_by_public_id(db, owner.app_id).id
        emit_event(db, app_pk, "test.mine", {"session_id": first}, fan_out=False)
        emit_event(db, app_pk, "test.not_mine", {"session_id": second}, fan_out=False)
    add_user("ada@example.com", owner.app_id, "viewer")
    ada = signed_in("ada@example.com")
    base = f"/admin/apps/{owner.app_id}/sessions"
    everything = ada.client.get(base)
    assert "sub_alpha" in everything.text and "sub_beta" in everything.text
    only = ada.client.get(base, params={"subscription": "sub_alpha"})
    assert "sub_alpha" in only.text and "sub_beta" not in only.text
    open_ = ada.client.get(base, params={"outcome": "open"})
    assert "sub_alpha" in open_.text
    canceled = ada.client.get(base, params={"outcome": "canceled"})
    assert "sub_alpha" not in canceled.text and "No session matches." in canceled.text
    future = ada.client.get(base, params={"from": "2999-01-01"})
    assert "No session matches." in future.text
    nobody = ada.client.get(base, params={"customer": "cus_nobody"})
    assert "No session matches." in nobody.text
    bad = ada.client.get(base, params={"from": "yesterday", "outcome": "exploded"})
    assert bad.status_code == 400
    assert "From: use a date like 2026-12-01." in bad.text and "Outcome: choose one of" in bad.text
    story = ada.client.get(f"{base}/{first}")
    assert story.status_code == 200
    assert "sub_alpha" in story.text and "What the snippet sent" in story.text
    assert XSS not in story.text and "&lt;script&gt;" in story.text
    assert "test.mine" in story.text and "test.not_mine" not in story.text
    assert ada.client.get(f"{base}/cs_does_not_exist").status_code == 404
