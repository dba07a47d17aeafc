"""Errors in Stripe's shape: ``{"error": {"type", "code", "message", "param", "doc_url"}}``."""

from __future__ import annotations

from typing import Any


class StripeError(Exception):
    """An error the sandbox answers as Stripe would (status code + error object)."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: str = "invalid_request_error",
        code: str | None = None,
        param: str | None = None,
        extra: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type
        self.code = code
        self.param = param
        self.extra = extra or {}
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        error: dict[str, Any] = {"type": self.type, "message": self.message}
        if self.code is not None:
            error["code"] = self.code
            error["doc_url"] = f"https://stripe.com/docs/error-codes/{self.code.replace('_', '-')}"
        if self.param is not None:
            error["param"] = self.param
        error.update(self.extra)
        return {"error": error}


def missing(kind: str, object_id: str, param: str = "id") -> StripeError:
    """Stripe's ``resource_missing``: 404 for the object a URL names (``param="id"``), 400 for
    one named in a parameter (``customer``, ``items[0][price]``, ``discounts[0][coupon]``)."""
    status = 404 if param == "id" else 400
    return StripeError(
        status, f"No such {kind}: '{object_id}'", code="resource_missing", param=param
    )


def invalid(message: str, param: str | None = None, code: str | None = None) -> StripeError:
    return StripeError(400, message, code=code, param=param)


def unknown_param(path: str) -> StripeError:
    return StripeError(
        400, f"Received unknown parameter: {path}", code="parameter_unknown", param=path
    )


def missing_param(path: str) -> StripeError:
    return StripeError(
        400, f"Missing required param: {path}.", code="parameter_missing", param=path
    )


def rate_limited() -> StripeError:
    return StripeError(
        429,
        "Request rate limit exceeded. You can learn more about rate limits here "
        "https://stripe.com/docs/rate-limits.",
        code="rate_limit",
    )


def api_error(message: str = "An unknown error occurred (injected by the sandbox).") -> StripeError:
    return StripeError(500, message, type="api_error")
