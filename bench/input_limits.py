"""What the edge checks cost per request: InputLimits around a do-nothing ASGI app vs the app.

    python bench/input_limits.py [--requests 20000]

In process (no network, no server): the same precancel-shaped JSON body goes through
``InputLimits`` (cap while reading, NUL / surrogate / NaN / depth checks, replay to the app)
and, as the baseline, straight to an app that reads the body the same way. Prints the
microseconds per request of each and the difference: the checks' own cost on the hot path.
A second body with ``\\u`` escapes takes the slower path (a parse to look at the strings).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from typing import Any

from stayflow.ops.input_limits import InputLimits

PLAIN = json.dumps(
    {
        "app_id": "app_0123456789abcdef",
        "subscription_id": "sub_K1Vhej7WAk7k7Z",
        "auth_hash": "a" * 64,
        "email": "ada@example.com",
        "save_return_url": "https://app.example.com/account",
        "cancel_confirmation_url": "https://app.example.com/goodbye",
        "account": {"internal_id": "42"},
        "custom": {"seats": 3, "last_login": "2026-11-01", "tags": ["a", "b"]},
    }
).encode()
ESCAPED = PLAIN.replace(b'"ada@example.com"', b'"\\u00e9lodie@example.com"')


async def reader_app(scope: Any, receive: Any, send: Any) -> None:
    more = True
    while more:
        message = await receive()
        more = message.get("more_body", False)
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"{}"})


def scope_for(body: bytes) -> dict[str, Any]:
    return {
        "type": "http",
        "method": "POST",
        "path": "/precancel",
        "query_string": b"",
        "headers": [
            (b"content-type", b"text/plain"),
            (b"content-length", str(len(body)).encode()),
        ],
    }


async def run(app: Any, body: bytes, requests: int) -> float:
    scope = scope_for(body)

    async def send(_message: Any) -> None:
        return None

    started = time.perf_counter()
    for _ in range(requests):
        sent = False

        async def receive() -> dict[str, Any]:
            nonlocal sent
            if sent:
                return {"type": "http.disconnect"}
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}

        await app(scope, receive, send)
    return (time.perf_counter() - started) / requests * 1e6


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=20_000)
    args = parser.parse_args()
    checked = InputLimits(reader_app, caps=[("/precancel", 20_000)])
    for name, body in (("plain", PLAIN), ("with \\u escapes", ESCAPED)):
        bare = asyncio.run(run(reader_app, body, args.requests))
        edge = asyncio.run(run(checked, body, args.requests))
        again = asyncio.run(run(reader_app, body, args.requests))
        base = (bare + again) / 2
        print(
            f"{name:>16} body ({len(body)} B): bare {base:.1f} us/request "
            f"(runs {bare:.1f}, {again:.1f}), with InputLimits {edge:.1f} us/request, "
            f"checks cost {edge - base:.1f} us/request"
        )


if __name__ == "__main__":
    main()
