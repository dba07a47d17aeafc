"""Structured JSON logs carrying the request id of the request that caused them."""

from __future__ import annotations

import json
import logging
import re
import sys
import threading
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import IO, Any
from urllib.parse import urlsplit

request_id_var: ContextVar[str | None] = ContextVar("stayflow_request_id", default=None)

_RESERVED = set(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {"message", "asctime"}
# Never let these reach a log line, whatever a caller passes in ``extra``.
_SECRET_WORDS = ("secret", "password", "api_key", "authorization", "token")
# uvicorn passes a copy of its message with ANSI colour codes; a JSON line never carries it.
_DROPPED = {"color_message"}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "event": record.getMessage(),
        }
        request_id = request_id_var.get()
        if request_id:
            entry["request_id"] = request_id
        for key, value in record.__dict__.items():
            if key in _RESERVED or key in _DROPPED or key.startswith("_"):
                continue
            if any(word in key.lower() for word in _SECRET_WORDS):
                value = "[redacted]"
            entry[key] = value
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


_LOGFMT_PAIR = re.compile(r"(\w+)=('(?:[^'\\]|\\.)*'|\S+)")


class StripeCallFilter(logging.Filter):
    """Turns the stripe SDK's own logging into one ``stripe.call`` line per call, at DEBUG.

    The SDK logs each call as two or three INFO lines ("Request to Stripe api", "Stripe API
    response", "Stripe v1 API error received") and more at DEBUG, among them the request
    parameters and the whole response body (which can hold a webhook secret). Only the
    response line passes, rewritten as method, path (no host, no query), status. Errors are
    not logged here: stayflow's Stripe adapter turns them into its own errors, and some are
    expected (the permission probes made when a key is connected answer 403 or 404).
    Install it with the ``stripe`` logger at DEBUG only; above DEBUG that logger is set to
    WARNING and none of this reaches a handler.
    """

    def __init__(self) -> None:
        super().__init__()
        self._pending = threading.local()

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno >= logging.WARNING:
            return True
        fields = {key: value.strip("'") for key, value in _LOGFMT_PAIR.findall(str(record.msg))}
        message = fields.get("message")
        if message == "Request to Stripe api":
            self._pending.method = fields.get("method", "").upper()
            return False
        if message != "Stripe API response":
            return False
        record.msg = "stripe.call"
        record.args = ()
        record.levelno = logging.DEBUG
        record.levelname = "DEBUG"
        record.method = getattr(self._pending, "method", "") or None
        record.path = urlsplit(fields.get("path", "")).path
        status = fields.get("response_code", "")
        record.status = int(status) if status.isdigit() else status
        self._pending.method = ""
        return True


_STRIPE_FILTER = StripeCallFilter()


class TextFormatter(logging.Formatter):
    """One readable line: time, level, logger, event, then the record's fields as key=value."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        fields = []
        request_id = request_id_var.get()
        if request_id:
            fields.append(f"request_id={request_id}")
        for key, value in record.__dict__.items():
            if key in _RESERVED or key in _DROPPED or key.startswith("_"):
                continue
            if any(word in key.lower() for word in _SECRET_WORDS):
                value = "[redacted]"
            fields.append(f"{key}={value}")
        if not fields:
            return line
        head, sep, tail = line.partition("\n")
        return f"{head} {' '.join(fields)}{sep}{tail}"


def configure_logging(
    level: str = "INFO", json_logs: bool = True, stream: IO[str] | None = None
) -> None:
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    if json_logs:
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(TextFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # uvicorn's access log repeats what our middleware records, without the request id.
    logging.getLogger("uvicorn.access").handlers[:] = []
    logging.getLogger("uvicorn.access").propagate = False
    # Alembic narrates its plugin set-up at INFO on every start.
    logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)
    # httpx (under the stripe SDK and outbound calls) logs every request's full URL at INFO.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    # The stripe SDK: one line per call at DEBUG, nothing above (see StripeCallFilter).
    stripe_logger = logging.getLogger("stripe")
    debug = root.getEffectiveLevel() <= logging.DEBUG
    stripe_logger.setLevel(logging.DEBUG if debug else logging.WARNING)
    if _STRIPE_FILTER not in stripe_logger.filters:
        stripe_logger.addFilter(_STRIPE_FILTER)
