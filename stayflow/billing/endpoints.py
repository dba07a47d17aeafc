from __future__ import annotations

from fastapi import APIRouter, Query, Response, status

from stayflow.billing import service
from stayflow.billing.schemas import StripeConnect, StripeSetup, StripeSetupPatch, StripeStatus
from stayflow.deps import DB, CurrentApp, EncryptorDep, SettingsDep

router = APIRouter(prefix="/api/v1/billing/stripe", tags=["billing"])


@router.get("", response_model=StripeStatus)
def get_stripe(
    db: DB,
    app: CurrentApp,
    settings: SettingsDep,
    encryptor: EncryptorDep,
    check: bool = Query(False, description="Check the key's permissions with Stripe again."),
) -> StripeStatus:
    if check:
        service.recheck(db, app, settings, encryptor)
    return service.status(db, app, settings)


@router.put("", response_model=StripeStatus)
def put_stripe(
    body: StripeConnect, db: DB, app: CurrentApp, settings: SettingsDep, encryptor: EncryptorDep
) -> StripeStatus:
    service.connect(
        db,
        app,
        settings,
        encryptor,
        api_key=body.api_key.get_secret_value(),
        webhook_secret=body.webhook_secret.get_secret_value() if body.webhook_secret else None,
    )
    return service.status(db, app, settings)


@router.delete("", status_code=status.HTTP_204_NO_CONTENT)
def delete_stripe(
    db: DB, app: CurrentApp, settings: SettingsDep, encryptor: EncryptorDep
) -> Response:
    service.disconnect(db, app, settings, encryptor)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/setup", response_model=StripeSetup)
def get_setup(db: DB, app: CurrentApp) -> StripeSetup:
    return service.get_setup(db, app)


@router.put("/setup", response_model=StripeSetup)
def put_setup(body: StripeSetupPatch, db: DB, app: CurrentApp) -> StripeSetup:
    return service.update_setup(db, app, body)
