"""Users, memberships, sign-in with throttling, and browser sessions of the admin web app."""

from __future__ import annotations

import hashlib
import hmac
import logging
import math
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy.orm import Session

from stayflow.admin import repository
from stayflow.admin.i18n import LANGUAGES, N_, Message
from stayflow.admin.models import (
    ROLE_RANK,
    ROLES,
    AdminSession,
    LoginThrottle,
    Membership,
    User,
)
from stayflow.apps import repository as apps_repository
from stayflow.apps.models import App
from stayflow.db import insert_ignoring_conflicts
from stayflow.errors import BadRequest, Conflict, Forbidden, NotFound, StayflowError

log = logging.getLogger("stayflow.admin")

SESSION_LIFETIME = timedelta(hours=12)
MIN_PASSWORD_LENGTH = 12
# Sign-in throttling: this many failures within the window lock the key for LOCK_TIME.
ACCOUNT_MAX_FAILURES = 5
ADDRESS_MAX_FAILURES = 20
THROTTLE_WINDOW = timedelta(minutes=15)
LOCK_TIME = timedelta(minutes=15)

_hasher = PasswordHasher()
# Verified against when the email is unknown, so both paths cost one argon2 verification.
_DUMMY_HASH = _hasher.hash("stayflow-no-such-user")


class UserExists(Conflict):
    pass


class UserNotFound(NotFound):
    pass


class AppNotFound(NotFound):
    pass


class WeakPassword(BadRequest):
    pass


class InvalidRole(BadRequest):
    pass


class InvalidEmail(BadRequest):
    pass


class SignInFailed(StayflowError):
    status_code = 401
    error_type = "unauthorized"


class SignInThrottled(StayflowError):
    status_code = 429
    error_type = "rate_limited"


class LastOwner(Forbidden):
    pass


def normalize_email(email: str) -> str:
    cleaned = email.strip().lower()
    local, at, domain = cleaned.partition("@")
    if not at or not local or "." not in domain or len(cleaned) > 320 or " " in cleaned:
        raise InvalidEmail(f"{email!r} is not an email address")
    return cleaned


def check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise WeakPassword(f"the password must have at least {MIN_PASSWORD_LENGTH} characters")


def check_role(role: str) -> str:
    if role not in ROLES:
        raise InvalidRole(f"unknown role {role!r}; use one of {', '.join(ROLES)}")
    return role


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def _app(db: Session, app_id: str) -> App:
    app = apps_repository.get_app_by_public_id(db, app_id)
    if app is None:
        raise AppNotFound(f"no app {app_id!r}")
    return app


def _user(db: Session, email: str) -> User:
    user = repository.get_user_by_email(db, normalize_email(email))
    if user is None:
        raise UserNotFound(f"no user {email!r}")
    return user


def check_new_member(db: Session, email: str, *, app_id: str) -> bool:
    """Refuse early what ``create_user`` would refuse; True when the user already exists."""
    email = normalize_email(email)
    app = _app(db, app_id)
    user = repository.get_user_by_email(db, email)
    if user is not None and repository.membership(db, user, app) is not None:
        raise UserExists(f"{email} is already a member of {app_id}")
    return user is not None


def create_user(
    db: Session, email: str, password: str, *, app_id: str, role: str, now: datetime
) -> User:
    """Create a user with a role in one app, or add an existing user to another app."""
    email = normalize_email(email)
    check_role(role)
    app = _app(db, app_id)
    user = repository.get_user_by_email(db, email)
    if user is None:
        check_password(password)
        user = User(
            email=email,
            password_hash=hash_password(password),
            created_at=now,
            password_changed_at=now,
        )
        db.add(user)
        db.flush()
    elif repository.membership(db, user, app) is not None:
        raise UserExists(f"{email} is already a member of {app_id}")
    db.add(Membership(user_pk=user.id, app_pk=app.id, role=role, created_at=now))
    db.flush()
    log.info("admin.user.added", extra={"app_id": app.app_id, "role": role})
    return user


@dataclass(frozen=True)
class UserRow:
    email: str
    apps: list[tuple[str, str]]  # (app_id, role)


def list_users(db: Session) -> list[UserRow]:
    return [
        UserRow(u.email, [(a.app_id, m.role) for m, a in repository.memberships_of(db, u)])
        for u in repository.list_users(db)
    ]


def remove_user(db: Session, email: str, *, app_id: str | None = None) -> None:
    """Remove the user from one app, or delete the user (and their sessions) entirely."""
    user = _user(db, email)
    if app_id is None:
        repository.delete_sessions_of(db, user)
        db.delete(user)
        db.flush()
        return
    app = _app(db, app_id)
    member = repository.membership(db, user, app)
    if member is None:
        raise UserNotFound(f"{user.email} is not a member of {app_id}")
    db.delete(member)
    db.flush()


def reset_password(db: Session, email: str, password: str, *, now: datetime) -> User:
    """Set a new password and sign the user out everywhere."""
    user = _user(db, email)
    check_password(password)
    user.password_hash = hash_password(password)
    user.password_changed_at = now
    repository.delete_sessions_of(db, user)
    return user


# --- memberships, as the web app checks them ------------------------------------------


@dataclass(frozen=True)
class AppAccess:
    app: App
    role: str

    def allows(self, role: str) -> bool:
        return ROLE_RANK[self.role] >= ROLE_RANK[role]


def apps_of(db: Session, user: User) -> list[AppAccess]:
    return [AppAccess(a, m.role) for m, a in repository.memberships_of(db, user)]


