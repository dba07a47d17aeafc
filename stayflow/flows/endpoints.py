"""Admin API for an app's cancel flow: the whole document, one item, a dry run, a resolve,
its versions (history, restore) and its draft (save, read, publish, discard)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Header, Path, Query, Request, Response

from stayflow.billing.actions.validation import offer_check
from stayflow.db import utcnow
from stayflow.deps import DB, CurrentApp
from stayflow.errors import PreconditionFailed
from stayflow.flows import service, versions
from stayflow.flows.assignment import choose
from stayflow.flows.models import FlowVersion
from stayflow.flows.schemas import (
    DraftOut,
    FlowsApplied,
    FlowsDocument,
    FlowsOut,
    FlowsSaved,
    PublishRequest,
    ResolveOut,
    ResolveRequest,
    VersionList,
    VersionOut,
    VersionSummary,
)

router = APIRouter(prefix="/api/v1/flows", tags=["flows"])

Kind = Literal["reasons", "offers", "audiences", "experiences", "experiments"]
Message = Annotated[
    str | None,
    Query(max_length=500, description="Why: kept with the version (or the draft)."),
]
Draft = Annotated[
    bool,
    Query(description="Save as the draft: validated the same way, not live until published."),
]
VersionNumber = Annotated[int, Path(ge=1, le=2_147_483_647, description="The version number.")]
IfMatch = Annotated[
    str | None,
    Header(
        alias="If-Match",
        max_length=100,
        description="The ETag of what this change replaces, as you read it (GET answers it): "
        "when someone changed it since, nothing is saved and the answer is 412. "
        "Without it the change is made whatever is there.",
    ),
]


def etag(value: Any) -> str:
    return f'"{service.fingerprint(value)}"'


def _expected(if_match: str | None) -> str | None:
    """The fingerprint an If-Match names (``*`` or none: no condition)."""
    if if_match is None or if_match.strip() == "*":
        return None
    tag = if_match.strip()
    tag = tag[2:] if tag.startswith("W/") else tag
    return tag.strip('"')


def _guarded(
    change: Callable[[str | None], service.Applied], if_match: str | None
) -> service.Applied:
    try:
        return change(_expected(if_match))
    except service.FlowsChanged as exc:
        raise PreconditionFailed(
            f"{exc.message}: read it again (its ETag changed) and make your change on that"
        ) from exc


def api_author(request: Request) -> str:
    """Who made a change through the API: the key, by its id (never the key itself)."""
    return f"api key {getattr(request.state, 'api_key_id', '?')}"


def _applied(result: service.Applied) -> FlowsSaved:
    return FlowsSaved(
        version=result.version,
        flows=result.document,
        changed=result.changed,
        diff=result.diff,
        warnings=list(result.warnings),
        draft=result.draft,
    )


@router.get("", response_model=FlowsOut, summary="The app's flows document")
def get_flows(db: DB, app: CurrentApp, response: Response) -> FlowsOut:
    doc, version = service.current(db, app)
    flows = doc.normalized()
    response.headers["ETag"] = etag(flows)
    return FlowsOut(version=version, flows=flows)


@router.put("", response_model=FlowsSaved, summary="Replace the flows document (or the draft)")
def put_flows(
    body: FlowsDocument,
    db: DB,
    app: CurrentApp,
    request: Request,
    response: Response,
    message: Message = None,
    draft: Draft = False,
    dry_run: bool = Query(False, description="Validate and show the diff without saving."),
    if_match: IfMatch = None,
) -> FlowsSaved:
    check = offer_check(request.app.state.services)
    result = _applied(
        _guarded(
            lambda expected: service.apply(
                db,
                app,
                body.normalized(),
                dry_run=dry_run,
                offer_check=check,
                author=api_author(request),
                message=message,
                draft=draft,
                expected=expected,
            ),
            if_match,
        )
    )
    if not dry_run:  # the ETag of what now stands: the next change's If-Match
        response.headers["ETag"] = etag(result.flows)
    return result


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


# --- draft -----------------------------------------------------------------------------


@router.get("/draft", response_model=DraftOut, summary="The draft (404 no_draft when none)")
def get_draft(db: DB, app: CurrentApp, response: Response) -> DraftOut:
    found = versions.get_draft(db, app)
    response.headers["ETag"] = etag(found.document)
    return DraftOut(
        flows=found.document,
        message=found.message,
        author=found.author,
        updated_at=found.updated_at,
        base_version=found.base_version,
        live_version=found.live_version,
        diff=found.diff,
    )


@router.delete(
    "/draft", status_code=204, response_class=Response, summary="Discard the draft (404 if none)"
)
def discard_draft(db: DB, app: CurrentApp) -> Response:
    versions.discard_draft(db, app)
    return Response(status_code=204)


@router.post(
    "/publish",
    response_model=FlowsSaved,
    summary="Make the draft live: a new version (409 no_draft when there is none)",
)
def publish(
    db: DB, app: CurrentApp, request: Request, body: PublishRequest | None = None
) -> FlowsSaved:
    check = offer_check(request.app.state.services)
    return _applied(
        versions.publish(
            db,
            app,
            author=api_author(request),
            message=body.message if body else None,
            offer_check=check,
        )
    )


# --- versions --------------------------------------------------------------------------


def _summary(found: FlowVersion, live: int) -> dict[str, Any]:
    return {
        "number": found.number,
        "author": found.author,
        "created_at": found.created_at,
        "message": found.message,
        "live": found.number == live,
    }


@router.get("/versions", response_model=VersionList, summary="Every change, newest first")
def list_versions(
    db: DB,
    app: CurrentApp,
    limit: int = Query(50, ge=1, le=100),
    before: int | None = Query(None, ge=1, le=2_147_483_647, description="Older than this."),
) -> VersionList:
    _, live = service.current(db, app)
    rows = versions.list_versions(db, app, limit=limit, before=before)
    return VersionList(data=[VersionSummary(**_summary(r, live)) for r in rows], live_version=live)


@router.get("/versions/{number}", response_model=VersionOut, summary="One version, with its diff")
def get_version(number: VersionNumber, db: DB, app: CurrentApp) -> VersionOut:
    _, live = service.current(db, app)
    found = versions.get_version(db, app, number)
    return VersionOut(
        **_summary(found, live), flows=service.canonical(found.document), diff=found.diff
    )


@router.post(
    "/versions/{number}/restore",
    response_model=FlowsSaved,
    summary="Restore a version: a new version with its document (or the draft, draft=true)",
)
def restore_version(
    number: VersionNumber, db: DB, app: CurrentApp, request: Request, draft: Draft = False
) -> FlowsSaved:
    check = offer_check(request.app.state.services)
    return _applied(
        versions.restore(
            db, app, number, author=api_author(request), draft=draft, offer_check=check
        )
    )


# --- one item --------------------------------------------------------------------------


@router.get("/{kind}/{item_id}", response_model=dict[str, Any], summary="One item")
def get_item(
    kind: Kind, item_id: str, db: DB, app: CurrentApp, response: Response
) -> dict[str, Any]:
    found = service.get_item(db, app, kind, item_id)
    response.headers["ETag"] = etag(found)
    return found


@router.put("/{kind}/{item_id}", response_model=FlowsSaved, summary="Create or replace one item")
def put_item(
    kind: Kind,
    item_id: str,
    db: DB,
    app: CurrentApp,
    request: Request,
    message: Message = None,
    draft: Draft = False,
    body: dict[str, Any] = Body(
        description="A reason, offer, audience, experience or experiment, as in the flows file."
    ),
    if_match: IfMatch = None,
) -> FlowsSaved:
    check = offer_check(request.app.state.services)
    return _applied(
        _guarded(
            lambda expected: service.put_item(
                db,
                app,
                kind,
                item_id,
                body,
                offer_check=check,
                author=api_author(request),
                message=message,
                draft=draft,
                expected=expected,
            ),
            if_match,
        )
    )


@router.delete("/{kind}/{item_id}", response_model=FlowsSaved, summary="Delete one item")
def delete_item(
    kind: Kind,
    item_id: str,
    db: DB,
    app: CurrentApp,
    request: Request,
    message: Message = None,
    draft: Draft = False,
    if_match: IfMatch = None,
) -> FlowsSaved:
    return _applied(
        _guarded(
            lambda expected: service.delete_item(
                db,
                app,
                kind,
                item_id,
                author=api_author(request),
                message=message,
                draft=draft,
                expected=expected,
            ),
            if_match,
        )
    )


__all__ = ["FlowsApplied", "router"]
