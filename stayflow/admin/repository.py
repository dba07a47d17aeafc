"""Every query of the admin domain's own tables."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from stayflow.admin.models import AdminSession, Invite, LoginThrottle, Membership, User
from stayflow.apps.models import App


def get_user_by_email(db: Session, email: str) -> User | None:
    return db.scalar(select(User).where(User.email == email))


def get_user(db: Session, user_pk: int) -> User | None:
    return db.get(User, user_pk)


def list_users(db: Session) -> Sequence[User]:
    return db.scalars(select(User).order_by(User.email)).all()


def memberships_of(db: Session, user: User) -> Sequence[tuple[Membership, App]]:
    rows = db.execute(
        select(Membership, App)
        .join(App, App.id == Membership.app_pk)
        .where(Membership.user_pk == user.id)
        .order_by(App.name, App.id)
    ).all()
    return [(m, a) for m, a in rows]


def membership(db: Session, user: User, app: App) -> Membership | None:
    return db.scalar(
        select(Membership).where(Membership.user_pk == user.id, Membership.app_pk == app.id)
    )


def members_of(db: Session, app: App) -> Sequence[tuple[Membership, User]]:
    rows = db.execute(
        select(Membership, User)
        .join(User, User.id == Membership.user_pk)
        .where(Membership.app_pk == app.id)
        .order_by(User.email)
    ).all()
    return [(m, u) for m, u in rows]


def get_session_by_hash(db: Session, token_hash: str) -> AdminSession | None:
    return db.scalar(select(AdminSession).where(AdminSession.token_hash == token_hash))


def delete_sessions_of(db: Session, user: User) -> int:
    result = db.execute(delete(AdminSession).where(AdminSession.user_pk == user.id))
    return int(getattr(result, "rowcount", 0) or 0)


def delete_expired_sessions(db: Session, now: datetime) -> None:
    db.execute(delete(AdminSession).where(AdminSession.expires_at <= now))


def get_throttle(db: Session, key_hash: str) -> LoginThrottle | None:
    return db.scalar(select(LoginThrottle).where(LoginThrottle.key_hash == key_hash))


def delete_throttle(db: Session, key_hash: str) -> None:
    db.execute(delete(LoginThrottle).where(LoginThrottle.key_hash == key_hash))


def delete_stale_throttles(db: Session, older_than: datetime) -> None:
    """Forget counts whose window and lock are both over (they no longer matter)."""
    db.execute(
        delete(LoginThrottle).where(
            LoginThrottle.window_start < older_than,
            (LoginThrottle.locked_until.is_(None)) | (LoginThrottle.locked_until < older_than),
        )
    )


def pending_invites(db: Session, app: App, now: datetime) -> Sequence[Invite]:
    return db.scalars(
        select(Invite)
        .where(
            Invite.app_pk == app.id,
            Invite.used_at.is_(None),
            Invite.revoked_at.is_(None),
            Invite.expires_at > now,
        )
        .order_by(Invite.created_at.desc(), Invite.id.desc())
    ).all()


def get_invite(db: Session, app: App, invite_id: int) -> Invite | None:
    return db.scalar(select(Invite).where(Invite.app_pk == app.id, Invite.id == invite_id))


def get_invite_by_hash(db: Session, token_hash: str) -> Invite | None:
    return db.scalar(select(Invite).where(Invite.token_hash == token_hash))


def app_of_invite(db: Session, invite: Invite) -> App | None:
    return db.scalar(select(App).where(App.id == invite.app_pk))
