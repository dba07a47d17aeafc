"""Signed tokens a business verifies with its app secret: ``v1.<payload>.<signature>``.

``payload`` is base64url (no padding) of a JSON object; ``signature`` is the lower-case hex
HMAC-SHA256, keyed with the app secret, of the text before the last dot (``v1.<payload>``),
exactly as sent, so no side re-encodes JSON. The same shape as precancel's
``signed_fields`` (which a business makes and stayflow checks); here stayflow makes the
token (pass-thru URLs) and the business checks it. Every payload carries ``timestamp``
and ``expires`` (epoch seconds).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from collections.abc import Mapping
from typing import Any

VERSION = "v1"


class TokenInvalid(ValueError):
    """Malformed, forged or expired."""


def sign(secret: str, payload: Mapping[str, Any]) -> str:
    body = json.dumps(dict(payload), separators=(",", ":"), sort_keys=True)
    encoded = base64.urlsafe_b64encode(body.encode()).rstrip(b"=").decode()
    message = f"{VERSION}.{encoded}"
    digest = hmac.new(secret.encode(), message.encode(), hashlib.sha256).hexdigest()
    return f"{message}.{digest}"


def verify(secret: str, token: str, now_epoch: int) -> dict[str, Any]:
    message, dot, signature = token.strip().rpartition(".")
    version, _, encoded = message.partition(".")
    if not dot or version != VERSION or not encoded:
        raise TokenInvalid("a token looks like v1.<base64url JSON>.<hex HMAC>")
    expected = hmac.new(secret.encode(), message.encode(), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected.encode(), signature.lower().encode("utf-8", "replace")):
        raise TokenInvalid("the signature does not match")
    try:
        payload = json.loads(base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)))
    except (binascii.Error, ValueError) as exc:
        raise TokenInvalid("the payload is not base64url JSON") from exc
    if not isinstance(payload, dict):
        raise TokenInvalid("the payload must be a JSON object")
    expires = payload.get("expires")
    if not isinstance(expires, int) or isinstance(expires, bool) or now_epoch >= expires:
        raise TokenInvalid("expired")
    return payload
