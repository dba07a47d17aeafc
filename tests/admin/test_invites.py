"""Invitations: an owner makes a one-time link; it sets a password once, then answers 410."""

from __future__ import annotations

import re

from sqlalchemy import select

from stayflow.admin.models import Invite, Membership
from tests.admin.conftest import PASSWORD, csrf_of, sign_in

NEW_PASSWORD = "a-brand-new-passphrase"


def _invite(owner_client, app_id: str, email: str, role: str = "editor"):
    members = f"/admin/apps/{app_id}/members"
    token = csrf_of(owner_client.get(members).text)
    return owner_client.post(
        f"/admin/apps/{app_id}/invites", data={"csrf": token, "email": email, "role": role}
    )


def _link(html: str) -> str:
    found = re.search(r'id="invite-link" readonly value="http://[^/]+(/admin/invite/[^"]+)"', html)
    assert found, html
    return found.group(1)


def _accept(client, path: str, password: str, again: str | None = None):
    form = client.get(path)
    assert form.status_code == 200, form.text
    data = {"csrf": csrf_of(form.text), "password": password}
    data["password_again"] = password if again is None else again
    return client.post(path, data=data)


def test_owner_invites_and_the_link_works_once(
    signed_in, browser_client, add_user, owner, session_factory, clock
):
    add_user("olga@example.com", owner.app_id)
    olga = signed_in("olga@example.com")
    made = _invite(olga.client, owner.app_id, "Nina@Example.com", "editor")
    assert made.status_code == 200
    path = _link(made.text)
    assert "shown only now" in made.text and "nina@example.com" in made.text
    token = path.rsplit("/", 1)[1]
    with session_factory() as db:
        invite = db.scalars(select(Invite)).one()
        assert invite.token_hash != token and token not in invite.token_hash  # hashed
        assert invite.role == "editor" and invite.email == "nina@example.com"
    # The members page lists it as pending, without the link.
    again = olga.client.get(f"/admin/apps/{owner.app_id}/members")
    assert "nina@example.com" in again.text and token not in again.text

    nina = browser_client()
    page = nina.get(path)
    assert "Join" in page.text and "editor" in page.text
    mismatch = _accept(nina, path, NEW_PASSWORD, "something-else-entirely")
    assert mismatch.status_code == 400 and "The two passwords differ" in mismatch.text
    short = _accept(nina, path, "short")
    assert short.status_code == 400 and "at least 12 characters" in short.text
    joined = _accept(nina, path, NEW_PASSWORD)
    assert joined.status_code == 303
    assert joined.headers["location"] == f"/admin/apps/{owner.app_id}"
    assert nina.get(f"/admin/apps/{owner.app_id}").status_code == 200  # signed in
    # Used: the link answers 410 with a page, whoever opens it.
    used = browser_client().get(path)
    assert used.status_code == 410 and "already used" in used.text
    assert used.headers["content-type"].startswith("text/html")
    assert _accept_after_use(browser_client(), path) == 410
    # The new password signs in; the role is the invited one.
    assert sign_in(browser_client(), "nina@example.com", NEW_PASSWORD).status_code == 303
    with session_factory() as db:
        roles = sorted(m.role for m in db.scalars(select(Membership)))
        assert roles == ["editor", "owner"]


def _accept_after_use(client, path: str) -> int:
    login = client.get("/admin/login")
    return client.post(
        path,
        data={
            "csrf": csrf_of(login.text),
            "password": NEW_PASSWORD,
            "password_again": NEW_PASSWORD,
        },
    ).status_code


def test_expired_revoked_and_unknown_links(signed_in, browser_client, add_user, owner, clock):
    add_user("olga@example.com", owner.app_id)
    olga = signed_in("olga@example.com")
    expiring = _link(_invite(olga.client, owner.app_id, "late@example.com").text)
    revoked = _link(_invite(olga.client, owner.app_id, "gone@example.com").text)
    members = olga.client.get(f"/admin/apps/{owner.app_id}/members").text
    invite_id = re.search(
        r'invites/(\d+)/revoke"[^>]*>\s*<input type="hidden" name="csrf" value="[^"]+">\s*'
        r"<button[^>]*gone@example.com",
        members,
    ).group(1)
    done = olga.client.post(
        f"/admin/apps/{owner.app_id}/invites/{invite_id}/revoke", data={"csrf": csrf_of(members)}
    )
    assert done.status_code == 303
    visitor = browser_client()
    assert visitor.get(revoked).status_code == 410
    assert "withdrawn" in visitor.get(revoked).text
    clock.advance(days=7, seconds=1)
    expired = visitor.get(expiring)
    assert expired.status_code == 410 and "expired" in expired.text
    assert visitor.get("/admin/invite/not-a-real-token").status_code == 404
    assert visitor.get("/admin/invite/" + "x" * 5000).status_code == 404


def test_an_existing_user_joins_with_their_own_password(
    signed_in, browser_client, add_user, owner, other, session_factory
):
    add_user("olga@example.com", owner.app_id)
    add_user("ben@example.com", other.app_id, "owner")
    olga = signed_in("olga@example.com")
    path = _link(_invite(olga.client, owner.app_id, "ben@example.com", "viewer").text)
    ben = browser_client()
    assert "already have an account" in ben.get(path).text
    wrong = _accept(ben, path, "not-bens-password-at-all")
    assert wrong.status_code == 401 and "wrong" in wrong.text
    joined = _accept(ben, path, PASSWORD)
    assert joined.status_code == 303
    assert ben.get(f"/admin/apps/{owner.app_id}").status_code == 200
    assert ben.get(f"/admin/apps/{other.app_id}").status_code == 200
    # Password unchanged (the link never sets an existing user's password).
    assert sign_in(browser_client(), "ben@example.com", PASSWORD).status_code == 303


def test_only_owners_invite_and_bad_input_is_a_message(
    signed_in, add_user, owner, other, session_factory
):
    add_user("olga@example.com", owner.app_id)
    add_user("eddy@example.com", owner.app_id, "editor")
    add_user("vera@example.com", owner.app_id, "viewer")
    for email in ("eddy@example.com", "vera@example.com"):
        user = signed_in(email)
        page = user.client.get(f"/admin/apps/{owner.app_id}/members")
        assert "Create invitation link" not in page.text
        refused = _invite(user.client, owner.app_id, "x@example.com")
        assert refused.status_code == 403
    olga = signed_in("olga@example.com")
    bad_email = _invite(olga.client, owner.app_id, "not an email")
    assert bad_email.status_code == 400 and "Enter an email address" in bad_email.text
    bad_role = _invite(olga.client, owner.app_id, "x@example.com", "admin")
    assert bad_role.status_code == 400 and "Choose a role" in bad_role.text
    member = _invite(olga.client, owner.app_id, "vera@example.com")
    assert member.status_code == 409 and "already a member" in member.text
    # Another app's invite form and revoke are 404s.
    token = olga.csrf(f"/admin/apps/{owner.app_id}/members")
    elsewhere = olga.client.post(
        f"/admin/apps/{other.app_id}/invites",
        data={"csrf": token, "email": "x@example.com", "role": "viewer"},
    )
    assert elsewhere.status_code == 404
    with session_factory() as db:
        assert db.scalars(select(Invite)).all() == []
