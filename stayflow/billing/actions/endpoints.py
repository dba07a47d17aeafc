"""Admin API: what billing actions did (failed ones first of all) and their events."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Query

from stayflow.billing.actions import service
from stayflow.billing.actions.schemas import (
    BillingActionList,
    BillingActionOut,
    BillingEventList,
    BillingEventOut,
    OfferRefusalList,
    OfferRefusalOut,
)
from stayflow.deps import DB, CurrentApp
from stayflow.errors import NotFound

router = APIRouter(prefix="/api/v1/billing", tags=["billing actions"])


class ActionNotFound(NotFound):
    pass


@router.get("/actions", response_model=BillingActionList)
def list_actions(
    db: DB,
    app: CurrentApp,
    status: Literal["pending", "applied", "skipped", "failed"] | None = Query(None),
    before_id: int | None = Query(None, ge=1, le=2**62),
    limit: int = Query(50, ge=1, le=200),
) -> BillingActionList:
    rows = service.list_actions(db, app.id, status=status, before_id=before_id, limit=limit + 1)
    return BillingActionList(
        data=[BillingActionOut.model_validate(r) for r in rows[:limit]],
        has_more=len(rows) > limit,
    )


@router.get("/actions/{session_id}", response_model=list[BillingActionOut])
def session_actions(session_id: str, db: DB, app: CurrentApp) -> list[BillingActionOut]:
    rows = service.actions_of_session(db, app.id, session_id[:100])
    if not rows:
        raise ActionNotFound("no billing action for this session")
    return [BillingActionOut.model_validate(r) for r in rows]


@router.get("/events", response_model=BillingEventList)
def list_events(
    db: DB,
    app: CurrentApp,
    after_id: int | None = Query(None, ge=0, le=2**62),
    limit: int = Query(100, ge=1, le=500),
) -> BillingEventList:
    rows = service.list_events(db, app.id, after_id=after_id, limit=limit + 1)
    return BillingEventList(
        data=[BillingEventOut.model_validate(r) for r in rows[:limit]],
        has_more=len(rows) > limit,
    )


@router.get("/offers/refused", response_model=OfferRefusalList)
def refused_offers(db: DB, app: CurrentApp) -> OfferRefusalList:
    """Offers flagged as refused by Stripe at acceptance (coupon deleted, price archived)."""
    found = service.refused_offers(db, app.id)
    return OfferRefusalList(
        data=[
            OfferRefusalOut(
                offer_id=offer_id,
                offer_type=r.get("offer_type"),
                message=str(r.get("error") or ""),
                session_id=str(r.get("session_id") or ""),
                refused_at=r["refused_at"],
            )
            for offer_id, r in found.items()
        ]
    )
