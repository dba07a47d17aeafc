"""One base error with an HTTP status; each domain subclasses it.

The global handler in ``stayflow.app`` turns any ``StayflowError`` into
``{"error": {"type", "message"}}`` with its status code.
"""

from __future__ import annotations

from typing import Any


class StayflowError(Exception):
    status_code = 400
    error_type = "invalid_request"

    def __init__(self, message: str, *, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details or {}

    def to_body(self) -> dict[str, Any]:
        error: dict[str, Any] = {"type": self.error_type, "message": self.message}
        if self.details:
            error["details"] = self.details
        return {"error": error}


class BadRequest(StayflowError):
    status_code = 400
    error_type = "invalid_request"


class Unauthorized(StayflowError):
    status_code = 401
    error_type = "unauthorized"


class Forbidden(StayflowError):
    status_code = 403
    error_type = "forbidden"


class NotFound(StayflowError):
    status_code = 404
    error_type = "not_found"


class Conflict(StayflowError):
    status_code = 409
    error_type = "conflict"


class PreconditionFailed(StayflowError):
    status_code = 412
    error_type = "precondition_failed"


class Unavailable(StayflowError):
    status_code = 503
    error_type = "unavailable"
