"""What a subscriber may influence: request fields, signed fields and the fields from Stripe.

The snippet runs in the subscriber's browser, so every field of a precancel body is theirs
to change. Three namespaces keep that apart (see docs/cancel-flow.md, "Trust"):

- **from Stripe**: what enrichment adds (``subscription.*``, ``customer.*``,
  ``enrichment.*`` and the app's mapped fields). The request can never set, shadow or
  extend these, at any nesting and with dotted keys alike: a request key whose first
  segment is one of them is left out of every view.
- **signed**: fields the business vouches for, signed on its server (``signed_fields``, a
  token carrying an HMAC over the subscription id, the fields and a timestamp). They are
  under ``signed.*`` and, for copy, also at their own names.
- **request**: everything else the body carries, unsigned, at its own names and under
  ``request.*``. Copy may show it; audience rules see it only when the app opts in
  (``allow_unsigned_targeting``).

Pure functions, no I/O: precancel's hot path runs ``verify_signed_fields`` on the event loop.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from collections.abc import Iterable, Mapping
from typing import Any

STRIPE_ROOTS = frozenset({"subscription", "customer", "enrichment"})
SIGNED_ROOT = "signed"
# The request's own namespace: ``request.custom.seats`` is always the unsigned value.
REQUEST_ROOT = "request"
RESERVED_ROOTS = STRIPE_ROOTS | {SIGNED_ROOT, REQUEST_ROOT}
SIGNED_FIELDS_VERSION = "v1"
# A signed_fields token dated this far in the future (a skewed clock) is still accepted.
CLOCK_SKEW_SECONDS = 300


class SignedFieldsInvalid(ValueError):
    """The token is malformed, forged, expired or for another subscription."""


def root(key: str) -> str:
    return key.split(".", 1)[0]


# --- verifying auth_hash and signed_fields ------------------------------------------------


def _hex_equal(expected_hex: str, given: str) -> bool:
    """Constant-time comparison of hex digests.

    Upper-case, surrounding spaces and a digest whose leading zeros were dropped (Java's
    ``BigInteger.toString(16)`` does that) are the same digest.
    """
    cleaned = given.strip().lower()
    if 0 < len(cleaned) < len(expected_hex):
        cleaned = cleaned.zfill(len(expected_hex))
    return hmac.compare_digest(expected_hex.encode(), cleaned.encode("utf-8", "replace"))


def expected_auth_hash(app_secret: str, subscription_id: str) -> str:
    return hmac.new(app_secret.encode(), subscription_id.encode(), hashlib.sha256).hexdigest()


def auth_hash_valid(app_secret: str, subscription_id: str, auth_hash: str) -> bool:
    return _hex_equal(expected_auth_hash(app_secret, subscription_id), auth_hash)


def sign_fields(
    app_secret: str, subscription_id: str, fields: Mapping[str, Any], timestamp: int
) -> str:
    """Make a ``signed_fields`` token, as the business's server does (used by tests and docs)."""
    payload = json.dumps(
        {"subscription_id": subscription_id, "timestamp": timestamp, "fields": dict(fields)},
        separators=(",", ":"),
    )
    encoded = base64.urlsafe_b64encode(payload.encode()).rstrip(b"=").decode()
    message = f"{SIGNED_FIELDS_VERSION}.{encoded}"
    digest = hmac.new(app_secret.encode(), message.encode(), hashlib.sha256).hexdigest()
    return f"{message}.{digest}"


def verify_signed_fields(
    app_secret: str, token: str, subscription_id: str, now_epoch: int, max_age_seconds: int
) -> dict[str, Any]:
    """The fields a valid token vouches for, nested (dotted keys expanded).

    The HMAC is over the token's text up to its last dot, exactly as sent, so nothing is
    re-encoded on either side and any language's JSON serializer will do.
    """
    message, dot, signature = token.strip().rpartition(".")
    version, _, encoded = message.partition(".")
    if not dot or version != SIGNED_FIELDS_VERSION or not encoded:
        raise SignedFieldsInvalid("signed_fields must look like v1.<base64url JSON>.<hex HMAC>")
    expected = hmac.new(app_secret.encode(), message.encode(), hashlib.sha256).hexdigest()
    if not _hex_equal(expected, signature):
        raise SignedFieldsInvalid("signed_fields: the signature does not match")
    try:
        raw = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4))
        payload = json.loads(raw)
    except (binascii.Error, ValueError) as exc:
        raise SignedFieldsInvalid("signed_fields: the payload is not base64url JSON") from exc
    if not isinstance(payload, dict):
        raise SignedFieldsInvalid("signed_fields: the payload must be a JSON object")
    if str(payload.get("subscription_id")) != subscription_id:
        raise SignedFieldsInvalid("signed_fields: signed for another subscription_id")
    timestamp = payload.get("timestamp")
    if not isinstance(timestamp, int) or isinstance(timestamp, bool):
        raise SignedFieldsInvalid("signed_fields: timestamp must be epoch seconds (an integer)")
    if timestamp > now_epoch + CLOCK_SKEW_SECONDS:
        raise SignedFieldsInvalid("signed_fields: the timestamp is in the future")
    if now_epoch - timestamp > max_age_seconds:
        raise SignedFieldsInvalid(
            f"signed_fields: expired (signed more than {max_age_seconds} seconds ago)"
        )
    fields = payload.get("fields", {})
    if not isinstance(fields, dict):
        raise SignedFieldsInvalid("signed_fields: fields must be a JSON object")
    nested = unflatten(fields)
    owned = sorted(k for k in nested if k in RESERVED_ROOTS)
    if owned:
        raise SignedFieldsInvalid(
            f"signed_fields: {owned[0]!r} belongs to the fields from Stripe; sign your own "
            "fields (custom.*, account.*, ...)"
        )
    return nested


