"""Precancel throughput: `stayflow serve` creating cancel sessions vs a bare FastAPI endpoint.

    python bench/precancel.py [--requests 5000] [--concurrency 32] [--backends sqlite,postgres]

For each backend, starts `stayflow serve` (uvicorn, one process, access log off) on
127.0.0.1 with a fresh database and app, and drives POST /precancel with signed
requests for distinct subscriptions from concurrent clients. In the same run, the
same load goes to a bare FastAPI app, served the same way (uvicorn, one process,
access log off). The bare endpoint is the strongest honest baseline: an ``async def``
(a sync ``def`` runs in a thread pool and is about half as fast) that reads the whole
body and parses it with the same ``json.loads`` precancel uses, then answers JSON of the
same shape. It stores nothing: the ratio is what checking, signing and storing a
session costs against only receiving and parsing one.

Order: bare, precancel on each backend, bare again; each ratio is against the mean of
the two bare runs. Prints requests/s, p50 and p99 latency and the ratio; the goal is
precancel >= 40% of the bare endpoint's throughput.

Durability: on PostgreSQL precancel's group commit runs with ``synchronous_commit
off`` (the commit returns before the WAL is flushed; a server crash may lose the last
few hundred milliseconds of session starts, never an outcome). SQLite runs in WAL mode
with ``synchronous=NORMAL`` (durable against a process crash, not against a power
loss). Both are printed with the figures.

The load is bounded in count (--requests) and time (--max-seconds); everything
listens on 127.0.0.1 only. The client runs on the same machine and shares its cores.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import hmac
import json
import os
import secrets
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from _support import (
    create_database,
    drop_database,
    free_port,
    load_average,
    start_server,
    stop_server,
    wait_http,
)
from fastapi import FastAPI, Request  # module level: the endpoint's annotation must resolve
from fastapi.responses import JSONResponse

SECRET = "bench-" + "k" * 40
DURABILITY = {
    "sqlite": "WAL, synchronous=NORMAL",
    "postgres": "group commit, synchronous_commit OFF: not durable",
}
ORIGIN = "https://app.example.com"


def bare_app() -> Any:
    app = FastAPI()

    @app.post("/precancel")
    async def precancel(request: Request) -> JSONResponse:
        # Read and parse the same body precancel reads, answer the same shape.
        body = json.loads(await request.body())
        sub = body["subscription_id"]
        return JSONResponse(
            {"valid": True, "url": f"http://127.0.0.1/c/{sub}", "session_id": f"cs_{sub}"}
        )

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    return app


def serve_bare(port: int) -> None:
    import uvicorn

    uvicorn.run(bare_app(), host="127.0.0.1", port=port, log_config=None, access_log=False)


@dataclass
class Result:
    name: str
    ok: int
    errors: int
    seconds: float
    latencies: list[float]

    @property
    def rps(self) -> float:
        return self.ok / self.seconds if self.seconds else 0.0

    def pct(self, q: float) -> float:
        if not self.latencies:
            return float("nan")
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000

    def line(self) -> str:
        return (
            f"{self.name:<28} {self.rps:8.0f} req/s   p50 {self.pct(0.50):6.1f} ms   "
            f"p99 {self.pct(0.99):6.1f} ms   ok {self.ok}  errors {self.errors}"
        )


def bodies(app_id: str, app_secret: str, count: int) -> list[bytes]:
    out = []
    run = secrets.token_hex(3)
    for i in range(count):
        sub = f"sub_bench_{run}_{i}"
        signature = hmac.new(app_secret.encode(), sub.encode(), hashlib.sha256).hexdigest()
        body = {
            "app_id": app_id,
            "subscription_id": sub,
            "auth_hash": signature,
            "email": f"user{i}@example.com",
            "save_return_url": f"{ORIGIN}/account",
            "cancel_confirmation_url": f"{ORIGIN}/goodbye",
            "account": {"internal_id": str(i)},
            "custom": {"seats": i % 10, "last_login": "2026-11-01"},
        }
        out.append(json.dumps(body).encode())
    return out


class Connection:
    """A minimal HTTP/1.1 keep-alive client on asyncio streams: cheap enough that the load
    generator is not what limits the numbers (httpx's async client costs more per request
    than the bare endpoint does)."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def post(self, path: str, body: bytes) -> tuple[int, bytes]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        assert self.reader is not None
        head = (
            f"POST {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
            f"Content-Type: application/json\r\nOrigin: {ORIGIN}\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        )
        self.writer.write(head.encode() + body)
        await self.writer.drain()
        status_line = await self.reader.readline()
        status = int(status_line.split()[1])
        length = 0
        while True:
            line = await self.reader.readline()
            if line in (b"\r\n", b""):
                break
            name, _, value = line.decode("latin-1").partition(":")
            if name.strip().lower() == "content-length":
                length = int(value)
        return status, await self.reader.readexactly(length)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


async def load(
    name: str, url: str, payloads: list[bytes], concurrency: int, max_seconds: float
) -> Result:
    parts = httpx.URL(url)
    latencies: list[float] = []
    errors = 0
    index = 0
    deadline = time.perf_counter() + max_seconds

    async def worker() -> None:
        nonlocal index, errors
        conn = Connection(parts.host, parts.port or 80)
        try:
            while index < len(payloads) and time.perf_counter() < deadline:
                body = payloads[index]
                index += 1
                started = time.perf_counter()
                try:
                    status, answer = await asyncio.wait_for(conn.post(parts.path, body), 30)
                    ok = status == 200 and json.loads(answer).get("valid") is True
                except (TimeoutError, OSError, ValueError, asyncio.IncompleteReadError):
                    conn.close()
                    conn = Connection(parts.host, parts.port or 80)
                    ok = False
                if ok:
                    latencies.append(time.perf_counter() - started)
                else:
                    errors += 1
        finally:
            conn.close()

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.perf_counter() - started
    return Result(name, len(latencies), errors, elapsed, latencies)


def run_load(name: str, url: str, payloads: list[bytes], args: argparse.Namespace) -> Result:
    warm = payloads[: args.warmup]
    asyncio.run(load(name, url, warm, args.concurrency, args.max_seconds))
    return asyncio.run(load(name, url, payloads[args.warmup :], args.concurrency, args.max_seconds))


def bench_precancel(backend: str, args: argparse.Namespace) -> Result:
    with tempfile.TemporaryDirectory() as tmp:
        url = create_database(backend, Path(tmp))
        port = free_port()
        env = {
            **os.environ,
            "STAYFLOW_DATABASE_URL": url,
            "STAYFLOW_SECRET_KEY": SECRET,
            "STAYFLOW_BASE_URL": f"http://127.0.0.1:{port}",
            "STAYFLOW_LOG_LEVEL": "WARNING",
        }
        cli = [sys.executable, "-m", "stayflow.cli.main"]
        created = subprocess.run(
            [*cli, "apps", "create", "bench", "--json"], env=env, capture_output=True, check=True
        )
        app = json.loads(created.stdout)
        server = start_server([*cli, "serve", "--host", "127.0.0.1", "--port", str(port)], env)
        try:
            base = f"http://127.0.0.1:{port}"
            wait_http(f"{base}/js/stayflow.js")
            headers = {"Authorization": f"Bearer {app['api_key']}"}
            httpx.patch(
                f"{base}/api/v1/cancel-flow/settings",
                json={"allowed_origins": [ORIGIN]},
                headers=headers,
            ).raise_for_status()
            payloads = bodies(app["app_id"], app["app_secret"], args.requests + args.warmup)
            result = run_load(f"precancel ({backend})", f"{base}/precancel", payloads, args)
            listed = httpx.get(
                f"{base}/api/v1/cancel-sessions?limit=1", headers=headers, timeout=10
            ).json()
            if result.ok and not listed["data"]:
                raise SystemExit("precancel answered but no session was stored")
        finally:
            stop_server(server)
            drop_database(url)
        return result


def bench_bare(args: argparse.Namespace) -> Result:
    port = free_port()
    proc = start_server(
        [sys.executable, str(Path(__file__).resolve()), "--serve-bare", str(port)], {**os.environ}
    )
    try:
        wait_http(f"http://127.0.0.1:{port}/healthz")
        payloads = bodies("app_bare", "secret", args.requests + args.warmup)
        return run_load(
            "bare FastAPI (async, parses)", f"http://127.0.0.1:{port}/precancel", payloads, args
        )
    finally:
        stop_server(proc)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=5000, help="measured requests per target")
    parser.add_argument("--warmup", type=int, default=300)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--max-seconds", type=float, default=60.0, help="per target")
    parser.add_argument("--backends", default="sqlite,postgres")
    parser.add_argument("--serve-bare", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_bare:
        serve_bare(args.serve_bare)
        return
    print(
        f"requests={args.requests} concurrency={args.concurrency} cores={os.cpu_count()} "
        f"(client and servers share the machine)"
    )
    print(f"before: {load_average()}")
    # Bare before and after every precancel run: each ratio is against their mean, so a
    # machine that gets busier or quieter during the run skews it less.
    first = bench_bare(args)
    print(first.line())
    if first.errors:
        raise SystemExit("the bare endpoint answered errors: the baseline is broken")
    results = []
    for backend in args.backends.split(","):
        result = bench_precancel(backend.strip(), args)
        print(result.line() + f"   [{DURABILITY[backend.strip()]}]")
        results.append((backend.strip(), result))
    last = bench_bare(args)
    print(last.line())
    reference = (first.rps + last.rps) / 2
    for backend, result in results:
        ratio = result.rps / reference if reference else 0.0
        verdict = "meets" if ratio >= 0.40 else "BELOW"
        print(
            f"  precancel ({backend}) / bare (mean of the two bare runs, {reference:.0f} req/s): "
            f"{ratio:.0%} ({verdict} the 40% goal)"
        )
    print(f"after: {load_average()}")
    if "postgres" in args.backends:
        print(
            "  note: PostgreSQL's group commit is NOT durable (synchronous_commit off): a "
            "server crash can lose the last session starts (a subscriber clicks Cancel again)."
        )


if __name__ == "__main__":
    main()
