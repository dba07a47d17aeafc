from __future__ import annotations

from fastapi import APIRouter, status

from stayflow.apps import repository, service
from stayflow.apps.schemas import ApiKeyCreate, ApiKeyCreated, ApiKeyOut, AppOut, AppPatch
from stayflow.deps import DB, CurrentApp

router = APIRouter(prefix="/api/v1", tags=["app"])


@router.get("/app", response_model=AppOut)
def get_app(app: CurrentApp) -> AppOut:
    return AppOut.model_validate(app)


@router.patch("/app", response_model=AppOut)
def patch_app(body: AppPatch, app: CurrentApp) -> AppOut:
    return AppOut.model_validate(service.rename_app(app, body.name))


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
