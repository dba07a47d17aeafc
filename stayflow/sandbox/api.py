"""Request handling independent of the HTTP server: routing, keys, parameters, idempotency,
expand, and the ``/_sandbox/...`` control routes."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from stayflow.sandbox import catalog as ca
from stayflow.sandbox import common, invoices
from stayflow.sandbox import customers as cu
from stayflow.sandbox import events as ev
from stayflow.sandbox import preview as pv
from stayflow.sandbox import subscriptions as s
from stayflow.sandbox import test_clocks as tc
from stayflow.sandbox.emulator import Ctx, Emulator, IdempotentResult
from stayflow.sandbox.errors import StripeError, invalid
from stayflow.sandbox.faults import Faults
from stayflow.sandbox.params import Params, parse_form, validate
from stayflow.sandbox.sdk_params import params_class_name, stripe_accepts
from stayflow.sandbox.store import Obj

Handler = Callable[..., Obj]


@dataclass(frozen=True)
class Route:
    method: str
    parts: tuple[str, ...]  # "*" marks an id
    handler: Handler
    schema: dict[str, Any]
    resource: str


@dataclass
class Prepared:
    """A request that passed routing, keys and validation, ready to run."""

    route: Route
    args: list[str]
    params: Params
    api_key: str
    idempotency_key: str | None
    record: IdempotentResult | None
    request_id: str
    api_version: str | None = None


@dataclass
class Response:
    status: int
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)
    # Set by fault injection: what the server does instead of / after answering.
    action: str | None = None
    hang_seconds: float = 0.0


def _routes() -> list[Route]:
    table: list[tuple[str, str, Handler, dict[str, Any], str]] = [
        ("GET", "/v1/account", cu.account_retrieve, common.EXPAND, "account"),
        ("POST", "/v1/customers", cu.customer_create, cu.CUSTOMER_CREATE, "customers"),
        ("GET", "/v1/customers", cu.customer_list, cu.CUSTOMER_LIST, "customers"),
        ("GET", "/v1/customers/*", cu.customer_retrieve, common.EXPAND, "customers"),
        ("POST", "/v1/customers/*", cu.customer_update, cu.CUSTOMER_FIELDS, "customers"),
        ("DELETE", "/v1/customers/*", cu.customer_delete, {}, "customers"),
        ("GET", "/v1/payment_methods", cu.pm_list, cu.PM_LIST, "payment_methods"),
        ("GET", "/v1/payment_methods/*", cu.pm_retrieve, common.EXPAND, "payment_methods"),
        ("POST", "/v1/payment_methods/*/attach", cu.pm_attach, cu.ATTACH, "payment_methods"),
        ("POST", "/v1/payment_methods/*/detach", cu.pm_detach, common.EXPAND, "payment_methods"),
        ("POST", "/v1/products", ca.product_create, ca.PRODUCT_CREATE, "products"),
        ("GET", "/v1/products", ca.product_list, ca.PRODUCT_LIST, "products"),
        ("GET", "/v1/products/*", ca.product_retrieve, common.EXPAND, "products"),
        ("POST", "/v1/products/*", ca.product_update, ca.PRODUCT_UPDATE, "products"),
        ("DELETE", "/v1/products/*", ca.product_delete, {}, "products"),
        ("POST", "/v1/prices", ca.price_create, ca.PRICE_CREATE, "prices"),
        ("GET", "/v1/prices", ca.price_list, ca.PRICE_LIST, "prices"),
        ("GET", "/v1/prices/*", ca.price_retrieve, common.EXPAND, "prices"),
        ("POST", "/v1/prices/*", ca.price_update, ca.PRICE_UPDATE, "prices"),
        ("POST", "/v1/plans", ca.plan_create, ca.PLAN_CREATE, "plans"),
        ("GET", "/v1/plans", ca.plan_list, ca.PLAN_LIST, "plans"),
        ("GET", "/v1/plans/*", ca.plan_retrieve, common.EXPAND, "plans"),
        ("POST", "/v1/plans/*", ca.plan_update, ca.PLAN_UPDATE, "plans"),
        ("DELETE", "/v1/plans/*", ca.plan_delete, {}, "plans"),
        ("POST", "/v1/coupons", ca.coupon_create, ca.COUPON_CREATE, "coupons"),
        ("GET", "/v1/coupons", ca.coupon_list, common.LIST, "coupons"),
        ("GET", "/v1/coupons/*", ca.coupon_retrieve, common.EXPAND, "coupons"),
        ("POST", "/v1/coupons/*", ca.coupon_update, ca.COUPON_UPDATE, "coupons"),
        ("DELETE", "/v1/coupons/*", ca.coupon_delete, {}, "coupons"),
        (
            "POST",
            "/v1/promotion_codes",
            ca.promotion_code_create,
            ca.PROMO_CREATE,
            "promotion_codes",
        ),
        ("GET", "/v1/promotion_codes", ca.promotion_code_list, ca.PROMO_LIST, "promotion_codes"),
        (
            "GET",
            "/v1/promotion_codes/*",
            ca.promotion_code_retrieve,
            common.EXPAND,
            "promotion_codes",
        ),
        (
            "POST",
            "/v1/promotion_codes/*",
            ca.promotion_code_update,
            ca.PROMO_UPDATE,
            "promotion_codes",
        ),
        ("POST", "/v1/subscriptions", s.create, s.CREATE, "subscriptions"),
        ("GET", "/v1/subscriptions", s.list_subscriptions, s.LIST_PARAMS, "subscriptions"),
        ("GET", "/v1/subscriptions/*", s.retrieve, common.EXPAND, "subscriptions"),
        ("POST", "/v1/subscriptions/*", s.update, s.UPDATE, "subscriptions"),
        ("DELETE", "/v1/subscriptions/*", s.cancel, s.CANCEL, "subscriptions"),
        ("POST", "/v1/subscriptions/*/resume", s.resume, s.RESUME, "subscriptions"),
        ("DELETE", "/v1/subscriptions/*/discount", s.delete_discount, {}, "subscriptions"),
        ("DELETE", "/v1/customers/*/discount", cu.delete_discount, {}, "customers"),
        ("GET", "/v1/invoices", invoices.invoice_list, invoices.INVOICE_LIST, "invoices"),
        ("POST", "/v1/invoices/create_preview", pv.create_preview, pv.PREVIEW, "invoices"),
        ("GET", "/v1/invoices/*", invoices.invoice_retrieve, common.EXPAND, "invoices"),
        ("POST", "/v1/invoices/*/pay", invoices.invoice_pay, invoices.PAY, "invoices"),
        ("POST", "/v1/invoices/*/void", invoices.invoice_void, common.EXPAND, "invoices"),
        (
            "POST",
            "/v1/invoices/*/mark_uncollectible",
            invoices.invoice_mark_uncollectible,
            common.EXPAND,
            "invoices",
        ),
        ("POST", "/v1/test_helpers/test_clocks", tc.create, tc.CREATE, "test_clocks"),
        ("GET", "/v1/test_helpers/test_clocks", tc.list_clocks, tc.LIST_PARAMS, "test_clocks"),
        ("GET", "/v1/test_helpers/test_clocks/*", tc.retrieve, common.EXPAND, "test_clocks"),
        ("DELETE", "/v1/test_helpers/test_clocks/*", tc.delete, {}, "test_clocks"),
        (
            "POST",
            "/v1/test_helpers/test_clocks/*/advance",
            tc.advance,
            tc.ADVANCE,
            "test_clocks",
        ),
        ("GET", "/v1/events", ev.event_list, ev.EVENT_LIST, "events"),
        ("GET", "/v1/events/*", ev.event_retrieve, common.EXPAND, "events"),
        (
            "POST",
            "/v1/webhook_endpoints",
            ev.webhook_endpoint_create,
            ev.WE_CREATE,
            "webhook_endpoints",
        ),
        (
            "GET",
            "/v1/webhook_endpoints",
            ev.webhook_endpoint_list,
            common.LIST,
            "webhook_endpoints",
        ),
        (
            "GET",
            "/v1/webhook_endpoints/*",
            ev.webhook_endpoint_retrieve,
            common.EXPAND,
            "webhook_endpoints",
        ),
        (
            "POST",
            "/v1/webhook_endpoints/*",
            ev.webhook_endpoint_update,
            ev.WE_UPDATE,
            "webhook_endpoints",
        ),
        ("DELETE", "/v1/webhook_endpoints/*", ev.webhook_endpoint_delete, {}, "webhook_endpoints"),
    ]
    return [
        Route(method, tuple(path.strip("/").split("/")), handler, schema, resource)
        for method, path, handler, schema, resource in table
    ]


ROUTES = _routes()
_BY_SHAPE: dict[tuple[str, int], list[Route]] = {}
for _route in ROUTES:
    _BY_SHAPE.setdefault((_route.method, len(_route.parts)), []).append(_route)


def match(method: str, path: str) -> tuple[Route, list[str]] | None:
    parts = path.strip("/").split("/")
    for route in _BY_SHAPE.get((method, len(parts)), ()):
        args: list[str] = []
        for want, got in zip(route.parts, parts, strict=True):
            if want == "*":
                if not got:
                    break
                args.append(got)
            elif want != got:
                break
        else:
            return route, args
    return None


def _explain_unknown(err: StripeError, method: str, route: Route) -> StripeError:
    """A parameter Stripe accepts but the sandbox does not implement: say so."""
    if err.code != "parameter_unknown" or err.param is None:
        return err
    class_name = params_class_name(method, route.parts)
    if class_name is None or not stripe_accepts(class_name, err.param):
        return err
    err.message = (
        f"Received unknown parameter: {err.param} (Stripe accepts it, but the stayflow sandbox "
        "does not implement it)"
    )
    return err


_OWNER_TABLES = {"customers": "customers", "subscriptions": "subscriptions", "invoices": "invoices"}


def _test_clock_of(em: Emulator, route: Route, args: list[str], params: Params) -> str | None:
    """The test clock a request's objects live on: the object in the URL, else the
    ``test_clock`` / ``customer`` / ``subscription`` it names."""
    table = _OWNER_TABLES.get(route.resource)
    if table is not None and args:
        found = em.t[table].find(args[0])
        if found is not None:
            return found.get("test_clock")
    if route.resource == "customers" and isinstance(params.get("test_clock"), str):
        return str(params["test_clock"])
    for name, source in (("subscription", "subscriptions"), ("customer", "customers")):
        value = params.get(name)
        if isinstance(value, str):
            found = em.t[source].find(value)
            if found is not None:
                return found.get("test_clock")
    return None


def _json(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


def error_response(err: StripeError, request_id: str) -> Response:
    headers = {"Request-Id": request_id, **err.headers}
    return Response(err.status, _json(err.body()), headers)


class App:
    """The sandbox's request handler (one per emulator)."""

    def __init__(self, emulator: Emulator, faults: Faults | None = None) -> None:
        self.em = emulator
        self.faults = faults or Faults()

    def handle(self, method: str, target: str, headers: dict[str, str], body: bytes) -> Response:
        """Answer one request at once (in-process callers; the server uses the two phases)."""
        prepared = self.prepare(method, target, headers, body)
        return prepared if isinstance(prepared, Response) else self.execute(prepared)

    def prepare(
        self, method: str, target: str, headers: dict[str, str], body: bytes
    ) -> Response | Prepared:
        """Route, authenticate, validate and claim the Idempotency-Key; an answer if that is
        already the end (an error, a replay, a control route), else what to execute."""
        path, _, query = target.partition("?")
        request_id = "req_" + self.em.state.ids.token(14)
        if path.startswith("/_sandbox/"):
            try:
                return self._control(method, path, query, body, request_id)
            except StripeError as err:
                return error_response(err, request_id)
            except (ValueError, KeyError, TypeError) as exc:
                return error_response(invalid(f"Bad sandbox request: {exc}"), request_id)
        found = match(method, path)
        if found is None:
            return error_response(
                StripeError(
                    404,
                    f"Unrecognized request URL ({method}: {path}). Please see "
                    "https://stripe.com/docs or we can help at https://support.stripe.com/.",
                ),
                request_id,
            )
        route, args = found
        try:
            return self._prepare(route, args, method, path, query, headers, body, request_id)
        except StripeError as err:
            return error_response(err, request_id)

    def _prepare(
        self,
        route: Route,
        args: list[str],
        method: str,
        path: str,
        query: str,
        headers: dict[str, str],
        body: bytes,
        request_id: str,
    ) -> Response | Prepared:
        em = self.em
        with em.lock:
            if em.state.due and em.state.due[0][0] <= em.clock.now():
                em.run_due()
            key = em.authenticate(headers.get("authorization"), route.resource, method != "GET")
            raw: Params = parse_form(query)
            if body:
                raw.update(parse_form(body.decode("utf-8", "replace")))
            try:
                params = validate(raw, route.schema)
            except StripeError as err:
                raise _explain_unknown(err, method, route) from None
            idem_key = headers.get("idempotency-key") if method == "POST" else None
            record: IdempotentResult | None = None
            if idem_key:
                fingerprint = method + " " + path + " " + json.dumps(raw, sort_keys=True)
                stored = em.idempotency_lookup(key, idem_key, fingerprint)
                if stored is not None:
                    return Response(
                        stored.status,
                        stored.body,
                        {
                            "Request-Id": request_id,
                            "Idempotency-Key": idem_key,
                            "Idempotent-Replayed": "true",
                        },
                    )
                # Claimed now, answered after any latency: a concurrent request with the same
                # key meanwhile gets Stripe's 409.
                record = IdempotentResult(fingerprint, 0, b"", time.time(), in_flight=True)
                em.state.idempotency[(key, idem_key)] = record
            version = headers.get("stripe-version")
            return Prepared(route, args, params, key, idem_key, record, request_id, version)

    def execute(self, prepared: Prepared) -> Response:
        em = self.em
        route, params, record = prepared.route, prepared.params, prepared.record
        request_id, idem_key = prepared.request_id, prepared.idempotency_key
        slot = (prepared.api_key, idem_key or "")
        with em.lock:
            ctx = Ctx(
                request_id=request_id,
                idempotency_key=idem_key,
                api_version=prepared.api_version,
            )
            # A request about objects on a test clock runs at that clock's frozen time.
            em.now_override = em.clock_time(_test_clock_of(em, route, prepared.args, params))
            try:
                result = route.handler(em, ctx, params, *prepared.args)
                result = em.expand(result, params.get("expand"))
            except StripeError as err:
                response = error_response(err, request_id)
                if record is not None:
                    if err.status == 402:  # the request ran: keep its answer
                        record.status, record.body, record.in_flight = 402, response.body, False
                    else:
                        em.state.idempotency.pop(slot, None)
                return response
            except BaseException:
                if record is not None:
                    em.state.idempotency.pop(slot, None)
                raise
            finally:
                em.now_override = None
            em.commit(ctx)
            out = _json(result)
            if record is not None:
                record.status, record.body, record.in_flight = 200, out, False
            response_headers = {"Request-Id": request_id}
            if idem_key:
                response_headers["Idempotency-Key"] = idem_key
            return Response(200, out, response_headers)

    # -- /_sandbox ------------------------------------------------------------------------------

    def _control(
        self, method: str, path: str, query: str, body: bytes, request_id: str
    ) -> Response:
        from stayflow.sandbox import control

        result = control.handle(self, method, path, query, body)
        return Response(200, _json(result), {"Request-Id": request_id})
