"""Precancel's own route, in front of the framework's router.

Every click on a Cancel link is a ``POST /precancel``. Profiled under load (py-spy, with
bench/precancel.py), FastAPI's layers between the middleware and the endpoint (matching
the path against every route, the exception middleware, the exit stack, the request/
response wrappers) cost more per request than the endpoint's own checks. This ASGI layer
answers ``POST /precancel`` by calling the endpoint function itself and passes every other
request on unchanged.

The route stays registered with FastAPI (the OpenAPI document, and the path taken when this
layer is not installed), so both paths run the same function; the request id, metrics and
the 500 answer still come from the middleware outside this one.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Awaitable, Callable

from starlette._utils import get_route_path
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from stayflow.cancel_sessions import endpoints
from stayflow.errors import StayflowError

log = logging.getLogger("stayflow.cancel_sessions.fastpath")

PATH = "/precancel"
Handler = Callable[[Request], Awaitable[Response]]


def _plain_handler() -> Handler | None:
    """The endpoint, when it takes only the request (no dependencies to resolve)."""
    handler = endpoints.precancel
    params = list(inspect.signature(handler).parameters.values())
    if len(params) == 1 and params[0].annotation in (Request, "Request"):
        return handler
    log.warning("cancel_sessions.fastpath_off", extra={"reason": "the endpoint has dependencies"})
    return None


class PrecancelRoute:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.handler = _plain_handler()
        self._route: object | None = None

    @property
    def active(self) -> bool:
        return self.handler is not None

    def _registered_route(self) -> object | None:
        """The endpoint's own route object, so metrics label the request as the router would
        (the public router is included without a prefix)."""
        if self._route is None:
            for route in endpoints.public_router.routes:
                if getattr(route, "path", None) == PATH and "POST" in getattr(route, "methods", ()):
                    self._route = route
                    break
        return self._route

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            self.handler is None
            or scope["type"] != "http"
            or scope["method"] != "POST"
            or get_route_path(scope) != PATH
        ):
            await self.app(scope, receive, send)
            return
        route = self._registered_route()
        if route is not None:
            scope["route"] = route
        try:
            response = await self.handler(Request(scope, receive))
        except StayflowError as exc:  # as the app's error handler answers it
            response = JSONResponse(exc.to_body(), status_code=exc.status_code)
        await response(scope, receive, send)