def access(db: Session, user: User, app_id: str) -> AppAccess | None:
    """The user's role in the app, or None when the user is not a member (or no such app)."""
    app = apps_repository.get_app_by_public_id(db, app_id)
    if app is None:
        return None
    member = repository.membership(db, user, app)
    return AppAccess(app, member.role) if member else None


def members(db: Session, app: App) -> list[tuple[str, str]]:
    return [(u.email, m.role) for m, u in repository.members_of(db, app)]


def remove_member(db: Session, app: App, email: str) -> None:
    """An owner removes someone from the app (never the last owner)."""
    user = _user(db, email)
    member = repository.membership(db, user, app)
    if member is None:
        raise UserNotFound(f"{user.email} is not a member of this app")
    owners = [m for m, _ in repository.members_of(db, app) if m.role == "owner"]
    if member.role == "owner" and len(owners) <= 1:
        raise LastOwner("the app's last owner cannot be removed")
    db.delete(member)
    db.flush()


# --- sign-in throttling ----------------------------------------------------------------


def _key(kind: str, value: str) -> str:
    return hashlib.sha256(f"{kind}:{value}".encode()).hexdigest()


def _locked_for(row: LoginThrottle | None, now: datetime) -> timedelta | None:
    if row is None or row.locked_until is None or row.locked_until <= now:
        return None
    return row.locked_until - now


def _note_failure(db: Session, key_hash: str, limit: int, now: datetime) -> None:
    # Insert-or-nothing first, so two failures at once never collide on the unique key.
    insert_ignoring_conflicts(
        db,
        LoginThrottle,
        {"key_hash": key_hash, "failures": 0, "window_start": now},
        on=["key_hash"],
    )
    row = repository.get_throttle(db, key_hash)
    if row is None:  # pragma: no cover - just inserted or already there
        return
    if now - row.window_start > THROTTLE_WINDOW:
        row.failures, row.window_start, row.locked_until = 0, now, None
    row.failures += 1
    if row.failures >= limit:
        row.locked_until = now + LOCK_TIME


def _minutes(wait: timedelta) -> int:
    return max(1, math.ceil(wait.total_seconds() / 60))


def authenticate(db: Session, email: str, password: str, address: str, now: datetime) -> User:
    """Check email and password, counting failures per account and per client address.

    A locked account or address is refused even with the right password, and the message
    says how long to wait. Unknown emails count like known ones, so the answers do not tell
    which accounts exist.
    """
    email = email.strip().lower()
    account_key, address_key = _key("account", email), _key("address", address)
    throttles = (
        (
            account_key,
            N_("Too many failed sign-ins for this account. Try again in %(minutes)s minutes."),
        ),
        (
            address_key,
            N_("Too many failed sign-ins for your address. Try again in %(minutes)s minutes."),
        ),
    )
    for key_hash, text in throttles:
        wait = _locked_for(repository.get_throttle(db, key_hash), now)
        if wait is not None:
            raise SignInThrottled(Message(text, minutes=_minutes(wait)))
    repository.delete_stale_throttles(db, now - THROTTLE_WINDOW - LOCK_TIME)
    user = repository.get_user_by_email(db, email)
    ok = False
    try:
        ok = _hasher.verify(user.password_hash if user else _DUMMY_HASH, password)
    except (VerificationError, InvalidHashError):
        ok = False
    if user is None or not ok:
        _note_failure(db, account_key, ACCOUNT_MAX_FAILURES, now)
        _note_failure(db, address_key, ADDRESS_MAX_FAILURES, now)
        log.info("admin.signin.failed")
        raise SignInFailed(Message("The email or the password is wrong."))
    repository.delete_throttle(db, account_key)
    if _hasher.check_needs_rehash(user.password_hash):
        user.password_hash = hash_password(password)
    return user


# --- browser sessions ------------------------------------------------------------------


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def start_session(db: Session, user: User, now: datetime) -> str:
    """A new session for the user; returns the cookie's token (only its hash is stored)."""
    repository.delete_expired_sessions(db, now)
    token = secrets.token_urlsafe(32)
    db.add(
        AdminSession(
            token_hash=hash_token(token),
            user_pk=user.id,
            created_at=now,
            expires_at=now + SESSION_LIFETIME,
        )
    )
    db.flush()
    log.info("admin.signin")
    return token


def user_of_session(db: Session, token: str | None, now: datetime) -> tuple[User, str] | None:
    """(user, token hash) of a live session, or None."""
    if not token:
        return None
    row = repository.get_session_by_hash(db, hash_token(token))
    if row is None or row.expires_at <= now:
        return None
    user = repository.get_user(db, row.user_pk)
    return (user, row.token_hash) if user else None


def set_language(db: Session, user: User, language: str | None) -> None:
    """The user's admin language (one of i18n.LANGUAGES), or None to follow the browser."""
    if language is not None and language not in LANGUAGES:
        raise BadRequest(f"unknown language {language!r}; use one of {', '.join(LANGUAGES)}")
    user.language = language
    db.flush()


def end_session(db: Session, token_hash: str) -> None:
    row = repository.get_session_by_hash(db, token_hash)
    if row is not None:
        db.delete(row)


def end_all_sessions(db: Session, user: User) -> int:
    return repository.delete_sessions_of(db, user)


def csrf_token(secret_key: str, binding: str) -> str:
    """A form token bound to a session's token hash (or to the sign-in cookie)."""
    return hmac.new(secret_key.encode(), f"admin-csrf:{binding}".encode(), "sha256").hexdigest()


def csrf_valid(secret_key: str, binding: str | None, given: str | None) -> bool:
    if not binding or not given:
        return False
    return hmac.compare_digest(csrf_token(secret_key, binding), given)
