"""Checks every request passes before any route sees it (a plain ASGI middleware).

- Body caps, per path prefix, enforced while reading: a ``Content-Length`` over the cap is
  refused before a byte of the body is read, and a streamed body is refused as soon as it
  passes the cap (413), so no route ever holds more than its cap in memory.
- No NUL byte anywhere: in the path, the query string, a form field or a JSON string
  (PostgreSQL cannot store one in text). No lone UTF-16 surrogate in JSON strings either
  (it cannot be encoded as UTF-8). Both 400.
- JSON bodies nest at most ``MAX_JSON_DEPTH`` levels (400): deeper documents crash the
  parser (RecursionError) or, stored, every later serialization of the row.

The routes still parse their own bodies; this only guarantees that what they parse is
bounded and storable, whatever the route or the content type.
"""

from __future__ import annotations

import json
import logging
import math
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote_to_bytes

from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger("stayflow.http")

MAX_JSON_DEPTH = 32
DEFAULT_BODY_CAP = 2_000_000

_JSON_STRING = re.compile(r'"(?:[^"\\]|\\.)*"', re.S)
_BRACKETS = re.compile(r"[\[\]{}]")
_NON_FINITE = re.compile(r"-?\b(?:NaN|Infinity)\b")


@dataclass(frozen=True)
class Refusal:
    status: int
    type: str
    message: str


def json_too_deep(text: str, limit: int = MAX_JSON_DEPTH) -> bool:
    """True when ``text`` (JSON or not) opens more than ``limit`` brackets at once.

    Iterative, so any depth is measured without recursion; brackets inside strings
    do not count.
    """
    if text.count("[") + text.count("{") <= limit:
        return False
    depth = 0
    for bracket in _BRACKETS.findall(_JSON_STRING.sub("", text)):
        if bracket in "[{":
            depth += 1
            if depth > limit:
                return True
        else:
            depth -= 1
    return False


