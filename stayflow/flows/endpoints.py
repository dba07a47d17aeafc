"""Admin API for an app's cancel flow: the whole document, one item, a dry run, a resolve."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Body, Query, Request

from stayflow.billing.actions.validation import offer_check
from stayflow.db import utcnow
from stayflow.deps import DB, CurrentApp
from stayflow.flows import service
from stayflow.flows.assignment import choose
from stayflow.flows.schemas import FlowsApplied, FlowsDocument, FlowsOut, ResolveOut, ResolveRequest

router = APIRouter(prefix="/api/v1/flows", tags=["flows"])

Kind = Literal["reasons", "offers", "audiences", "experiences", "experiments"]


def _applied(result: service.Applied) -> FlowsApplied:
    return FlowsApplied(
        version=result.version,
        flows=result.document,
        changed=result.changed,
        diff=result.diff,
        warnings=list(result.warnings),
    )


@router.get("", response_model=FlowsOut, summary="The app's flows document")
def get_flows(db: DB, app: CurrentApp) -> FlowsOut:
    doc, version = service.current(db, app)
    return FlowsOut(version=version, flows=doc.normalized())


@router.put("", response_model=FlowsApplied, summary="Replace the flows document")
def put_flows(
    body: FlowsDocument,
    db: DB,
    app: CurrentApp,
    request: Request,
    dry_run: bool = Query(False, description="Validate and show the diff without saving."),
) -> FlowsApplied:
    check = offer_check(request.app.state.services)
    return _applied(service.apply(db, app, body.normalized(), dry_run=dry_run, offer_check=check))


@router.post("/resolve", response_model=ResolveOut, summary="Which experience these fields get")
def resolve(body: ResolveRequest, db: DB, app: CurrentApp) -> ResolveOut:
    doc, _ = service.current(db, app)
    snap = choose(
        doc, body.fields, app_id=app.app_id, subscription_id=body.subscription_id, now=utcnow()
    )
    return ResolveOut(
        experience_id=snap.experience.id,
        experiment_id=snap.experiment_id,
        variant_id=snap.variant_id,
        reasons=[r.id for r in snap.reasons],
        offers=[o.id for o in snap.offers],
    )


@router.get("/{kind}/{item_id}", response_model=dict[str, Any], summary="One item")
def get_item(kind: Kind, item_id: str, db: DB, app: CurrentApp) -> dict[str, Any]:
    return service.get_item(db, app, kind, item_id)


@router.put("/{kind}/{item_id}", response_model=FlowsApplied, summary="Create or replace one item")
def put_item(
    kind: Kind,
    item_id: str,
    db: DB,
    app: CurrentApp,
    request: Request,
    body: dict[str, Any] = Body(
        description="A reason, offer, audience, experience or experiment, as in the flows file."
    ),
) -> FlowsApplied:
    check = offer_check(request.app.state.services)
    return _applied(service.put_item(db, app, kind, item_id, body, offer_check=check))


@router.delete("/{kind}/{item_id}", response_model=FlowsApplied, summary="Delete one item")
def delete_item(kind: Kind, item_id: str, db: DB, app: CurrentApp) -> FlowsApplied:
    return _applied(service.delete_item(db, app, kind, item_id))
