"""Invitations: an owner invites someone by email with a role, by a one-time link.

The link carries a random 256-bit token; only its SHA-256 is stored, and the link is shown
once to the owner (mail may not be set up, so they pass it on themselves). A link works
once, until it expires or is revoked; after that it answers 410.
"""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from stayflow.admin import repository
from stayflow.admin.i18n import Message
from stayflow.admin.models import Invite, Membership, User
from stayflow.admin.service import (
    authenticate,
    check_password,
    check_role,
    hash_password,
    hash_token,
    normalize_email,
)
from stayflow.apps.models import App
from stayflow.errors import Conflict, NotFound, StayflowError

log = logging.getLogger("stayflow.admin")

INVITE_LIFETIME = timedelta(days=7)


class InviteNotFound(NotFound):
    pass


class InviteGone(StayflowError):
    """The link was used, revoked or has expired."""

    status_code = 410
    error_type = "gone"


class AlreadyMember(Conflict):
    pass


@dataclass(frozen=True)
class NewInvite:
    invite: Invite
    token: str  # shown once, never stored


def create_invite(
    db: Session, app: App, email: str, role: str, *, invited_by: User, now: datetime
) -> NewInvite:
    """A new invitation; earlier pending ones for the same email in this app are revoked."""
    email = normalize_email(email)
    check_role(role)
    user = repository.get_user_by_email(db, email)
    if user is not None and repository.membership(db, user, app) is not None:
        raise AlreadyMember(Message("%(email)s is already a member of this app.", email=email))
    for earlier in repository.pending_invites(db, app, now):
        if earlier.email == email:
            earlier.revoked_at = now
    token = secrets.token_urlsafe(32)
    invite = Invite(
        app_pk=app.id,
        email=email,
        role=role,
        token_hash=hash_token(token),
        invited_by_pk=invited_by.id,
        created_at=now,
        expires_at=now + INVITE_LIFETIME,
    )
    db.add(invite)
    db.flush()
    log.info("admin.invite.created", extra={"app_id": app.app_id, "role": role})
    return NewInvite(invite, token)


def pending(db: Session, app: App, now: datetime) -> list[Invite]:
    return list(repository.pending_invites(db, app, now))


def revoke_invite(db: Session, app: App, invite_id: int, now: datetime) -> None:
    invite = repository.get_invite(db, app, invite_id)
    if invite is None:
        raise InviteNotFound(Message("There is no such invitation."))
    if invite.used_at is None and invite.revoked_at is None:
        invite.revoked_at = now
        db.flush()


@dataclass(frozen=True)
class OpenInvite:
    invite: Invite
    app: App
    existing_user: User | None


def open_invite(db: Session, token: str, now: datetime) -> OpenInvite:
    """The invitation behind a link, if it can still be accepted (404 unknown, 410 gone)."""
    invite = repository.get_invite_by_hash(db, hash_token(token)) if token else None
    if invite is None:
        raise InviteNotFound(Message("This invitation link is not valid."))
    if invite.used_at is not None:
        raise InviteGone(Message("This invitation link was already used."))
    if invite.revoked_at is not None:
        raise InviteGone(Message("This invitation was withdrawn."))
    if invite.expires_at <= now:
        raise InviteGone(Message("This invitation link has expired. Ask for a new one."))
    app = repository.app_of_invite(db, invite)
    if app is None:  # pragma: no cover - the invite is deleted with its app
        raise InviteNotFound(Message("This invitation link is not valid."))
    return OpenInvite(invite, app, repository.get_user_by_email(db, invite.email))


def accept_invite(
    db: Session, token: str, password: str, *, address: str, now: datetime
) -> tuple[User, App]:
    """Join the app: a new user sets a password; an existing one signs in with theirs.

    An existing user's password is checked by ``authenticate`` (so it is throttled like
    the sign-in form): the link alone never opens someone's account.
    """
    found = open_invite(db, token, now)
    invite, app, user = found.invite, found.app, found.existing_user
    if user is None:
        check_password(password)
        user = User(
            email=invite.email,
            password_hash=hash_password(password),
            created_at=now,
            password_changed_at=now,
        )
        db.add(user)
        db.flush()
    else:
        user = authenticate(db, invite.email, password, address, now)
    if repository.membership(db, user, app) is None:
        db.add(Membership(user_pk=user.id, app_pk=app.id, role=invite.role, created_at=now))
    invite.used_at = now
    db.flush()
    log.info("admin.invite.accepted", extra={"app_id": app.app_id, "role": invite.role})
    return user, app
