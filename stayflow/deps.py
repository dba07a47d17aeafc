"""Request dependencies: the DB session (the one place a request commits) and the caller."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session

from stayflow.apps import service as apps_service
from stayflow.apps.models import App
from stayflow.crypto import Encryptor
from stayflow.db import transaction
from stayflow.settings import Settings


def get_db(request: Request) -> Iterator[Session]:
    with transaction(request.app.state.session_factory) as session:
        yield session


def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def get_encryptor(request: Request) -> Encryptor:
    encryptor: Encryptor = request.app.state.encryptor
    return encryptor


# scope="function": commit (or roll back) before the answer is sent, so a client never reads
# before its own write and a failed commit never follows a 2xx.
DB = Annotated[Session, Depends(get_db, scope="function")]
SettingsDep = Annotated[Settings, Depends(get_settings)]
EncryptorDep = Annotated[Encryptor, Depends(get_encryptor)]


# Declares the scheme in the OpenAPI document; the check itself (and its 401 wording) is
# apps_service.authenticate's, so the header is read as sent.
bearer_scheme = HTTPBearer(
    auto_error=False,
    scheme_name="apiKey",
    description="An admin API key: `Authorization: Bearer sfk_...`.",
)


def current_app(
    db: DB,
    request: Request,
    _credentials: Annotated[HTTPAuthorizationCredentials | None, Security(bearer_scheme)],
) -> App:
    """The tenant the admin API key belongs to; every admin route is scoped by it.

    The key's id is kept on ``request.state.api_key_id`` (who made a change, in versions).
    """
    key, app = apps_service.authenticate_key(db, request.headers.get("authorization"))
    request.state.api_key_id = key.key_id
    return app


CurrentApp = Annotated[App, Depends(current_app)]
