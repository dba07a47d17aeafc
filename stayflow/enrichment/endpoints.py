from __future__ import annotations

from fastapi import APIRouter, Path, Query, Response, status

from stayflow.billing.schemas import SourceField, SourceFields
from stayflow.deps import DB, CurrentApp, EncryptorDep, SettingsDep
from stayflow.enrichment import service
from stayflow.enrichment.schemas import (
    FIELD_NAME,
    FieldMappingIn,
    FieldMappingList,
    FieldMappingOut,
)
from stayflow.errors import BadRequest

router = APIRouter(prefix="/api/v1", tags=["enrichment"])


@router.get("/field-mappings", response_model=list[FieldMappingOut])
def list_field_mappings(db: DB, app: CurrentApp) -> list[FieldMappingOut]:
    return [FieldMappingOut.model_validate(m) for m in service.list_mappings(db, app.id)]


@router.put("/field-mappings", response_model=list[FieldMappingOut])
def replace_field_mappings(
    body: FieldMappingList, db: DB, app: CurrentApp
) -> list[FieldMappingOut]:
    """Make the app's mappings exactly this list."""
    service.replace_mappings(db, app.id, body.mappings)
    return [FieldMappingOut.model_validate(m) for m in service.list_mappings(db, app.id)]


@router.post("/field-mappings", response_model=FieldMappingOut, status_code=status.HTTP_201_CREATED)
def create_field_mapping(body: FieldMappingIn, db: DB, app: CurrentApp) -> FieldMappingOut:
    return FieldMappingOut.model_validate(service.upsert_mapping(db, app.id, body))


@router.get("/field-mappings/{field}", response_model=FieldMappingOut)
def get_field_mapping(
    db: DB, app: CurrentApp, field: str = Path(pattern=FIELD_NAME)
) -> FieldMappingOut:
    return FieldMappingOut.model_validate(service.get_mapping(db, app.id, field))


@router.put("/field-mappings/{field}", response_model=FieldMappingOut)
def put_field_mapping(
    body: FieldMappingIn, db: DB, app: CurrentApp, field: str = Path(pattern=FIELD_NAME)
) -> FieldMappingOut:
    if body.field != field:
        raise BadRequest("the body's field must match the path")
    return FieldMappingOut.model_validate(service.upsert_mapping(db, app.id, body))


@router.delete("/field-mappings/{field}", status_code=status.HTTP_204_NO_CONTENT)
def delete_field_mapping(
    db: DB, app: CurrentApp, field: str = Path(pattern=FIELD_NAME)
) -> Response:
    service.delete_mapping(db, app.id, field)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/billing/stripe/fields", response_model=SourceFields)
def list_source_fields(
    db: DB,
    app: CurrentApp,
    settings: SettingsDep,
    encryptor: EncryptorDep,
    subscription_id: str = Query(min_length=1, max_length=255),
) -> SourceFields:
    """Every source path a mapping can use, with this subscription's values as samples."""
    source, fields = service.source_fields(db, app.id, subscription_id, settings, encryptor)
    return SourceFields(
        subscription_id=subscription_id,
        source=source,
        fields=[SourceField(path=k, sample=v) for k, v in fields.items()],
    )
