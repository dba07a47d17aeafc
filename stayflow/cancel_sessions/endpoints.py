"""Precancel (public, CORS per app), the snippet, and the admin API for sessions and settings."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal, NamedTuple

from fastapi import APIRouter, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from sqlalchemy.exc import IntegrityError

from stayflow.cancel_sessions import repository, service
from stayflow.cancel_sessions import settings as flow_settings
from stayflow.cancel_sessions.appcache import AppInfo, PrecancelApps
from stayflow.cancel_sessions.models import OUTCOMES
from stayflow.cancel_sessions.schemas import (
    CancelSessionList,
    CancelSessionOut,
    PrecancelError,
    PrecancelOk,
    PrecancelRequest,
)
from stayflow.cancel_sessions.settings import CancelFlowSettings, CancelFlowSettingsPatch
from stayflow.cancel_sessions.writer import SessionWriter
from stayflow.db import utcnow
from stayflow.deps import DB, CurrentApp, SettingsDep
from stayflow.errors import BadRequest, NotFound
from stayflow.settings import Settings

log = logging.getLogger("stayflow.precancel")
public_router = APIRouter(tags=["precancel"])
admin_router = APIRouter(prefix="/api/v1", tags=["cancel sessions"])

MAX_BODY_BYTES = 20_000
SNIPPET_PATH = Path(__file__).parent / "static" / "stayflow.js"
_PRECANCEL_BODY = {
    "requestBody": {
        "required": True,
        "description": "JSON. Sent as text/plain by the snippet so browsers skip the preflight.",
        "content": {
            "application/json": {"schema": PrecancelRequest.model_json_schema()},
            "text/plain": {"schema": {"type": "string"}},
        },
    }
}


def parse_body(body: bytes) -> dict[str, Any]:
    if len(body) > MAX_BODY_BYTES:
        raise service.PrecancelRejected(f"the body is larger than {MAX_BODY_BYTES} bytes")
    try:
        parsed = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise service.PrecancelRejected("the body must be a JSON object") from exc
    if not isinstance(parsed, dict):
        raise service.PrecancelRejected("the body must be a JSON object")
    return parsed


def _cors_headers(origin: str | None, allowed: bool) -> dict[str, str]:
    headers = {"Vary": "Origin"}
    if origin and allowed:
        headers["Access-Control-Allow-Origin"] = origin
        # Brightback's script posts with credentials; the origin is echoed, never "*".
        headers["Access-Control-Allow-Credentials"] = "true"
    return headers


class Precancel:
    """What precancel needs besides the request: the app cache, the writer, the base URL.

    One per app (``app.state.precancel``), shared by the framework's route below and by
    precancel's own route (``fastpath.py``), which both call ``start``.
    """

    def __init__(self, settings: Settings, apps: PrecancelApps, writer: SessionWriter) -> None:
        self.base_url = settings.base_url
        self.secret_key = settings.secret_key
        self.apps = apps
        self.writer = writer

    async def app_info(self, app_id: Any) -> AppInfo | None:
        if not isinstance(app_id, str) or not app_id or len(app_id) > 40:
            return None
        hit, info = self.apps.cached(app_id)
        if hit:
            return info
        return await run_in_threadpool(self.apps.load, app_id)

    async def start(self, body: bytes, origin: str | None, query_app: str | None) -> Answer:
        """Check the request, store its session; the answer (200, or a refusal) to send.

        Checks run on the event loop, the one INSERT in the writer's thread."""
        info: AppInfo | None = None
        try:
            data = parse_body(body)
            if query_app is not None and query_app != data.get("app_id"):
                raise service.PrecancelRejected("app_id in the URL and in the body differ")
            try:
                parsed = PrecancelRequest.model_validate(data)
            except ValidationError as exc:
                error = exc.errors()[0]
                where = ".".join(str(p) for p in error.get("loc", ())) or "body"
                raise service.PrecancelRejected(f"{where}: {error.get('msg', 'invalid')}") from exc
            info = await self.app_info(parsed.app_id)
            row, token = service.prepare_session(info, parsed, origin, utcnow())
            try:
                await self.writer.write(row)
            except IntegrityError as exc:
                # The app was deleted after its settings were cached (they live a few seconds
                # in each process): its sessions' foreign key refuses the row.
                raise service.UnknownApp("unknown app_id") from exc
        except service.PrecancelRejected as exc:
            allowed = info is not None and service.check_origin(info.settings, origin)
            # The browser only falls back to the link's href: without this line a business
            # whose origin or signature is wrong has nothing to look at.
            log.warning(
                "precancel.refused",
                extra={
                    "reason": exc.error_type,
                    "detail": exc.message,
                    "app_id": info.app_id if info is not None else None,
                    "origin": origin,
                    "status": exc.status_code,
                },
            )
            return Answer(exc.status_code, exc.to_body(), allowed)
        url = f"{self.base_url}/c/{token}"
        content = {"valid": True, "url": url, "message": url, "session_id": row["session_id"]}
        if row["embed_origin"]:
            # The modal's frame proves it belongs to this session with this nonce.
            content["embed_nonce"] = service.embed_nonce(self.secret_key, row["token_hash"])
        return Answer(200, content, origin is not None)


