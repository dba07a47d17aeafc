"""Precancel's own route answers exactly what the framework's route answers.

``POST /precancel`` normally skips the middleware stack and the router (see
``stayflow/cancel_sessions/fastpath.py``) and redoes their work itself. Each case below goes,
at the ASGI level (so any header, body, chunking or disconnect can be made), to an app with
that route and to one without it (``create_app(..., precancel_fast_path=False)``: the
request id middleware, the input limits and FastAPI's router, as for every other route).
Status, headers (but a generated request id) and body must be the same bytes, a session
stored by one must be stored alike by the other, and the metrics must count the same.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from sqlalchemy import select

from stayflow.app import create_app
from stayflow.cancel_sessions import trust
from stayflow.cancel_sessions.fastpath import PrecancelRoute
from stayflow.cancel_sessions.models import CancelSession
from stayflow.ops.input_limits import MAX_JSON_DEPTH
from tests.cancel_flow.helpers import ORIGIN, precancel_body

SUB = "sub_K1Vhej7WAk7k7Z"


@dataclass
class Case:
    name: str
    body: Callable[[Any, Any], bytes | list[bytes]]  # (owner, loose) -> body or its chunks
    headers: list[tuple[bytes, bytes]] = field(
        default_factory=lambda: [(b"content-type", b"application/json"), (b"origin", b"")]
    )
    query: bytes = b""
    method: str = "POST"
    length: bool = True  # send Content-Length (else the body is chunked)
    disconnect: bool = False  # the client goes away instead of sending a body
    root_path: str = ""


def js(value: Any) -> bytes:
    return json.dumps(value).encode()


def nested(depth: int) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = {"a": value}
    return value


def signed(owner: Any, fields: dict[str, Any], *, sub: str = SUB, age: int = 0) -> str:
    return trust.sign_fields(owner.app_secret, sub, fields, int(time.time()) - age)


ORIGIN_HEADERS = [(b"content-type", b"text/plain;charset=UTF-8"), (b"origin", ORIGIN.encode())]
JSON_ONLY = [(b"content-type", b"application/json")]

CASES = [
    Case("valid, snippet's text/plain", lambda o, _: js(precancel_body(o)), ORIGIN_HEADERS),
    Case("valid, no Origin (server)", lambda o, _: js(precancel_body(o)), JSON_ONLY),
    Case("valid, empty Origin", lambda o, _: js(precancel_body(o))),
    Case(
        "valid, two Origin headers",
        lambda o, _: js(precancel_body(o)),
        [*ORIGIN_HEADERS, (b"origin", b"https://evil.example.com")],
    ),
    Case(
        "origin not allowed",
        lambda o, _: js(precancel_body(o)),
        [(b"content-type", b"application/json"), (b"origin", b"https://evil.example.com")],
    ),
    Case("bad auth_hash", lambda o, _: js(precancel_body(o, auth_hash="0" * 64)), ORIGIN_HEADERS),
    Case(
        "auth_hash upper-case, padded",
        lambda o, _: js(precancel_body(o, auth_hash=" " + precancel_body(o)["auth_hash"].upper())),
        ORIGIN_HEADERS,
    ),
    Case(
        "auth_hash missing",
        lambda o, _: js({k: v for k, v in precancel_body(o).items() if k != "auth_hash"}),
        ORIGIN_HEADERS,
    ),
    Case(
        "unsigned, app allows it",
        lambda _, loose: js({k: v for k, v in precancel_body(loose).items() if k != "auth_hash"}),
        ORIGIN_HEADERS,
    ),
    Case("unknown app", lambda o, _: js(precancel_body(o, app_id="app_nobody")), ORIGIN_HEADERS),
    Case("empty app_id", lambda o, _: js(precancel_body(o, app_id="")), ORIGIN_HEADERS),
    Case("app_id too long", lambda o, _: js(precancel_body(o, app_id="a" * 41)), ORIGIN_HEADERS),
    Case("app_id a number", lambda o, _: js(precancel_body(o, app_id=7)), ORIGIN_HEADERS),
    Case("not JSON", lambda o, _: b"not json", ORIGIN_HEADERS),
    Case("a JSON array", lambda o, _: b"[1, 2]", ORIGIN_HEADERS),
    Case("empty body", lambda o, _: b"", ORIGIN_HEADERS),
    Case("not UTF-8", lambda o, _: b'{"app_id": "\xff"}', ORIGIN_HEADERS),
    Case(
        "nested past the limit",
        lambda o, _: js(precancel_body(o, custom=nested(MAX_JSON_DEPTH + 1))),
        ORIGIN_HEADERS,
    ),
    Case("nested 3,000 deep", lambda o, _: b"[" * 3000 + b"]" * 3000, ORIGIN_HEADERS),
    Case(
        "raw NUL byte",
        lambda o, _: js(precancel_body(o)).replace(b"ada@", b"a\x00da@"),
        ORIGIN_HEADERS,
    ),
    Case("escaped NUL", lambda o, _: js(precancel_body(o, first_name="A\u0000")), ORIGIN_HEADERS),
    Case(
        "lone surrogate",
        lambda o, _: js(precancel_body(o)).replace(b"ada@", b"\\ud800@"),
        ORIGIN_HEADERS,
    ),
    Case(
        "NaN", lambda o, _: js(precancel_body(o)).replace(b'"seats": 3', b'"seats": NaN'), JSON_ONLY
    ),
    Case(
        "over the cap, Content-Length",
        lambda o, _: js(precancel_body(o, custom={"pad": "x" * 25_000})),
        ORIGIN_HEADERS,
    ),
    Case(
        "over the cap, chunked",
        lambda o, _: [b'{"custom": "' + b"x" * 15_000, b"x" * 15_000 + b'"}'],
        ORIGIN_HEADERS,
        length=False,
    ),
    Case(
        "valid, chunked in three",
        lambda o, _: (lambda b: [b[:10], b[10:50], b[50:]])(js(precancel_body(o))),
        ORIGIN_HEADERS,
        length=False,
    ),
    Case(
        "Content-Length not a number",
        lambda o, _: js(precancel_body(o)),
        [*JSON_ONLY, (b"content-length", b"12x")],
        length=False,
    ),
    Case(
        "form content type",
        lambda o, _: b"app_id=x&subscription_id=%00",
        [(b"content-type", b"application/x-www-form-urlencoded")],
    ),
    Case(
        "multipart with a NUL",
        lambda o, _: b"--b\r\ncontent-disposition: form-data; name=a\r\n\r\n\x00\r\n--b--",
        [(b"content-type", b"multipart/form-data; boundary=b")],
    ),
    Case("no content type", lambda o, _: js(precancel_body(o)), []),
    Case("query app_id agrees", lambda o, _: js(precancel_body(o)), ORIGIN_HEADERS),
    Case(
        "query app_id differs",
        lambda o, _: js(precancel_body(o)),
        ORIGIN_HEADERS,
        query=b"app_id=app_other",
    ),
    Case("query with %00", lambda o, _: js(precancel_body(o)), ORIGIN_HEADERS, query=b"x=%00"),
    Case("query not UTF-8", lambda o, _: js(precancel_body(o)), ORIGIN_HEADERS, query=b"x=%ff"),
    Case(
        "redirect off the allowed hosts",
        lambda o, _: js(precancel_body(o, save_return_url="https://evil.example.com/x")),
        ORIGIN_HEADERS,
    ),
    Case(
        "offer URL off the allowed hosts",
        lambda o, _: js(precancel_body(o, offer_1_url="https://evil.example.com/x")),
        ORIGIN_HEADERS,
    ),
    Case(
        "offer URL allowed, under custom",
        lambda o, _: js(
            precancel_body(o, custom={"offer_accept_url": "https://app.example.com/kept"})
        ),
        ORIGIN_HEADERS,
    ),
    Case(
        "signed fields",
        lambda o, _: js(precancel_body(o, signed_fields=signed(o, {"plan.tier": "gold"}))),
        ORIGIN_HEADERS,
    ),
    Case(
        "signed fields alone",
        lambda o, _: js(
            {
                k: v
                for k, v in precancel_body(o, signed_fields=signed(o, {"seats": 9})).items()
                if k != "auth_hash"
            }
        ),
        ORIGIN_HEADERS,
    ),
    Case(
        "signed fields forged",
        lambda o, _: js(precancel_body(o, signed_fields=signed(o, {"a": 1})[:-4] + "0000")),
        ORIGIN_HEADERS,
    ),
    Case(
        "signed fields expired",
        lambda o, _: js(precancel_body(o, signed_fields=signed(o, {"a": 1}, age=3600))),
        ORIGIN_HEADERS,
    ),
    Case(
        "signed for another subscription",
        lambda o, _: js(precancel_body(o, signed_fields=signed(o, {"a": 1}, sub="sub_other"))),
        ORIGIN_HEADERS,
    ),
    Case(
        "signed fields claim Stripe's",
        lambda o, _: js(
            precancel_body(o, signed_fields=signed(o, {"subscription.plan.amount": 99}))
        ),
        ORIGIN_HEADERS,
    ),
    Case(
        "request claims Stripe's fields",
        lambda o, _: js(
            precancel_body(o, **{"subscription.plan.amount": 999999, "customer": {"vip": True}})
        ),
        ORIGIN_HEADERS,
    ),
    Case(
        "subscription_id a number",
        lambda o, _: js({**precancel_body(o, subscription_id="12345"), "subscription_id": 12345}),
    ),
    Case(
        "subscription_id with spaces",
        lambda o, _: js(precancel_body(o, subscription_id=" sub_1 ")),
        ORIGIN_HEADERS,
    ),
    Case(
        "account.created_at in ms, unicode name",
        lambda o, _: js(
            precancel_body(
                o, account={"created_at": 1_700_000_000_000}, first_name="Zoë", locale="fr"
            )
        ),
        ORIGIN_HEADERS,
    ),
    Case("email too long", lambda o, _: js(precancel_body(o, email="a" * 400)), ORIGIN_HEADERS),
    Case(
        "a valid request id is echoed",
        lambda o, _: js(precancel_body(o)),
        [*ORIGIN_HEADERS, (b"x-request-id", b"req-123.abc")],
    ),
    Case(
        "an invalid request id is replaced",
        lambda o, _: js(precancel_body(o)),
        [*ORIGIN_HEADERS, (b"x-request-id", b"bad id!")],
    ),
    Case("client went away", lambda o, _: b"", ORIGIN_HEADERS, disconnect=True),
    Case("under a root_path", lambda o, _: js(precancel_body(o)), ORIGIN_HEADERS, root_path="/x"),
    # Not the fast route's (both apps answer through the router): shown alike all the same.
    Case(
        "CORS preflight",
        lambda o, _: b"",
        [(b"origin", ORIGIN.encode()), (b"access-control-request-method", b"POST")],
        method="OPTIONS",
        query=b"app_id=APP",
    ),
    Case(
        "preflight without origin or app",
        lambda o, _: b"",
        [(b"access-control-request-method", b"POST")],
        method="OPTIONS",
    ),
    Case("GET is not allowed", lambda o, _: b"", [], method="GET"),
]


@dataclass
class Answer:
    status: int | None
    headers: list[tuple[bytes, bytes]]
    body: bytes
    request_id: bytes | None


async def call(app: Any, case: Case, owner: Any, loose: Any) -> Answer:
    made = case.body(owner, loose)
    chunks = made if isinstance(made, list) else [made]
    headers = list(case.headers)
    if case.length:
        headers.append((b"content-length", str(sum(map(len, chunks))).encode()))
    elif case.body is not None and not any(n == b"content-length" for n, _ in headers):
        headers.append((b"transfer-encoding", b"chunked"))
    query = case.query.replace(b"APP", owner.app_id.encode())
    if case.name == "query app_id agrees":
        query = b"app_id=" + owner.app_id.encode()
    scope = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.4"},
        "http_version": "1.1",
        "method": case.method,
        "scheme": "http",
        "path": "/precancel",
        "raw_path": b"/precancel",
        "root_path": case.root_path,
        "query_string": query,
        "headers": headers,
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
    }
    if case.root_path:
        scope["path"] = case.root_path + "/precancel"
    pending = [] if case.disconnect else list(chunks)

    async def receive() -> dict[str, Any]:
        if not pending:
            return {"type": "http.disconnect"}
        chunk = pending.pop(0)
        return {"type": "http.request", "body": chunk, "more_body": bool(pending)}

    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app(scope, receive, send)
    start = next((m for m in sent if m["type"] == "http.response.start"), None)
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    if start is None:
        return Answer(None, [], body, None)
    raw = [(bytes(n), bytes(v)) for n, v in start["headers"]]
    request_id = next((v for n, v in raw if n == b"x-request-id"), None)
    return Answer(
        start["status"], [(n, v) for n, v in raw if n != b"x-request-id"], body, request_id
    )


def _placeholders(body: bytes) -> tuple[bytes, str | None]:
    """The body with its page token and session id replaced, and the session id."""
    try:
        parsed = json.loads(body)
    except ValueError:
        return body, None
    if not isinstance(parsed, dict) or "session_id" not in parsed:
        return body, None
    token = parsed["url"].rsplit("/c/", 1)[1]
    return body.replace(token.encode(), b"TOKEN").replace(
        parsed["session_id"].encode(), b"SESSION"
    ), parsed["session_id"]


STORED = (
    "subscription_id",
    "signed",
    "request_fields",
    "signed_fields",
    "enriched_fields",
    "locale",
    "save_return_url",
    "cancel_confirmation_url",
    "flow",
    "offers_shown",
    "outcome",
)


def _stored(session_factory: Any, session_id: str) -> dict[str, Any]:
    with session_factory() as db:
        row = db.scalar(select(CancelSession).where(CancelSession.session_id == session_id))
        assert row is not None
        values = {name: getattr(row, name) for name in STORED}
        values["lifetime"] = row.expires_at - row.created_at
        values["abandon"] = row.abandon_at - row.created_at
        values["app_pk"] = row.app_pk
        return values


def _precancel_counts(app: Any) -> dict[tuple[str, ...], float]:
    from prometheus_client.exposition import generate_latest
    from prometheus_client.parser import text_string_to_metric_families

    counts = {}
    for family in text_string_to_metric_families(
        generate_latest(app.state.metrics.registry).decode()
    ):
        for sample in family.samples:
            if sample.name == "stayflow_http_requests_total" and sample.labels["route"] in (
                "/precancel",
                "unmatched",
            ):
                counts[tuple(sorted(sample.labels.items()))] = sample.value
    return counts


@pytest.fixture
def apps(settings, owner, make_tenant):
    loose = make_tenant("loose")
    fast = create_app(settings)
    generic = create_app(settings, precancel_fast_path=False)
    assert isinstance(fast.precancel_route, PrecancelRoute)
    assert generic.precancel_route is None
    # Settings through the admin API, before either app has cached them.
    from fastapi.testclient import TestClient

    with TestClient(generic) as client:
        for tenant, extra in ((owner, {}), (loose, {"allow_unsigned_precancel": True})):
            answer = client.patch(
                "/api/v1/cancel-flow/settings",
                json={"allowed_origins": [ORIGIN], **extra},
                headers=tenant.headers,
            )
            assert answer.status_code == 200, answer.text
    yield fast, generic, loose
    for app in (fast, generic):
        app.state.engine.dispose()


def test_the_fast_route_answers_every_case_as_the_framework_does(apps, owner, session_factory):
    fast, generic, loose = apps
    results: list[tuple[Case, Answer, Answer]] = []

    async def run_all() -> None:
        for case in CASES:
            results.append(
                (
                    case,
                    await call(fast, case, owner, loose),
                    await call(generic, case, owner, loose),
                )
            )

    asyncio.run(run_all())
    statuses = set()
    for case, one, other in results:
        statuses.add(one.status)
        where = f"case {case.name!r}"
        assert one.status == other.status, (where, one, other)
        assert one.headers == other.headers, (where, one.headers, other.headers)
        body_one, session_one = _placeholders(one.body)
        body_other, session_other = _placeholders(other.body)
        assert body_one == body_other, (where, one.body, other.body)
        if one.status is None:  # the client went away: nothing was sent, by either
            assert other.status is None and one.request_id is None
            continue
        assert one.request_id is not None and other.request_id is not None, where
        given = dict(case.headers).get(b"x-request-id")
        if given is not None and re.fullmatch(rb"[A-Za-z0-9._-]{1,64}", given):
            assert one.request_id == other.request_id == given, where
        else:
            assert len(one.request_id) == len(other.request_id) == 32, where
            assert one.request_id != other.request_id, where
        if one.status == 200 and case.method == "POST":
            assert session_one is not None and session_other is not None, where
            assert _stored(session_factory, session_one) == _stored(
                session_factory, session_other
            ), where
    # The cases reach every kind of answer, so the comparison is not of one answer only.
    assert {200, 204, 400, 404, 405, 413, None} <= statuses, statuses
    assert 500 not in statuses  # bad input is a 4xx, on either path
    assert _precancel_counts(fast) == _precancel_counts(generic)
    assert _precancel_counts(fast), "the metrics counted nothing"


def test_an_error_inside_the_fast_route_is_a_500_with_the_request_id(apps, owner):
    fast, generic, loose = apps

    class Broken(RuntimeError):
        pass

    async def broken_start(*_args: Any) -> Any:
        # A stand-in for a fault the real parts do not make on demand (a bug in the route).
        raise Broken("boom")

    case = Case("valid", lambda o, _: js(precancel_body(o)), ORIGIN_HEADERS)
    answers = []
    for app in (fast, generic):
        app.state.precancel.start = broken_start
        answers.append(asyncio.run(call(app, case, owner, loose)))
    one, other = answers
    assert one.status == other.status == 500
    assert one.headers == other.headers and one.body == other.body
    assert json.loads(one.body)["error"]["type"] == "internal"
    assert one.request_id is not None and len(one.request_id) == 32
