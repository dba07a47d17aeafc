"""Outgoing HTTP to business-given URLs, refusing private addresses at connect time.

The check runs on the address actually connected to (after DNS resolution, inside the
connection pool), so a name that resolves to a public address when saved and to
127.0.0.1 later (DNS rebinding) is still refused. TLS still verifies the certificate
against the name in the URL.
"""

from __future__ import annotations

import ipaddress
import socket
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import httpcore
import httpx

RESPONSE_KEEP = 1024


class AddressNotAllowed(httpcore.ConnectError):
    """The URL's host resolves only to private, loopback, link-local or reserved addresses."""


def address_allowed(address: str) -> bool:
    ip = ipaddress.ip_address(address)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return not (
        ip.is_private
        or ip.is_loopback
        or ip.is_link_local
        or ip.is_multicast
        or ip.is_reserved
        or ip.is_unspecified
    )


class GuardedBackend(httpcore.SyncBackend):
    """Resolves the host itself and connects only to an allowed address."""

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except socket.gaierror as exc:
            raise httpcore.ConnectError(f"cannot resolve {host}: {exc}") from exc
        allowed = [info[4][0] for info in infos if address_allowed(str(info[4][0]))]
        if not allowed:
            raise AddressNotAllowed(
                f"{host} resolves to a private, loopback or link-local address; refused "
                "(STAYFLOW_WEBHOOKS_ALLOW_PRIVATE=1 allows it)"
            )
        return super().connect_tcp(str(allowed[0]), port, timeout, local_address, socket_options)


class GuardedTransport(httpx.HTTPTransport):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        limits = kwargs.get("limits", httpx.Limits())
        self._pool = httpcore.ConnectionPool(
            ssl_context=httpx.create_ssl_context(),
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=GuardedBackend(),
        )


@dataclass(frozen=True)
class SendResult:
    status_code: int | None
    latency_ms: int
    response: str
    error: str | None
    retry_after: float | None
    timed_out: bool = False

    @property
    def succeeded(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


def parse_retry_after(value: str | None) -> float | None:
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    from email.utils import parsedate_to_datetime

    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        return None
    from datetime import UTC, datetime

    return max(0.0, (when - datetime.now(UTC)).total_seconds())


class Sender:
    """One shared, thread-safe client; every request carries its own timeout."""

    def __init__(self, *, timeout: float, allow_private: bool, max_connections: int = 100):
        limits = httpx.Limits(max_connections=max_connections, max_keepalive_connections=50)
        transport: httpx.HTTPTransport = (
            httpx.HTTPTransport(limits=limits) if allow_private else GuardedTransport(limits=limits)
        )
        self.timeout = timeout
        self.client = httpx.Client(
            transport=transport, follow_redirects=False, timeout=timeout, trust_env=False
        )

    def post(self, url: str, body: bytes, headers: dict[str, str]) -> SendResult:
        started = time.monotonic()
        all_headers = {
            "content-type": "application/json",
            "user-agent": "stayflow-webhooks/1",
            **headers,
        }
        try:
            with self.client.stream("POST", url, content=body, headers=all_headers) as response:
                kept = b""
                for chunk in response.iter_bytes():
                    kept += chunk
                    if len(kept) >= RESPONSE_KEEP:
                        break
                status = response.status_code
                retry_after = (
                    parse_retry_after(response.headers.get("retry-after"))
                    if status in (429, 502, 503)
                    else None
                )
        except httpx.TimeoutException as exc:
            return SendResult(
                None, _ms(started), "", f"timeout: {type(exc).__name__}", None, timed_out=True
            )
        except httpx.HTTPError as exc:
            return SendResult(None, _ms(started), "", f"{type(exc).__name__}: {exc}"[:500], None)
        text = kept[:RESPONSE_KEEP].decode("utf-8", errors="replace")
        return SendResult(status, _ms(started), text, None, retry_after)

    def close(self) -> None:
        self.client.close()


def _ms(started: float) -> int:
    return int((time.monotonic() - started) * 1000)