class Answer(NamedTuple):
    status: int
    content: dict[str, Any]
    # Whether the request's origin may read the answer (CORS headers echo it).
    cors: bool


def precancel_state(state: Any) -> Precancel:
    """The app's ``Precancel``, made on first use (an app built without ``create_app``)."""
    found: Precancel | None = getattr(state, "precancel", None)
    if found is None:
        apps = getattr(state, "precancel_apps", None) or PrecancelApps(
            state.session_factory, state.encryptor
        )
        writer = getattr(state, "precancel_writer", None) or SessionWriter(state.engine)
        state.precancel_apps, state.precancel_writer = apps, writer
        found = state.precancel = Precancel(state.settings, apps, writer)
    return found


def _apps(request: Request) -> PrecancelApps:
    return precancel_state(request.app.state).apps


async def _app_info(request: Request, app_id: Any) -> AppInfo | None:
    return await precancel_state(request.app.state).app_info(app_id)


@public_router.post(
    "/precancel",
    summary="Start a cancel session (called by the snippet)",
    response_model=PrecancelOk,
    responses={
        400: {
            "model": PrecancelError,
            "description": "Refused: bad input, signature, origin or redirect (error.type).",
        },
        404: {"model": PrecancelError, "description": "Unknown app_id."},
    },
    openapi_extra=_PRECANCEL_BODY,
)
async def precancel(request: Request) -> JSONResponse:
    """The framework's route; ``POST /precancel`` normally takes precancel's own route
    (``fastpath.py``), which answers the same bytes (tests/cancel_flow/test_fastpath.py)."""
    origin = request.headers.get("origin")
    answer = await precancel_state(request.app.state).start(
        await request.body(), origin, request.query_params.get("app_id")
    )
    return JSONResponse(answer.content, answer.status, headers=_cors_headers(origin, answer.cors))


@public_router.options("/precancel", include_in_schema=False)
async def precancel_preflight(request: Request) -> Response:
    """CORS preflight.

    With ``?app_id=`` (our snippet): allowed for that app's origins only. Without it
    (Brightback's script, whose app_id is only in the JSON body): allowed for the asking
    origin, because the preflight cannot know the app; the POST then checks the origin
    against the app named in its body and answers without CORS headers when it is not
    allowed, so the browser never hands the answer to the page.
    """
    origin = request.headers.get("origin")
    app_id = request.query_params.get("app_id")
    info: AppInfo | None = None
    if app_id is None:
        allowed = bool(origin)
    else:
        info = await _app_info(request, app_id)
        allowed = bool(origin) and info is not None and service.check_origin(info.settings, origin)
    headers = _cors_headers(origin, allowed)
    if not allowed:
        log.warning(
            "precancel.preflight_refused",
            extra={
                "reason": "no_origin"
                if not origin
                else "unknown_app"
                if info is None
                else "origin_not_allowed",
                "app_id": info.app_id if info is not None else None,
                "origin": origin,
            },
        )
    if allowed:
        headers.update(
            {
                "Access-Control-Allow-Methods": "POST",
                "Access-Control-Allow-Headers": "Content-Type",
                "Access-Control-Max-Age": "600",
            }
        )
        headers["Vary"] = "Origin, Access-Control-Request-Headers"
    return Response(status_code=204, headers=headers)