def unstorable_string(value: Any) -> str | None:
    """Why a parsed JSON value cannot be stored as text, or None (iterative walk)."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, str):
            if "\x00" in item:
                return "a string contains a NUL character (\\u0000)"
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                return "a string contains an unpaired UTF-16 surrogate"
    return None


def check_json_text(text: str, limit: int = MAX_JSON_DEPTH) -> str | None:
    """Why a JSON(-looking) body is refused, or None. Cheap unless it has ``\\u`` escapes."""
    if "\x00" in text:
        return "the body contains a NUL byte"
    if json_too_deep(text, limit):
        return f"the JSON body nests deeper than {limit} levels"
    if ("NaN" in text or "Infinity" in text) and _NON_FINITE.search(_JSON_STRING.sub("", text)):
        return "NaN and Infinity are not JSON numbers"
    if "\\u" in text:
        # Only escapes can smuggle NUL or lone surrogates into a string: decode and look.
        # Depth is already bounded, so the parser cannot recurse too far.
        try:
            parsed = json.loads(text)
        except ValueError:
            return None  # not JSON: the route says so in its own words
        return unstorable_string(parsed)
    return None


def check_body(body: bytes, content_type: str, limit: int = MAX_JSON_DEPTH) -> str | None:
    """Why a request body is refused, or None."""
    if not body:
        return None
    media = content_type.split(";", 1)[0].strip().lower()
    if media == "application/x-www-form-urlencoded":
        if b"\x00" in unquote_to_bytes(body.replace(b"+", b" ")):
            return "a form field contains a NUL character"
        return None
    if media.startswith("multipart/"):
        return "a form field contains a NUL character" if b"\x00" in body else None
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        return "the body is not UTF-8"
    return check_json_text(text, limit)


def check_target(path: str, query_string: bytes) -> str | None:
    if "\x00" in path:
        return "the path contains a NUL character"
    if b"\x00" in query_string or b"%00" in query_string:
        return "the query string contains a NUL character"
    if b"%" in query_string:
        try:
            unquote_to_bytes(query_string).decode("utf-8")
        except UnicodeDecodeError:
            return "the query string is not UTF-8"
    return None


def head_refusal(
    path: str, query_string: bytes, length_header: bytes | None, cap: int
) -> tuple[Refusal, bool] | None:
    """What is wrong before the body is read: (refusal, body left unread), or None."""
    why = check_target(path, query_string)
    if why is not None:
        return Refusal(400, "invalid_request", why), False
    if length_header is not None:
        try:
            length = int(length_header)
        except ValueError:
            return Refusal(400, "invalid_request", "Content-Length is not a number"), False
        if length > cap:
            return _too_large(cap), True
    return None


async def read_capped(receive: Receive, cap: int) -> bytes | Refusal | None:
    """The whole body, or a 413 refusal as soon as it passes ``cap`` (the rest left unread),
    or None when the client went away."""
    message = await receive()
    if message["type"] == "http.disconnect":
        return None
    body = message.get("body", b"")
    if len(body) > cap:
        return _too_large(cap)
    if not message.get("more_body", False):
        return bytes(body)  # one message: the common case, no copy into a buffer
    buffer = bytearray(body)
    more = True
    while more:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        buffer.extend(message.get("body", b""))
        if len(buffer) > cap:
            return _too_large(cap)
        more = message.get("more_body", False)
    return bytes(buffer)


def refusal_answer(
    path: str, refusal: Refusal, envelope: dict[str, Any] | None, *, unread_body: bool
) -> tuple[list[tuple[bytes, bytes]], bytes]:
    """Log a refusal; the headers and JSON body that answer it."""
    log.info(
        "http.refused",
        extra={"path": path, "status": refusal.status, "reason": refusal.message},
    )
    content: dict[str, Any] = dict(envelope or {})
    if "valid" in content:  # precancel: Brightback's refusal shape, beside our error
        content["message"] = refusal.message
    content["error"] = {"type": refusal.type, "message": refusal.message}
    payload = json.dumps(content).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(payload)).encode()),
    ]
    if unread_body:
        # The rest of the body was never read: the connection cannot be reused.
        headers.append((b"connection", b"close"))
    return headers, payload


class InputLimits:
    """The ASGI middleware: refuse what no route may see (see the module docstring).

    Precancel's own route runs the same checks through the functions above
    (``head_refusal``, ``read_capped``, ``check_body``, ``refusal_answer``)."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        caps: Iterable[tuple[str, int]] = (),
        default_cap: int = DEFAULT_BODY_CAP,
        max_depth: int = MAX_JSON_DEPTH,
        envelopes: Iterable[tuple[str, dict[str, Any]]] = (),
    ) -> None:
        self.app = app
        # Longest prefix first, so "/precancel" beats "/".
        self.caps = sorted(caps, key=lambda item: len(item[0]), reverse=True)
        self.default_cap = default_cap
        self.max_depth = max_depth
        self.envelopes = list(envelopes)

    def cap_for(self, path: str) -> int:
        for prefix, cap in self.caps:
            if path.startswith(prefix):
                return cap
        return self.default_cap

    def envelope_for(self, path: str) -> dict[str, Any] | None:
        for prefix, envelope in self.envelopes:
            if path.startswith(prefix):
                return envelope
        return None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        # Like a dict of the headers: the last of a repeated header counts.
        headers = {name: value for name, value in scope.get("headers", [])}
        length_header = headers.get(b"content-length")
        chunked = b"chunked" in headers.get(b"transfer-encoding", b"").lower()
        cap = self.cap_for(path)
        refused = head_refusal(path, scope.get("query_string", b""), length_header, cap)
        if refused is not None:
            await self._refuse(scope, send, refused[0], unread_body=refused[1])
            return
        if length_header is None and not chunked:
            await self.app(scope, receive, send)
            return
        body = await read_capped(receive, cap)
        if body is None:
            return
        if isinstance(body, Refusal):
            await self._refuse(scope, send, body, unread_body=True)
            return
        content_type = headers.get(b"content-type", b"").decode("latin-1")
        why = check_body(body, content_type, self.max_depth)
        if why is not None:
            await self._refuse(scope, send, Refusal(400, "invalid_request", why))
            return
        await self.app(scope, _replay(body, receive), send)

    async def _refuse(
        self, scope: Scope, send: Send, refusal: Refusal, *, unread_body: bool = False
    ) -> None:
        path = scope["path"]
        headers, payload = refusal_answer(
            path, refusal, self.envelope_for(path), unread_body=unread_body
        )
        await send({"type": "http.response.start", "status": refusal.status, "headers": headers})
        await send({"type": "http.response.body", "body": payload})


def _too_large(cap: int) -> Refusal:
    return Refusal(413, "payload_too_large", f"the body is larger than {cap} bytes")


def _replay(body: bytes, receive: Receive) -> Receive:
    """A ``receive`` that hands the route the body already read, then the real stream."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


CLIPPED = "[nested too deep]"


def json_safe(value: Any, limit: int = MAX_JSON_DEPTH) -> Any:
    """A copy of a stored JSON value that always serializes: containers deeper than ``limit``
    become ``CLIPPED`` and non-finite numbers ``None``. For reading rows stored before the
    edge checks existed, so one odd row never breaks a listing."""

    def clip(item: Any, depth: int) -> Any:
        if isinstance(item, dict | list) and depth >= limit:
            return CLIPPED
        if isinstance(item, dict):
            return {str(k): clip(v, depth + 1) for k, v in item.items()}
        if isinstance(item, list | tuple):
            return [clip(v, depth + 1) for v in item]
        if isinstance(item, float) and not math.isfinite(item):
            return None
        return item

    return clip(value, 0)
