"""Request id and metrics as a plain ASGI middleware (BaseHTTPMiddleware costs too much)."""

from __future__ import annotations

import itertools
import json
import logging
import os
import re
import time
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from stayflow.logs import request_id_var
from stayflow.ops.metrics import Metrics, route_template

log = logging.getLogger("stayflow.http")
_VALID_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
_INTERNAL_ERROR = json.dumps(
    {"error": {"type": "internal", "message": "internal error; the request id is in X-Request-ID"}}
).encode()


class _RequestIds:
    """Unique ids without a syscall per request: a random per-process prefix and a counter
    (uuid4 reads the OS's randomness each time, ~10% of precancel's CPU under load). Ids
    need to be unique, not unguessable; a forked child draws its own prefix."""

    def __init__(self) -> None:
        self.reset()
        os.register_at_fork(after_in_child=self.reset)

    def reset(self) -> None:
        self.prefix = os.urandom(8).hex()
        self.counter = itertools.count()

    def next(self) -> str:
        return f"{self.prefix}{next(self.counter):016x}"


_request_ids = _RequestIds()


def request_id_from(incoming: bytes | None) -> str:
    """The client's ``X-Request-ID`` value when it is a sane id, else a new id."""
    if incoming is not None:
        given = incoming.decode("latin-1")
        if _VALID_REQUEST_ID.match(given):
            return given
    return _request_ids.next()


def request_id_for(headers: list[tuple[bytes, bytes]]) -> str:
    """The id of a request with these headers (the first ``X-Request-ID`` counts)."""
    for name, value in headers:
        if name == b"x-request-id":
            return request_id_from(value)
    return _request_ids.next()


def log_unhandled(template: str) -> None:
    """Log the exception being handled (call from an ``except`` block)."""
    # The template, not the path: /c/{token} paths carry a subscriber's token.
    log.exception("http.unhandled", extra={"path": template})


def internal_error_start(request_id: str) -> Message:
    return {
        "type": "http.response.start",
        "status": 500,
        "headers": [(b"content-type", b"application/json"), (b"x-request-id", request_id.encode())],
    }


def internal_error_body() -> Message:
    return {"type": "http.response.body", "body": _INTERNAL_ERROR}


def request_done(metrics: Metrics, method: str, template: str, status: int, started: float) -> None:
    """Count the request and write its access line (under its request id, still set)."""
    metrics.observe(method, template, status, started)
    if log.isEnabledFor(logging.INFO):
        # One access line per request. The route template, never the path or query: page
        # paths carry tokens, and queries what a client sent.
        log.info(
            "http.request",
            extra={
                "method": method,
                "path": template,
                "status": status,
                "ms": round((time.perf_counter() - started) * 1000, 1),
            },
        )


class RequestContextMiddleware:
    """Request id (echoed in ``X-Request-ID``, set for log lines), metrics, the access line,
    and a 500 that still carries the request id. Precancel's own route does the same through
    the functions above (see cancel_sessions/fastpath.py)."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = request_id_for(scope.get("headers", []))
        token = request_id_var.set(request_id)
        started = time.perf_counter()
        status_holder: dict[str, Any] = {"status": 500}

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "http.response.start":
                status_holder["status"] = message["status"]
                status_holder["started"] = True
                headers = list(message.get("headers", []))
                headers.append((b"x-request-id", request_id.encode()))
                message["headers"] = headers
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        except Exception:
            # Answer here rather than in Starlette's outermost handler, so that the
            # response still carries the request id the log line is filed under.
            log_unhandled(route_template(scope))
            if "started" in status_holder:
                raise
            status_holder["status"] = 500
            await send(internal_error_start(request_id))
            await send(internal_error_body())
        finally:
            status = status_holder["status"]
            request_done(self.metrics, scope["method"], route_template(scope), status, started)
            request_id_var.reset(token)
