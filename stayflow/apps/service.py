"""Tenants and their credentials. Services never commit; their caller does."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy.orm import Session

from stayflow.apps import repository
from stayflow.apps.models import ApiKey, App
from stayflow.crypto import Encryptor
from stayflow.db import utcnow
from stayflow.errors import BadRequest, NotFound, Unauthorized

API_KEY_PREFIX = "sfk_"
# Touch last_used_at at most this often, so authentication is not a write per request.
LAST_USED_RESOLUTION = timedelta(minutes=5)


class InvalidApiKey(Unauthorized):
    pass


class ApiKeyNotFound(NotFound):
    pass


@dataclass(frozen=True)
class CreatedApp:
    app: App
    app_secret: str
    api_key: str


@dataclass(frozen=True)
class CreatedKey:
    key: ApiKey
    plaintext: str


def hash_api_key(plaintext: str) -> str:
    # Keys are 256 random bits: a plain SHA-256 is enough, no slow KDF needed.
    return hashlib.sha256(plaintext.encode()).hexdigest()


def _new_public_id(prefix: str) -> str:
    return prefix + secrets.token_hex(8)


def create_api_key(db: Session, app: App, name: str = "default") -> CreatedKey:
    name = name.strip()
    if not name or len(name) > 200:
        raise BadRequest("an API key name must be 1 to 200 characters")
    key_id = _new_public_id("key_")
    plaintext = API_KEY_PREFIX + secrets.token_urlsafe(32)
    key = ApiKey(app_pk=app.id, key_id=key_id, key_hash=hash_api_key(plaintext), name=name)
    db.add(key)
    db.flush()
    return CreatedKey(key=key, plaintext=plaintext)


def create_app(db: Session, encryptor: Encryptor, name: str) -> CreatedApp:
    name = name.strip()
    if not name or len(name) > 200:
        raise BadRequest("an app name must be 1 to 200 characters")
    app_secret = "sfs_" + secrets.token_urlsafe(32)
    app = App(
        app_id=_new_public_id("app_"),
        name=name,
        secret_encrypted=encryptor.encrypt(app_secret),
        settings={},
    )
    db.add(app)
    db.flush()
    created = create_api_key(db, app)
    return CreatedApp(app=app, app_secret=app_secret, api_key=created.plaintext)


def authenticate(db: Session, authorization: str | None) -> App:
    """The app whose admin API key is in ``Authorization: Bearer <key>``, or 401."""
    return authenticate_key(db, authorization)[1]


def authenticate_key(db: Session, authorization: str | None) -> tuple[ApiKey, App]:
    """The admin API key in ``Authorization: Bearer <key>`` and its app, or 401."""
    if not authorization:
        raise InvalidApiKey("missing Authorization header; send 'Authorization: Bearer <api key>'")
    scheme, _, token = authorization.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise InvalidApiKey("Authorization must be 'Bearer <api key>'")
    found = repository.get_active_key_by_hash(db, hash_api_key(token))
    if found is None:
        raise InvalidApiKey("invalid or revoked API key")
    key, app = found
    now = utcnow()
    if key.last_used_at is None or now - key.last_used_at > LAST_USED_RESOLUTION:
        key.last_used_at = now
    return key, app


def revoke_api_key(db: Session, app: App, key_id: str) -> ApiKey:
    key = repository.get_key(db, app, key_id)
    if key is None:
        raise ApiKeyNotFound(f"no API key {key_id!r}")
    if key.revoked_at is None:
        key.revoked_at = utcnow()
    return key


def app_secret(encryptor: Encryptor, app: App) -> str:
    return encryptor.decrypt(app.secret_encrypted)


def rename_app(app: App, name: str) -> App:
    name = name.strip()
    if not name or len(name) > 200:
        raise BadRequest("an app name must be 1 to 200 characters")
    app.name = name
    return app