@lru_cache(maxsize=4)
def _snippet(base_url: str) -> str:
    return SNIPPET_PATH.read_text(encoding="utf-8").replace(
        '"__STAYFLOW_BASE_URL__"', json.dumps(base_url)
    )


@public_router.get(
    "/js/stayflow.js",
    summary="The snippet a business puts beside its Cancel link",
    response_class=Response,
    responses={200: {"content": {"application/javascript": {}}}},
)
def snippet(settings: SettingsDep) -> Response:
    return _snippet_response(settings)


@public_router.get(
    "/js/current/brightback.js",
    summary="The snippet at Brightback's path, so moving over changes only the host",
    response_class=Response,
    responses={200: {"content": {"application/javascript": {}}}},
)
def snippet_brightback_path(settings: SettingsDep) -> Response:
    return _snippet_response(settings)


@public_router.get(
    "/js/current/",
    summary="The snippet at Brightback's other path (?compiled=true or not)",
    response_class=Response,
    responses={200: {"content": {"application/javascript": {}}}},
)
def snippet_brightback_dir(
    settings: SettingsDep,
    compiled: str | None = Query(None, max_length=10, description="Accepted and ignored."),
) -> Response:
    return _snippet_response(settings)


def _snippet_response(settings: Any) -> Response:
    return Response(
        _snippet(settings.base_url),
        media_type="application/javascript; charset=utf-8",
        headers={"Cache-Control": "public, max-age=300", "X-Content-Type-Options": "nosniff"},
    )


# --- admin --------------------------------------------------------------------


@admin_router.get("/cancel-flow/settings", response_model=CancelFlowSettings)
def get_settings(app: CurrentApp) -> CancelFlowSettings:
    return flow_settings.read(app)


@admin_router.patch("/cancel-flow/settings", response_model=CancelFlowSettings)
def patch_settings(
    body: CancelFlowSettingsPatch, app: CurrentApp, db: DB, request: Request
) -> CancelFlowSettings:
    try:
        new = flow_settings.write(app, body.model_dump(exclude_unset=True, exclude_none=True))
        # Commit now, then drop the cached copy, so precancel never re-reads the old one.
        db.commit()
        _apps(request).invalidate(app.app_id)
        return new
    except ValidationError as exc:
        error = exc.errors()[0]
        where = ".".join(str(p) for p in error.get("loc", ()))
        msg = str(error.get("msg", "invalid")).removeprefix("Value error, ")
        raise BadRequest(f"{where}: {msg}") from exc


def _aware(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


@admin_router.get("/cancel-sessions", response_model=CancelSessionList)
def list_sessions(
    db: DB,
    app: CurrentApp,
    outcome: Literal["saved", "deflected", "canceled", "redirected", "abandoned", "open"]
    | None = Query(None, description="'open': no outcome yet."),
    created_after: datetime | None = Query(None, description="Inclusive."),
    created_before: datetime | None = Query(None, description="Exclusive."),
    starting_after: str | None = Query(None, max_length=40, description="A session_id."),
    limit: int = Query(20, ge=1, le=100),
) -> CancelSessionList:
    before_pk = None
    if starting_after is not None:
        cursor = repository.get(db, app, starting_after)
        if cursor is None:
            raise NotFound(f"no cancel session {starting_after!r}")
        before_pk = cursor.id
    assert outcome is None or outcome == "open" or outcome in OUTCOMES
    rows = repository.list_sessions(
        db,
        app,
        outcome=None if outcome in (None, "open") else outcome,
        open_only=outcome == "open",
        created_after=_aware(created_after),
        created_before=_aware(created_before),
        before_pk=before_pk,
        limit=limit + 1,
    )
    return CancelSessionList(
        data=[CancelSessionOut.model_validate(r) for r in rows[:limit]],
        has_more=len(rows) > limit,
    )


@admin_router.get("/cancel-sessions/{session_id}", response_model=CancelSessionOut)
def get_session(session_id: str, db: DB, app: CurrentApp) -> CancelSessionOut:
    from stayflow.page import i18n
    from stayflow.page.result import describe

    found = repository.get(db, app, session_id)
    if found is None:
        raise NotFound(f"no cancel session {session_id!r}")
    out = CancelSessionOut.model_validate(found)
    if found.finished:
        out.result = describe(db, found, i18n.negotiate(found.locale, None))
    return out
