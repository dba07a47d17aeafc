from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request, status

from stayflow.apps import erase, repository, service
from stayflow.apps.schemas import (
    ApiKeyCreate,
    ApiKeyCreated,
    ApiKeyOut,
    AppDeleted,
    AppOut,
    AppPatch,
    SubscriberErase,
    SubscriberErased,
)
from stayflow.deps import DB, CurrentApp, EncryptorDep, SettingsDep

router = APIRouter(prefix="/api/v1", tags=["app"])


@router.get("/app", response_model=AppOut)
def get_app(app: CurrentApp) -> AppOut:
    return AppOut.model_validate(app)


@router.patch("/app", response_model=AppOut)
def patch_app(body: AppPatch, app: CurrentApp) -> AppOut:
    return AppOut.model_validate(service.rename_app(app, body.name))


@router.delete(
    "/app",
    response_model=AppDeleted,
    summary="Delete this app and everything it owns",
    responses={400: {"description": "`confirm` does not repeat the app id"}},
)
def delete_app(
    request: Request,
    db: DB,
    app: CurrentApp,
    settings: SettingsDep,
    encryptor: EncryptorDep,
    confirm: Annotated[
        str | None, Query(max_length=40, description="The app id, repeated to confirm.")
    ] = None,
) -> AppDeleted:
    """Keys, Stripe connection (and the webhook endpoint made in Stripe), flows, field
    mappings, sessions, billing actions and events, the mirror and jobs: all removed. This
    API key stops working at once."""
    app_id = app.app_id
    rows = erase.delete_app(db, app, settings, encryptor, confirm=confirm)
    cache = getattr(request.app.state, "precancel_apps", None)
    if cache is not None:
        cache.invalidate(app_id)
    return AppDeleted(app_id=app_id, rows=rows)


@router.post(
    "/subscribers/erase",
    response_model=SubscriberErased,
    summary="Erase one subscriber's personal data",
    responses={409: {"description": "a billing action for them is still being applied"}},
)
def erase_subscriber(body: SubscriberErase, db: DB, app: CurrentApp) -> SubscriberErased:
    """By subscription id or customer id: their sessions keep outcome, reason, offer and
    amounts, and lose request fields, comments, emails, names and ids; their mirror rows are
    removed. What Stripe holds is erased in Stripe, not here."""
    done = erase.erase_subscriber(
        db, app, subscription_id=body.subscription_id, customer_id=body.customer_id
    )
    return SubscriberErased(
        subscription_ids=done.subscription_ids, customer_ids=done.customer_ids, counts=done.counts
    )


@router.get("/api-keys", response_model=list[ApiKeyOut])
def list_api_keys(db: DB, app: CurrentApp) -> list[ApiKeyOut]:
    return [ApiKeyOut.model_validate(k) for k in repository.list_keys(db, app)]


@router.post("/api-keys", response_model=ApiKeyCreated, status_code=status.HTTP_201_CREATED)
def create_api_key(body: ApiKeyCreate, db: DB, app: CurrentApp) -> ApiKeyCreated:
    created = service.create_api_key(db, app, body.name)
    out = ApiKeyOut.model_validate(created.key)
    return ApiKeyCreated(**out.model_dump(), api_key=created.plaintext)


@router.delete("/api-keys/{key_id}", response_model=ApiKeyOut)
def revoke_api_key(key_id: str, db: DB, app: CurrentApp) -> ApiKeyOut:
    return ApiKeyOut.model_validate(service.revoke_api_key(db, app, key_id))
