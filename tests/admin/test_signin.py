"""Sign-in, cookies, CSRF, throttling, expiry and signing out (on both databases)."""

from __future__ import annotations

from stayflow.admin import service
from stayflow.admin.web import secure_cookies
from stayflow.settings import Settings
from tests.admin.conftest import PASSWORD, sign_in


def _cookie_header(response, name: str) -> str:
    for value in response.headers.get_list("set-cookie"):
        if value.startswith(name + "="):
            return value
    raise AssertionError(f"no {name} cookie in {response.headers.get_list('set-cookie')}")


def test_sign_in_sets_a_hardened_session_cookie_and_stores_only_its_hash(
    browser_client, add_user, owner, session_factory
):
    add_user("ada@example.com", owner.app_id)
    client = browser_client()
    response = sign_in(client, "Ada@Example.com ")
    assert response.status_code == 303
    assert response.headers["location"] == "/admin"
    cookie = _cookie_header(response, "stayflow_admin")
    lowered = cookie.lower()
    assert "httponly" in lowered and "samesite=lax" in lowered and "path=/admin" in lowered
    assert "secure" not in lowered  # base URL is http://127.0.0.1 in tests
    token = cookie.split(";", 1)[0].split("=", 1)[1]
    from sqlalchemy import select

    from stayflow.admin.models import AdminSession, User

    with session_factory() as db:
        stored = db.scalars(select(AdminSession.token_hash)).all()
        assert stored == [service.hash_token(token)]
        user = db.scalar(select(User))
        assert user.password_hash.startswith("$argon2id$") and PASSWORD not in user.password_hash
    home = client.get("/admin", follow_redirects=True)
    assert home.status_code == 200 and "ada@example.com" in home.text


def test_cookies_are_secure_outside_localhost():
    assert secure_cookies(Settings(base_url="https://stay.example.com"))
    assert secure_cookies(Settings(base_url="http://stay.example.com"))
    assert not secure_cookies(Settings(base_url="http://localhost:8000"))
    assert not secure_cookies(Settings(base_url="http://127.0.0.1:8000"))


def test_wrong_password_and_unknown_email_get_the_same_clear_answer(
    browser_client, add_user, owner
):
    add_user("ada@example.com", owner.app_id)
    client = browser_client()
    wrong = sign_in(client, "ada@example.com", "not-the-password")
    unknown = sign_in(client, "nobody@example.com", "not-the-password")
    for response in (wrong, unknown):
        assert response.status_code == 401
        assert "The email or the password is wrong." in response.text
        assert "stayflow_admin=" not in response.headers.get("set-cookie", "")
    empty = sign_in(client, "", "")
    assert empty.status_code == 400 and "Enter your email and your password." in empty.text


def test_account_is_throttled_after_repeated_failures_then_unlocks(
    browser_client, add_user, owner, clock
):
    add_user("ada@example.com", owner.app_id)
    client = browser_client()
    for _ in range(service.ACCOUNT_MAX_FAILURES):
        assert sign_in(client, "ada@example.com", "wrong-password-x").status_code == 401
    locked = sign_in(client, "ada@example.com")  # the right password, still refused
    assert locked.status_code == 429
    assert "Too many failed sign-ins for this account. Try again in 15 minutes." in locked.text
    clock.advance(minutes=14)
    assert sign_in(client, "ada@example.com").status_code == 429
    clock.advance(minutes=1, seconds=1)
    assert sign_in(client, "ada@example.com").status_code == 303


def test_success_resets_the_account_count(browser_client, add_user, owner):
    add_user("ada@example.com", owner.app_id)
    client = browser_client()
    for _ in range(service.ACCOUNT_MAX_FAILURES - 1):
        sign_in(client, "ada@example.com", "wrong-password-x")
    assert sign_in(client, "ada@example.com").status_code == 303
    other = browser_client()
    for _ in range(service.ACCOUNT_MAX_FAILURES - 1):
        sign_in(other, "ada@example.com", "wrong-password-x")
    assert sign_in(other, "ada@example.com").status_code == 303