# --- views over a session's fields ----------------------------------------------------------


def unflatten(fields: Mapping[str, Any]) -> dict[str, Any]:
    """Dotted keys as nested objects (``{"a.b": 1}`` -> ``{"a": {"b": 1}}``); nested kept."""
    out: dict[str, Any] = {}
    for key, value in fields.items():
        _deep_set(out, key.split("."), value)
    return out


def _deep_set(target: dict[str, Any], parts: list[str], value: Any) -> None:
    """Set ``value`` at the path, merging mappings; nested dicts on the way are copied, so
    the caller's inputs (a session's stored fields) are never changed."""
    for part in parts[:-1]:
        nxt = target.get(part)
        nxt = dict(nxt) if isinstance(nxt, dict) else {}
        target[part] = nxt
        target = nxt
    last = parts[-1]
    if isinstance(value, Mapping) and isinstance(target.get(last), dict):
        merged = dict(target[last])
        target[last] = merged
        for key, inner in value.items():
            _deep_set(merged, [key], inner)
    else:
        target[last] = dict(value) if isinstance(value, Mapping) else value


def owned_roots(enriched_fields: Mapping[str, Any]) -> frozenset[str]:
    """Top-level names enrichment owns in this session: the request may not use them."""
    names = {root(key) for key in enriched_fields}
    # Mapped fields that could not be filled are still enrichment's names.
    for listing in ("enrichment.missing_fields", "enrichment.failed_fields"):
        found = enriched_fields.get(listing)
        if isinstance(found, list):
            names.update(str(name) for name in found)
    return RESERVED_ROOTS | names


def request_view(
    request_fields: Mapping[str, Any], enriched_fields: Mapping[str, Any]
) -> dict[str, Any]:
    """The request's fields minus every key (dotted or nested) under a name enrichment owns."""
    owned = owned_roots(enriched_fields)
    return {k: v for k, v in request_fields.items() if root(k) not in owned}


def rule_fields(
    request_fields: Mapping[str, Any],
    enriched_fields: Mapping[str, Any],
    signed_fields: Mapping[str, Any],
    *,
    allow_unsigned: bool,
) -> dict[str, Any]:
    """What audience rules see: Stripe's fields, ``signed.*``, and (opt-in) the request's."""
    fields: dict[str, Any] = {}
    if allow_unsigned:
        view = request_view(request_fields, enriched_fields)
        fields.update(view)
        owned = owned_roots(enriched_fields)
        overlay = {k: v for k, v in signed_fields.items() if k not in owned}
        fields = unflatten_over(fields, overlay)
        fields[REQUEST_ROOT] = view
    fields[SIGNED_ROOT] = dict(signed_fields)
    fields.update(enriched_fields)
    return fields


def mapping_sources(
    request_fields: Mapping[str, Any], signed_fields: Mapping[str, Any]
) -> dict[str, Any]:
    """Request-side sources a field mapping may read: the request's own names and signed.*.

    Nothing under ``subscription``/``customer``/``enrichment``: a mapping whose source is
    a Stripe path reads Stripe's value or nothing, never the request's.
    """
    return {**request_view(request_fields, {}), SIGNED_ROOT: dict(signed_fields)}


def unflatten_over(base: Mapping[str, Any], nested: Mapping[str, Any]) -> dict[str, Any]:
    """``base`` with ``nested`` merged in depth (``nested`` wins)."""
    out = dict(base)
    for key, value in nested.items():
        _deep_set(out, [key], value)
    return out


def copy_context(
    request_fields: Mapping[str, Any],
    enriched_fields: Mapping[str, Any],
    signed_fields: Mapping[str, Any],
) -> dict[str, Any]:
    """Merge-field values for copy: request fields (signed ones win), Stripe's beside them."""
    owned = owned_roots(enriched_fields)
    view = request_view(request_fields, enriched_fields)
    context = unflatten_over(view, {k: v for k, v in signed_fields.items() if k not in owned})
    if "full_name" not in context:
        parts = [context.get("first_name"), context.get("last_name")]
        named = [str(p).strip() for p in parts if isinstance(p, str) and p.strip()]
        if named:
            context["full_name"] = " ".join(named)
    context[SIGNED_ROOT] = dict(signed_fields)
    context[REQUEST_ROOT] = view
    for key, value in enriched_fields.items():
        _deep_set(context, key.split("."), value)
    return context


def unsigned_paths(paths: Iterable[str], mappings: Iterable[Mapping[str, Any]]) -> list[str]:
    """The rule paths that read fields the subscriber's browser could have set.

    From Stripe: ``subscription.*``, ``customer.*``, ``enrichment.*`` and mapped fields
    whose source is one of those; signed: ``signed.*``; anything else is the request's.
    """
    sources = {str(m.get("field")): str(m.get("source") or "") for m in mappings}
    trusted_roots = STRIPE_ROOTS | {SIGNED_ROOT}
    found = []
    for path in paths:
        first = root(path)
        if first in trusted_roots:
            continue
        if first in sources and root(sources[first]) in trusted_roots:
            continue
        if path not in found:
            found.append(path)
    return found
