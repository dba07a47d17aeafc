from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from stayflow.db import Base, BigIntPK, utcnow

OWNER = "owner"
EDITOR = "editor"
VIEWER = "viewer"
ROLES = (OWNER, EDITOR, VIEWER)
# Higher ranks may do everything lower ones may.
ROLE_RANK = {VIEWER: 0, EDITOR: 1, OWNER: 2}


class User(Base):
    """A person who signs in to the admin web app (argon2 password hash only)."""

    __tablename__ = "admin_users"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    email: Mapped[str] = mapped_column(String(320), unique=True)
    password_hash: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    password_changed_at: Mapped[datetime] = mapped_column(default=utcnow)
    # The admin's language chosen by the user (en, fr, de); None follows the browser.
    language: Mapped[str | None] = mapped_column(String(8), default=None)


class Membership(Base):
    """A user's role in one app; a user may belong to several apps."""

    __tablename__ = "admin_memberships"
    __table_args__ = (UniqueConstraint("user_pk", "app_pk"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    user_pk: Mapped[int] = mapped_column(ForeignKey("admin_users.id", ondelete="CASCADE"))
    app_pk: Mapped[int] = mapped_column(ForeignKey("apps.id", ondelete="CASCADE"), index=True)
    role: Mapped[str] = mapped_column(String(10))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class AdminSession(Base):
    """A signed-in browser; only the SHA-256 of the cookie's token is stored."""

    __tablename__ = "admin_sessions"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    user_pk: Mapped[int] = mapped_column(
        ForeignKey("admin_users.id", ondelete="CASCADE"), index=True
    )
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime] = mapped_column()


class LoginThrottle(Base):
    """Failed sign-ins counted per account or per client address (keys are SHA-256 hashes)."""

    __tablename__ = "admin_login_throttle"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    failures: Mapped[int] = mapped_column(default=0)
    window_start: Mapped[datetime] = mapped_column()
    locked_until: Mapped[datetime | None] = mapped_column(default=None)


class Invite(Base):
    """An owner's invitation to join an app with a role, by a one-time link.

    Only the SHA-256 of the link's token is stored; the link is shown once. A used,
    revoked or expired invitation cannot be accepted.
    """

    __tablename__ = "admin_invites"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    app_pk: Mapped[int] = mapped_column(ForeignKey("apps.id", ondelete="CASCADE"), index=True)
    email: Mapped[str] = mapped_column(String(320))
    role: Mapped[str] = mapped_column(String(10))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    invited_by_pk: Mapped[int | None] = mapped_column(
        ForeignKey("admin_users.id", ondelete="SET NULL"), default=None
    )
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime] = mapped_column()
    used_at: Mapped[datetime | None] = mapped_column(default=None)
    revoked_at: Mapped[datetime | None] = mapped_column(default=None)