def test_address_is_throttled_across_accounts(browser_client, add_user, owner):
    add_user("ada@example.com", owner.app_id)
    client = browser_client()
    for i in range(service.ADDRESS_MAX_FAILURES):
        assert sign_in(client, f"guess{i}@example.com", "wrong-password-x").status_code == 401
    locked = sign_in(client, "ada@example.com")
    assert locked.status_code == 429
    assert "Too many failed sign-ins for your address." in locked.text


def test_sign_in_without_the_forms_csrf_token_is_refused(browser_client, add_user, owner):
    add_user("ada@example.com", owner.app_id)
    client = browser_client()
    client.get("/admin/login")
    for token in ("", "forged"):
        response = client.post(
            "/admin/login",
            data={"email": "ada@example.com", "password": PASSWORD, "csrf": token},
        )
        assert response.status_code == 403
        assert "did not come from this site" in response.text
        assert "stayflow_admin=" not in response.headers.get("set-cookie", "")


def test_sign_out_needs_csrf_and_ends_the_session(signed_in, add_user, owner):
    add_user("ada@example.com", owner.app_id)
    ada = signed_in("ada@example.com")
    refused = ada.client.post("/admin/logout", data={"csrf": "forged"})
    assert refused.status_code == 403
    assert ada.client.get("/admin").status_code == 303  # still signed in: goes to the app
    assert ada.client.get("/admin").headers["location"].startswith("/admin/apps/")
    token = ada.csrf(f"/admin/apps/{owner.app_id}")
    out = ada.client.post("/admin/logout", data={"csrf": token})
    assert out.status_code == 303 and out.headers["location"].startswith("/admin/login")
    # The old cookie (replayed) no longer works either.
    ada.client.cookies.clear()
    again = ada.client.get(f"/admin/apps/{owner.app_id}")
    assert again.status_code == 303 and again.headers["location"].startswith("/admin/login")


def test_sign_out_everywhere_ends_every_session_of_the_user(signed_in, add_user, owner):
    add_user("ada@example.com", owner.app_id)
    add_user("bob@example.com", owner.app_id, "viewer")
    laptop, phone, bob = (signed_in(e) for e in ("ada@example.com",) * 2 + ("bob@example.com",))
    home = f"/admin/apps/{owner.app_id}"
    out = phone.client.post("/admin/logout", data={"csrf": phone.csrf(home), "everywhere": "1"})
    assert out.status_code == 303
    assert laptop.client.get(home).status_code == 303
    assert bob.client.get(home).status_code == 200


def test_sessions_expire(signed_in, add_user, owner, clock):
    add_user("ada@example.com", owner.app_id)
    ada = signed_in("ada@example.com")
    home = f"/admin/apps/{owner.app_id}"
    assert ada.client.get(home).status_code == 200
    clock.advance(hours=12, seconds=1)
    expired = ada.client.get(home)
    assert expired.status_code == 303
    assert expired.headers["location"] == "/admin/login?next=" + home


def test_next_never_leaves_the_admin(browser_client, add_user, owner):
    add_user("ada@example.com", owner.app_id)
    client = browser_client()
    response = sign_in(client, "ada@example.com", next="https://evil.example/")
    assert response.headers["location"] == "/admin"


def test_failures_outside_the_window_do_not_add_up_and_old_counts_are_forgotten(
    browser_client, add_user, owner, clock, session_factory
):
    from sqlalchemy import select

    from stayflow.admin.models import LoginThrottle

    add_user("ada@example.com", owner.app_id)
    client = browser_client()
    for _ in range(service.ACCOUNT_MAX_FAILURES - 1):
        sign_in(client, "ada@example.com", "wrong-password-x")
    clock.advance(minutes=16)
    for _ in range(service.ACCOUNT_MAX_FAILURES - 1):
        assert sign_in(client, "ada@example.com", "wrong-password-x").status_code == 401
    assert sign_in(client, "ada@example.com").status_code == 303
    with session_factory() as db:
        assert len(db.scalars(select(LoginThrottle)).all()) == 1  # the address's count
    clock.advance(minutes=31)
    assert sign_in(browser_client(), "ada@example.com").status_code == 303
    with session_factory() as db:
        assert db.scalars(select(LoginThrottle)).all() == []
