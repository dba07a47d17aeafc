"""A small HTTP/1.1 server on asyncio + httptools (keep-alive, Content-Length bodies).

Why not an ASGI app under uvicorn: fault injection must be able to hang a request and to drop
a connection without answering, which ASGI cannot express, and the sandbox should be fast with
no framework in the path. Handling is synchronous under the emulator's lock; latency, hangs and
webhook deliveries are asynchronous, so a hanging request never blocks the others.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import socket
import time
from collections import deque
from typing import Any

import httptools
import httpx

from stayflow.sandbox.api import App, Prepared, Response, error_response
from stayflow.sandbox.emulator import Delivery, Emulator
from stayflow.sandbox.errors import api_error, rate_limited
from stayflow.sandbox.faults import Rule
from stayflow.sandbox.store import Obj

log = logging.getLogger("stayflow.sandbox")

_REASONS = {
    200: "OK",
    400: "Bad Request",
    401: "Unauthorized",
    402: "Payment Required",
    403: "Forbidden",
    404: "Not Found",
    409: "Conflict",
    429: "Too Many Requests",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
}
MAX_BODY = 1_000_000


def _encode(response: Response, keep_alive: bool) -> bytes:
    reason = _REASONS.get(response.status, "Unknown")
    lines = [
        f"HTTP/1.1 {response.status} {reason}",
        "Content-Type: application/json",
        f"Content-Length: {len(response.body)}",
        "Stripe-Version: 2026-10-28.endive",
        "Connection: keep-alive" if keep_alive else "Connection: close",
    ]
    lines.extend(f"{k}: {v}" for k, v in response.headers.items())
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + response.body


class _Request:
    __slots__ = ("body", "headers", "keep_alive", "method", "target")

    def __init__(self) -> None:
        self.method = ""
        self.target = ""
        self.headers: dict[str, str] = {}
        self.body = bytearray()
        self.keep_alive = True


class _Connection(asyncio.Protocol):
    def __init__(self, server: Server) -> None:
        self.server = server
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpRequestParser(self)
        self.current = _Request()
        self.queue: deque[_Request] = deque()
        self.worker: asyncio.Task[None] | None = None
        self.closed = False

    # -- asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is not a subclass
        self.server.connections.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.server.connections.discard(self)
        if self.worker is not None and not self.worker.done():
            self.worker.cancel()

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            self._abort()

    # -- httptools callbacks
    def on_message_begin(self) -> None:
        self.current = _Request()

    def on_url(self, url: bytes) -> None:
        self.current.target += url.decode("latin-1")

    def on_header(self, name: bytes, value: bytes) -> None:
        self.current.headers[name.decode("latin-1").lower()] = value.decode("latin-1")

    def on_headers_complete(self) -> None:
        self.current.method = self.parser.get_method().decode("latin-1")
        self.current.keep_alive = self.parser.should_keep_alive()

    def on_body(self, body: bytes) -> None:
        self.current.body += body
        if len(self.current.body) > MAX_BODY:
            self._abort()

    def on_message_complete(self) -> None:
        self.queue.append(self.current)
        if self.worker is None or self.worker.done():
            self.worker = asyncio.get_running_loop().create_task(self._work())

    # -- handling, in order per connection
    async def _work(self) -> None:
        while self.queue and not self.closed:
            request = self.queue.popleft()
            try:
                keep = await self.server.serve(self, request)
            except Exception:  # pragma: no cover - a bug; answer 500 like Stripe would
                log.exception("sandbox request failed")
                self._write(
                    error_response(api_error("The sandbox failed (a bug)."), "req_error"), False
                )
                keep = False
            if not keep:
                self._close()
                return

    def _write(self, response: Response, keep_alive: bool) -> None:
        if self.transport is not None and not self.closed:
            self.transport.write(_encode(response, keep_alive))

    def _close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    def _abort(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.abort()


class Server:
    """Serves one :class:`App` on a socket; also delivers its webhooks."""

    def __init__(self, app: App) -> None:
        self.app = app
        self.connections: set[_Connection] = set()
        self.server: asyncio.AbstractServer | None = None
        self.tasks: set[asyncio.Task[Any]] = set()
        self.http: httpx.AsyncClient | None = None
        self.stopping = False

    @property
    def em(self) -> Emulator:
        return self.app.em

    async def start(self, sock: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        self.server = await loop.create_server(lambda: _Connection(self), sock=sock)
        self.http = httpx.AsyncClient(timeout=self.em.settings.webhook_timeout)
        self._spawn(self._ticker())

    async def stop(self) -> None:
        self.stopping = True
        if self.server is not None:
            self.server.close()
        for conn in list(self.connections):
            conn._abort()
        for task in list(self.tasks):
            task.cancel()
        if self.tasks:
            await asyncio.gather(*self.tasks, return_exceptions=True)
        if self.http is not None:
            await self.http.aclose()

    def _spawn(self, coro: Any) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return task

    async def _execute_later(self, prepared: Prepared, delay: float) -> Response:
        await asyncio.sleep(delay)
        return self.app.execute(prepared)

    async def serve(self, conn: _Connection, request: _Request) -> bool:
        """Answer one request; False closes the connection."""
        faults = self.app.faults
        api = not request.target.startswith("/_sandbox/")
        keep = request.keep_alive
        if api and not faults.allow():
            conn._write(error_response(rate_limited(), "req_ratelimited"), keep)
            return keep
        rules = faults.pick(request.method, request.target.partition("?")[0]) if api else []
        for rule in rules:
            if rule.after:
                continue
            if rule.kind == "hang":
                await asyncio.sleep(rule.seconds)
                conn._abort()
                return False
            if rule.kind == "drop":
                conn._abort()
                return False
            if rule.kind == "error":
                conn._write(self._injected(rule), keep)
                return keep
        prepared = self.app.prepare(
            request.method, request.target, request.headers, bytes(request.body)
        )
        if isinstance(prepared, Response):
            response = prepared
        else:
            # Latency falls between claiming the Idempotency-Key and running the request, as
            # time spent inside Stripe would: a concurrent retry with the same key sees a 409.
            delay = faults.latency + sum(r.seconds for r in rules if r.kind == "latency")
            if delay:
                # Shielded: a client that gives up does not stop a request Stripe accepted.
                response = await asyncio.shield(self._spawn(self._execute_later(prepared, delay)))
            else:
                response = self.app.execute(prepared)
        self._deliver_outbox()
        for rule in rules:
            if not rule.after:
                continue
            if rule.kind in ("drop", "hang"):
                if rule.kind == "hang":
                    await asyncio.sleep(rule.seconds)
                conn._abort()
                return False
            if rule.kind == "error":
                conn._write(self._injected(rule), keep)
                return keep
        conn._write(response, keep)
        return keep

    @staticmethod
    def _injected(rule: Rule) -> Response:
        if rule.status == 429:
            err = rate_limited()
        else:
            err = api_error()
            err.status = rule.status
        if rule.retry_after is not None:
            err.headers["Retry-After"] = f"{rule.retry_after:g}"
        return error_response(err, "req_injected")

    # -- time and webhooks ----------------------------------------------------------------------

    async def _ticker(self) -> None:
        """Run transitions that real time makes due (e.g. a resumes_at a few seconds away)."""
        while not self.stopping:
            await asyncio.sleep(0.5)
            try:
                em = self.em
                if em.state.due and em.state.due[0][0] <= em.clock.now():
                    with em.lock:
                        em.run_due()
                self._deliver_outbox()
            except Exception:
                # One bad tick must not end the ticker: every later renewal and webhook of
                # this sandbox would silently stop.
                log.exception("sandbox.ticker_failed")

    def _deliver_outbox(self) -> None:
        if not self.em.state.outbox:
            return
        started: list[tuple[Obj, Obj, Delivery]] = []
        # One hold of the (re-entrant) lock: an event leaves the outbox and its deliveries
        # appear together, so Emulator.webhooks_in_flight never sees it in neither.
        try:
            with self.em.lock:
                for event, endpoints in self.em.take_outbox():
                    for endpoint in endpoints:
                        delivery = Delivery(event["id"], endpoint["id"], endpoint["url"])
                        self.em.state.deliveries.append(delivery)
                        started.append((event, endpoint, delivery))
        except Exception:
            # The request it follows succeeded (Stripe's would have); what is left in the
            # outbox goes at the next tick.
            log.exception("sandbox.outbox_failed")
        for event, endpoint, delivery in started:
            self._spawn(self._deliver(event, endpoint, delivery))

    async def _deliver(self, event: Obj, endpoint: Obj, delivery: Delivery) -> None:
        payload = json.dumps(Emulator.render_event(event), indent=2).encode()
        delays = self.em.settings.webhook_retry_delays
        assert self.http is not None
        for attempt in range(len(delays) + 1):
            delivery.attempts = attempt + 1
            timestamp = int(time.time())  # signed with real time, as Stripe signs
            signed = f"{timestamp}.".encode() + payload
            signature = hmac.new(endpoint["_secret"].encode(), signed, hashlib.sha256).hexdigest()
            try:
                answer = await self.http.post(
                    endpoint["url"],
                    content=payload,
                    headers={
                        "Content-Type": "application/json; charset=utf-8",
                        "Stripe-Signature": f"t={timestamp},v1={signature}",
                        "User-Agent": "Stripe/1.0 (+https://stripe.com/docs/webhooks)",
                    },
                )
                delivery.last_status_code = answer.status_code
                delivery.last_error = None
                if 200 <= answer.status_code < 300:
                    delivery.status = "delivered"
                    self.em.webhook_delivered(event["id"])
                    return
            except httpx.HTTPError as exc:
                delivery.last_error = f"{type(exc).__name__}: {exc}"
            if attempt < len(delays):
                await asyncio.sleep(delays[attempt])
        delivery.status = "failed"


def bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(1024)
    sock.setblocking(False)
    return sock


def new_loop() -> asyncio.AbstractEventLoop:
    try:
        import uvloop

        return uvloop.new_event_loop()
    except ImportError:  # pragma: no cover
        return asyncio.new_event_loop()
