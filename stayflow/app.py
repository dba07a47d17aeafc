"""The FastAPI application factory."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match
from starlette.types import Receive, Scope, Send

from stayflow import __version__
from stayflow.admin.endpoints import install as install_admin
from stayflow.admin.reports_pages import router as reports_pages_router
from stayflow.apps.endpoints import router as apps_router
from stayflow.attribution.endpoints import router as attribution_router
from stayflow.billing.actions.endpoints import router as billing_actions_router
from stayflow.billing.endpoints import router as billing_router
from stayflow.cancel_sessions.appcache import PrecancelApps
from stayflow.cancel_sessions.endpoints import MAX_BODY_BYTES as PRECANCEL_MAX_BYTES
from stayflow.cancel_sessions.endpoints import Precancel
from stayflow.cancel_sessions.endpoints import admin_router as cancel_sessions_admin_router
from stayflow.cancel_sessions.endpoints import public_router as precancel_router
from stayflow.cancel_sessions.fastpath import PrecancelRoute, handles
from stayflow.cancel_sessions.writer import SessionWriter
from stayflow.crypto import Encryptor
from stayflow.db import make_engine, make_session_factory
from stayflow.enrichment.endpoints import router as enrichment_router
from stayflow.enrichment.enricher import StripeEnricher
from stayflow.errors import StayflowError
from stayflow.flows.endpoints import router as flows_router
from stayflow.jobs.registry import load_handlers
from stayflow.jobs.worker import Worker
from stayflow.mirror.endpoints import MAX_WEBHOOK_BYTES
from stayflow.mirror.endpoints import router as mirror_router
from stayflow.ops.docs import install_docs
from stayflow.ops.endpoints import router as ops_router
from stayflow.ops.input_limits import InputLimits
from stayflow.ops.metrics import Metrics
from stayflow.ops.middleware import RequestContextMiddleware
from stayflow.ops.openapi import install_openapi
from stayflow.page.endpoints import MAX_ACTION_BYTES as PAGE_ACTION_MAX_BYTES
from stayflow.page.endpoints import router as page_router
from stayflow.reports.endpoints import router as reports_router
from stayflow.settings import Settings
from stayflow.webhooks.endpoints import router as webhooks_router

log = logging.getLogger("stayflow.app")


def _error(status: int, type_: str, message: str, details: Any = None) -> JSONResponse:
    body: dict[str, Any] = {"type": type_, "message": message}
    if details is not None:
        body["details"] = details
    return JSONResponse({"error": body}, status_code=status)


_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


def allowed_methods(request: Request) -> list[str]:
    """Every method some route serves at this path (Starlette's 405 names at most one route's).

    Each method is probed against the router with a throwaway scope, which works whatever
    way the router nests its included routers.
    """
    path, root_path = request.scope["path"], request.scope.get("root_path", "")

    def served(method: str) -> bool:
        for route in request.app.router.routes:
            probe = {"type": "http", "path": path, "root_path": root_path, "method": method}
            if route.matches(probe)[0] == Match.FULL:
                return True
        return False

    return [method for method in _METHODS if served(method)]


def _validation_message(first: dict[str, Any]) -> str:
    """One line naming what is wrong where; the body as a whole said in words, not ``0:``."""
    loc, kind = first["loc"], first.get("type")
    if kind == "json_invalid":
        at = loc[1] if len(loc) > 1 and isinstance(loc[1], int) else None
        where = f" (at character {at})" if at is not None else ""
        return f"the request body is not valid JSON{where}"
    if loc == ["body"]:
        if kind == "missing":
            return (
                "the request body is missing: send a JSON object (Content-Type: application/json)"
            )
        if kind in ("model_attributes_type", "dict_type"):
            return "the request body must be a JSON object (Content-Type: application/json)"
    where = ".".join(str(p) for p in loc if p != "body") or "request"
    return f"{where}: {first['msg']}"


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(StayflowError)
    async def stayflow_error(_request: Request, exc: StayflowError) -> JSONResponse:
        return JSONResponse(exc.to_body(), status_code=exc.status_code)

    @app.exception_handler(RequestValidationError)
    async def validation_error(_request: Request, exc: RequestValidationError) -> JSONResponse:
        details = [
            {"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")}
            for e in exc.errors()
        ]
        first = details[0] if details else {"loc": [], "msg": "invalid request"}
        return _error(422, "invalid_request", _validation_message(first), details)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        type_ = {401: "unauthorized", 403: "forbidden", 404: "not_found", 405: "method_not_allowed"}
        response = _error(
            exc.status_code, type_.get(exc.status_code, "http_error"), str(exc.detail)
        )
        if exc.status_code == 405:
            response.headers["Allow"] = ", ".join(allowed_methods(request))
        return response

    @app.exception_handler(Exception)
    async def unexpected(_request: Request, exc: Exception) -> JSONResponse:
        log.exception("http.unhandled", exc_info=exc)
        return _error(500, "internal", "internal error; the request id is in X-Request-ID")


class StayflowAPI(FastAPI):
    """FastAPI, with precancel's own route in front of the middleware stack.

    ``POST /precancel`` (every click on a Cancel link) goes to ``precancel_route``, which
    does the middleware's work itself (see cancel_sessions/fastpath.py); set it to None and
    the request takes the framework's way like every other.
    """

    precancel_route: PrecancelRoute | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        route = self.precancel_route
        if route is not None and handles(scope):
            await route(scope, receive, send)
            return
        await super().__call__(scope, receive, send)


def create_app(
    settings: Settings, *, run_worker: bool = False, precancel_fast_path: bool = True
) -> FastAPI:
    """Build the app. ``run_worker`` runs an in-process job worker for its lifetime."""
    settings = settings.ensure_secret_key()
    engine = make_engine(settings)
    session_factory = make_session_factory(engine)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        worker: Worker | None = None
        if run_worker:
            worker = Worker(
                session_factory,
                concurrency=settings.worker_concurrency,
                lane_concurrency=settings.worker_lane_concurrency,
                poll_interval=settings.worker_poll_interval,
                lease_seconds=settings.job_lease_seconds,
                services=app.state.services,
                registry=load_handlers(settings.job_module_list),
            )
            worker.start()
        app.state.worker = worker
        try:
            yield
        finally:
            if worker is not None:
                worker.stop()
            engine.dispose()

    app = StayflowAPI(
        title="stayflow",
        version=__version__,
        description="Cancel flows and retention for Stripe Billing, self-hosted.",
        lifespan=lifespan,
        # Served by stayflow.ops.docs from packaged assets, not from a CDN.
        docs_url=None,
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.engine = engine
    app.state.session_factory = session_factory
    app.state.encryptor = Encryptor(settings.secret_key)
    app.state.services = {"settings": settings, "encryptor": app.state.encryptor}
    app.state.services["enricher"] = StripeEnricher(settings, app.state.encryptor, session_factory)
    app.state.metrics = Metrics(session_factory)
    app.state.worker = None
    install_error_handlers(app)
    install_openapi(app)
    app.state.precancel_apps = PrecancelApps(session_factory, app.state.encryptor)
    app.state.precancel_writer = SessionWriter(engine)
    app.state.precancel = Precancel(settings, app.state.precancel_apps, app.state.precancel_writer)
    if precancel_fast_path:
        # In front of the middleware below: it does their work itself, with the same
        # functions (cancel_sessions/fastpath.py).
        app.precancel_route = PrecancelRoute(app.state.precancel, app.state.metrics)
    # Inside the request-id middleware (refusals get an id too).
    app.add_middleware(
        InputLimits,
        caps=[
            ("/precancel", PRECANCEL_MAX_BYTES),
            ("/c/", PAGE_ACTION_MAX_BYTES),
            ("/stripe/webhooks/", MAX_WEBHOOK_BYTES),
        ],
        envelopes=[("/precancel", {"valid": False})],
    )
    app.add_middleware(RequestContextMiddleware, metrics=app.state.metrics)
    app.include_router(ops_router)
    install_docs(app)
    app.include_router(apps_router)
    app.include_router(billing_router)
    app.include_router(billing_actions_router)
    app.include_router(enrichment_router)
    app.include_router(mirror_router)
    app.include_router(attribution_router)
    app.include_router(reports_router)
    app.include_router(reports_pages_router)
    app.include_router(precancel_router)
    app.include_router(cancel_sessions_admin_router)
    app.include_router(flows_router)
    app.include_router(page_router)
    app.include_router(webhooks_router)
    install_admin(app)
    return app
