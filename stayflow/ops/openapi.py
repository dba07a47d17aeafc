"""The OpenAPI document, told truthfully: every error answer a route can give, with our shape.

FastAPI documents the happy path and a 422 in its own shape (``HTTPValidationError``), which
stayflow never sends. This rewrites the generated document once:

- every error answer uses ``Error`` (``{"error": {"type", "message", "details"?}}``), or the
  route's own error model where it declares one (precancel's ``{"valid": false, ...}``);
- answers every route shares are added by what the route has: 400 (the edge checks of
  ``input_limits`` apply to every request), 401 where the bearer key is required, 404 where
  the path names a row, 413 where there is a body, 422 where FastAPI validates parameters;
- answers a domain gives on some routes (409, 502, 503, ...) come from ``ROUTE_ERRORS``,
  kept beside the routes' errors they describe.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

ERROR_SCHEMA: dict[str, Any] = {
    "title": "Error",
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["type", "message"],
            "properties": {
                "type": {"type": "string", "description": "A stable, machine-readable kind."},
                "message": {"type": "string", "description": "What was wrong, for a human."},
                "details": {"description": "Per-field detail, where there is some."},
            },
        }
    },
}

DESCRIPTIONS = {
    400: "Bad request: invalid input (including NUL bytes, JSON nested too deep).",
    401: "Missing, invalid or revoked credentials.",
    403: "Forbidden.",
    404: "Not found.",
    409: "Conflict with the current state.",
    410: "Gone: expired.",
    412: "If-Match named an ETag that is no longer current: nothing was saved.",
    413: "The body is larger than this route accepts.",
    422: "A parameter or the body failed validation.",
    502: "Stripe answered with an error.",
    503: "Stripe (or the database) is unavailable; retry later.",
}

# Answers particular to some routes, by (method, path template). Billing routes call Stripe,
# whose refusals and outages surface as 4xx/502/503 (billing.provider's errors).
_STRIPE = (400, 403, 409, 502, 503)
ROUTE_ERRORS: dict[tuple[str, str], tuple[int, ...]] = {
    ("get", "/api/v1/billing/stripe"): _STRIPE,
    ("put", "/api/v1/billing/stripe"): _STRIPE,
    ("delete", "/api/v1/billing/stripe"): _STRIPE,
    ("put", "/api/v1/billing/stripe/setup"): _STRIPE,
    ("get", "/api/v1/billing/stripe/fields"): (*_STRIPE, 404),
    ("post", "/api/v1/billing/stripe/backfill"): (409,),
    ("get", "/api/v1/billing/stripe/backfill"): (404,),
    ("put", "/api/v1/flows"): (*_STRIPE, 412),
    ("put", "/api/v1/flows/{kind}/{item_id}"): (*_STRIPE, 412),
    ("delete", "/api/v1/flows/{kind}/{item_id}"): (409, 412),
    ("get", "/api/v1/flows/draft"): (404,),
    ("delete", "/api/v1/flows/draft"): (404,),
    ("post", "/api/v1/flows/publish"): (*_STRIPE, 409),
    ("post", "/api/v1/flows/versions/{number}/restore"): _STRIPE,
    ("put", "/api/v1/field-mappings"): (409,),
    ("post", "/api/v1/field-mappings"): (409,),
    ("put", "/api/v1/field-mappings/{field}"): (409,),
    ("post", "/c/{token}/reason"): (403, 404, 409, 410),
    ("post", "/c/{token}/accept"): (403, 404, 409, 410, 502, 503),
    ("post", "/c/{token}/deflect"): (403, 404, 409, 410),
    ("post", "/c/{token}/cancel"): (403, 404, 409, 410, 502, 503),
    ("get", "/c/{token}"): (404, 410),
    ("get", "/api/v1/cancel-sessions"): (404,),
    ("post", "/stripe/webhooks/{app_id}"): (404,),
    ("post", "/api/v1/reports/experiments/{experiment_id}/end"): (409,),
}

_METHODS = ("get", "put", "post", "delete", "patch", "options", "head")
# The hosted page answers a browser's errors as an HTML page, a headless client's as JSON.
HTML_PAGES = ("/c/",)


def _error_response(code: int, schema: dict[str, Any], html: bool) -> dict[str, Any]:
    content: dict[str, Any] = {"application/json": {"schema": schema}}
    if html:
        content["text/html"] = {"schema": {"type": "string"}}
    return {"description": DESCRIPTIONS.get(code, "Error."), "content": content}


def _own_error_schema(responses: dict[str, Any]) -> dict[str, Any] | None:
    """The error model a route declares itself (e.g. precancel's), if any."""
    for code, response in responses.items():
        if code.startswith("4") and code != "422":
            schema = response.get("content", {}).get("application/json", {}).get("schema")
            if schema:
                return dict(schema)
    return None


def rewrite(document: dict[str, Any]) -> dict[str, Any]:
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    schemas["Error"] = ERROR_SCHEMA
    schemas.pop("HTTPValidationError", None)
    schemas.pop("ValidationError", None)
    error_ref = {"$ref": "#/components/schemas/Error"}
    for path, operations in document.get("paths", {}).items():
        for method, operation in operations.items():
            if method not in _METHODS:
                continue
            responses: dict[str, Any] = operation.setdefault("responses", {})
            own = _own_error_schema(responses)
            schema = own or error_ref
            parameters = operation.get("parameters", [])
            codes = {400}
            if operation.get("security"):
                codes.add(401)
            if any(p.get("in") == "path" for p in parameters):
                codes.add(404)
            if "requestBody" in operation:
                codes.add(413)
            if own is None and (parameters or "requestBody" in operation):
                codes.add(422)
            codes.update(ROUTE_ERRORS.get((method, path), ()))
            if own is None:
                responses.pop("422", None)  # FastAPI's shape; ours is added below
            html = path.startswith(HTML_PAGES)
            for code in sorted(codes):
                existing = responses.get(str(code))
                if existing is None or "content" not in existing or html:
                    responses[str(code)] = _error_response(code, schema, html)
                    if existing and existing.get("description"):
                        responses[str(code)]["description"] = existing["description"]
    return document


def install_openapi(app: FastAPI) -> None:
    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = rewrite(
                get_openapi(
                    title=app.title,
                    version=app.version,
                    description=app.description,
                    routes=app.routes,
                )
            )
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
