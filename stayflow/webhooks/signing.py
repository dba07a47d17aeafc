"""Signatures on outgoing webhooks.

Standard Webhooks (https://www.standardwebhooks.com): ``webhook-id``, ``webhook-timestamp``
(epoch seconds) and ``webhook-signature: v1,<base64 HMAC-SHA256 of "id.timestamp.body">``
keyed with the base64-decoded part of a ``whsec_`` secret. Several signatures, space
separated, during a secret rotation.

Brightback's legacy header, for receivers written for it: ``X-Hub-Signature:
sha1=<hex HMAC-SHA1 of the raw body>`` keyed with the whole secret string (``whsec_...``,
UTF-8), made with the current secret only.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

SECRET_PREFIX = "whsec_"  # noqa: S105 (a prefix, not a secret)
SECRET_BYTES = 24


def new_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


def _key(secret: str) -> bytes:
    return base64.b64decode(secret.removeprefix(SECRET_PREFIX))


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """One ``v1,<base64>`` signature."""
    message = f"{msg_id}.{timestamp}.".encode() + body
    digest = hmac.new(_key(secret), message, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def legacy_signature(secret: str, body: bytes) -> str:
    return "sha1=" + hmac.new(secret.encode(), body, hashlib.sha1).hexdigest()


def headers(
    secrets_: list[str], msg_id: str, timestamp: int, body: bytes, *, legacy: bool
) -> dict[str, str]:
    """The signing headers; ``secrets_`` is the current secret, then any still overlapping."""
    out = {
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": " ".join(sign(s, msg_id, timestamp, body) for s in secrets_),
    }
    if legacy:
        out["X-Hub-Signature"] = legacy_signature(secrets_[0], body)
    return out
