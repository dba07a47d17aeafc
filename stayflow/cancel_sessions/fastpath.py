"""Precancel's own route, in front of everything else.

Every click on a Cancel link is a ``POST /precancel``. Profiled under load (py-spy, with
bench/precancel.py), the framework's layers around the endpoint (FastAPI's telemetry check
and middleware stack, Starlette's router, the request/response wrappers, a closure per
middleware per request) cost more per request than precancel's own checks and signing.
So the app hands ``POST /precancel`` to this route before its middleware stack
(``StayflowAPI.__call__`` in app.py), and the route does itself, through the same functions,
what the middleware would have done:

- the request id and the access line and metrics (``stayflow.ops.middleware``),
- the input checks: NULs in the target, the body cap while reading, the body's NULs,
  depth and non-finite numbers (``stayflow.ops.input_limits``),
- the endpoint: ``Precancel.start`` (``endpoints.py``), which the framework's route calls
  too,
- the answer: the bytes ``JSONResponse`` would send, headers in the same order.

It reads the raw headers once, makes no wrapper objects, and keeps its constant headers
prebuilt. Every other request, and this one when the app has a ``root_path``, goes the
framework's way. tests/cancel_flow/test_fastpath.py sends the same requests both ways and
compares status, headers and body byte for byte.
"""

from __future__ import annotations

import json
import time
from typing import Any

from starlette.datastructures import QueryParams
from starlette.requests import Request
from starlette.types import Receive, Scope, Send

from stayflow.cancel_sessions.endpoints import MAX_BODY_BYTES, Answer, Precancel
from stayflow.errors import StayflowError
from stayflow.logs import request_id_var
from stayflow.ops.input_limits import (
    MAX_JSON_DEPTH,
    Refusal,
    check_body,
    head_refusal,
    read_capped,
    refusal_answer,
)
from stayflow.ops.metrics import UNMATCHED, Metrics
from stayflow.ops.middleware import (
    internal_error_body,
    internal_error_start,
    log_unhandled,
    request_done,
    request_id_from,
)

PATH = "/precancel"
METHOD = "POST"
# What InputLimits adds to its refusals on this path (see app.py).
ENVELOPE = {"valid": False}

_CONTENT_TYPE = (b"content-type", b"application/json")
_VARY = (b"vary", b"Origin")
_CREDENTIALS = (b"access-control-allow-credentials", b"true")


def handles(scope: Scope) -> bool:
    """Is this request precancel's own route's to answer?"""
    return (
        scope["type"] == "http"
        and scope["path"] == PATH
        and scope["method"] == METHOD
        and not scope.get("root_path")
    )


def _render(content: dict[str, Any]) -> bytes:
    # As starlette's JSONResponse renders.
    return json.dumps(
        content, ensure_ascii=False, allow_nan=False, indent=None, separators=(",", ":")
    ).encode("utf-8")


class PrecancelRoute:
    def __init__(self, precancel: Precancel, metrics: Metrics, cap: int = MAX_BODY_BYTES) -> None:
        self.precancel = precancel
        self.metrics = metrics
        self.cap = cap

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        # One pass over the raw headers. As the layers it replaces read them: the request id
        # and Origin are the first of their name (Starlette's Headers.get), the body's headers
        # the last (InputLimits reads them through a dict).
        incoming_id: bytes | None = None
        origin_raw: bytes | None = None
        length: bytes | None = None
        content_type = b""
        transfer = b""
        for name, value in scope["headers"]:
            if name == b"content-length":
                length = value
            elif name == b"origin":
                if origin_raw is None:
                    origin_raw = value
            elif name == b"content-type":
                content_type = value
            elif name == b"x-request-id":
                if incoming_id is None:
                    incoming_id = value
            elif name == b"transfer-encoding":
                transfer = value
        request_id = request_id_from(incoming_id)
        token = request_id_var.set(request_id)
        responded = False
        status = 500
        # Refused at the edge, the request never reached a route: counted and logged as
        # "unmatched", as the middleware does (its route is set by the router).
        template = UNMATCHED

        async def answer(code: int, headers: list[tuple[bytes, bytes]], body: bytes) -> None:
            nonlocal responded, status
            headers.append((b"x-request-id", request_id.encode()))
            status = code
            responded = True
            await send({"type": "http.response.start", "status": code, "headers": headers})
            await send({"type": "http.response.body", "body": body})

        try:
            refused = head_refusal(PATH, scope.get("query_string", b""), length, self.cap)
            if refused is not None:
                headers, payload = refusal_answer(
                    PATH, refused[0], ENVELOPE, unread_body=refused[1]
                )
                await answer(refused[0].status, headers, payload)
                return
            if length is None and b"chunked" not in transfer.lower():
                template = PATH
                # No body announced: the checks have nothing to look at (as InputLimits);
                # read what there is the way the framework's route does.
                body = await Request(scope, receive).body()
            else:
                read = await read_capped(receive, self.cap)
                if read is None:
                    return  # the client went away: nothing to answer (counted as a 500)
                if isinstance(read, Refusal):
                    headers, payload = refusal_answer(PATH, read, ENVELOPE, unread_body=True)
                    await answer(read.status, headers, payload)
                    return
                why = check_body(read, content_type.decode("latin-1"), MAX_JSON_DEPTH)
                if why is not None:
                    refusal = Refusal(400, "invalid_request", why)
                    headers, payload = refusal_answer(PATH, refusal, ENVELOPE, unread_body=False)
                    await answer(400, headers, payload)
                    return
                body = read
            template = PATH
            query = scope.get("query_string", b"")
            query_app = QueryParams(query).get("app_id") if query else None
            origin = origin_raw.decode("latin-1") if origin_raw is not None else None
            try:
                result: Answer = await self.precancel.start(body, origin, query_app)
            except StayflowError as exc:  # as the app's error handler answers it
                payload = _render(exc.to_body())
                await answer(
                    exc.status_code,
                    [(b"content-length", str(len(payload)).encode()), _CONTENT_TYPE],
                    payload,
                )
                return
            payload = _render(result.content)
            headers = [_VARY]
            if origin_raw and result.cors:  # as _cors_headers: a non-empty origin, allowed
                # Brightback's script posts with credentials; the origin is echoed, never "*".
                headers.append((b"access-control-allow-origin", origin_raw))
                headers.append(_CREDENTIALS)
            headers.append((b"content-length", str(len(payload)).encode()))
            headers.append(_CONTENT_TYPE)
            await answer(result.status, headers, payload)
        except Exception:
            log_unhandled(template)
            if responded:
                raise
            status = 500
            await send(internal_error_start(request_id))
            await send(internal_error_body())
        finally:
            request_done(self.metrics, METHOD, template, status, started)
            request_id_var.reset(token)
