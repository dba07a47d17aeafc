"""Enrichment: find the session's subscription (mirror first, else one short live read),
flatten it, and fill the app's typed field mappings.

Nothing here raises at the subscriber: every failure becomes the default experience,
with the reason recorded in ``enrichment.*`` fields on the session.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from stayflow.billing import repository as billing_repository
from stayflow.billing import service as billing_service
from stayflow.billing.config import billing_settings
from stayflow.billing.provider import (
    BillingAuthenticationFailed,
    BillingError,
    BillingObjectMissing,
    BillingPermissionDenied,
    BillingUnavailable,
    Subscription,
)
from stayflow.billing.schemas import StripeSetup
from stayflow.billing.stripe.convert import subscription_from
from stayflow.crypto import DecryptionError, Encryptor
from stayflow.db import transaction
from stayflow.enrichment import repository
from stayflow.enrichment.flatten import flatten_mapping, flatten_subscription
from stayflow.enrichment.models import FieldMapping
from stayflow.enrichment.schemas import FieldMappingIn
from stayflow.enrichment.types import ConversionFailed, convert
from stayflow.errors import NotFound
from stayflow.mirror import repository as mirror_repository
from stayflow.mirror import service as mirror_service
from stayflow.settings import Settings

log = logging.getLogger("stayflow.enrichment")

SUBSCRIPTION_ID = re.compile(r"^sub_[A-Za-z0-9_]{1,250}$")
DEFAULT_CURRENCY_SOURCES = ("subscription.plan.currency", "subscription.currency")


class FieldMappingNotFound(NotFound):
    pass


@dataclass
class Lookup:
    subscription: Subscription | None
    source: str  # mirror | live | stale_mirror | none
    reason: str | None = None
    stripe_calls: int = 0


@dataclass
class MappedFields:
    values: dict[str, Any] = field(default_factory=dict)
    missing: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)


# --- mappings ---------------------------------------------------------------------------


def list_mappings(db: Session, app_pk: int) -> Sequence[FieldMapping]:
    return repository.list_mappings(db, app_pk)


def upsert_mapping(db: Session, app_pk: int, body: FieldMappingIn) -> FieldMapping:
    found = repository.get_mapping(db, app_pk, body.field)
    if found is None:
        position = len(repository.list_mappings(db, app_pk))
        found = FieldMapping(app_pk=app_pk, field=body.field, position=position)
        db.add(found)
    found.source = body.source
    found.type = body.type
    found.currency_source = body.currency_source
    db.flush()
    return found


def replace_mappings(db: Session, app_pk: int, mappings: Sequence[FieldMappingIn]) -> None:
    """Make the app's mappings exactly these (the flows file's ``fields:`` list)."""
    repository.delete_all(db, app_pk)
    db.flush()
    for position, body in enumerate(mappings):
        db.add(
            FieldMapping(
                app_pk=app_pk,
                field=body.field,
                source=body.source,
                type=body.type,
                currency_source=body.currency_source,
                position=position,
            )
        )
    db.flush()


def delete_mapping(db: Session, app_pk: int, field_name: str) -> None:
    found = repository.get_mapping(db, app_pk, field_name)
    if found is None:
        raise FieldMappingNotFound(f"no field mapping {field_name!r}")
    db.delete(found)
    db.flush()


def get_mapping(db: Session, app_pk: int, field_name: str) -> FieldMapping:
    found = repository.get_mapping(db, app_pk, field_name)
    if found is None:
        raise FieldMappingNotFound(f"no field mapping {field_name!r}")
    return found


def apply_mappings(mappings: Sequence[FieldMapping], sources: Mapping[str, Any]) -> MappedFields:
    out = MappedFields()
    for mapping in mappings:
        value = sources.get(mapping.source)
        if value is None:
            out.missing.append(mapping.field)
            continue
        currency: Any = None
        if mapping.type == "money":
            paths = (
                (mapping.currency_source,) if mapping.currency_source else DEFAULT_CURRENCY_SOURCES
            )
            currency = next((sources[p] for p in paths if sources.get(p)), None)
        try:
            out.values[mapping.field] = convert(value, mapping.type, currency=currency)
        except ConversionFailed:
            out.failed.append(mapping.field)
    return out


# --- finding the subscription --------------------------------------------------------------


@dataclass
class _Plan:
    """What a lookup must do, decided from the database alone."""

    done: Lookup | None = None  # the answer, when no Stripe call is needed
    key: str | None = None
    has_row: bool = False


def _plan(
    db: Session,
    app_pk: int,
    subscription_id: str | None,
    encryptor: Encryptor,
    *,
    require_enabled: bool,
    assemble: bool = True,
) -> _Plan:
    conn = billing_repository.get_connection_by_app_pk(db, app_pk)
    try:
        key = billing_service.connected_key(encryptor, conn)
    except DecryptionError:
        return _Plan(Lookup(None, "none", "key_unreadable"))
    if key is None or conn is None:
        return _Plan(Lookup(None, "none", "not_connected"))
    if require_enabled and not StripeSetup.model_validate(conn.setup or {}).enrichment:
        return _Plan(Lookup(None, "none", "disabled"))
    if not subscription_id:
        return _Plan(Lookup(None, "none", "no_subscription_id"))
    if not SUBSCRIPTION_ID.match(subscription_id):
        return _Plan(Lookup(None, "none", "invalid_subscription_id"))
    row = mirror_repository.get_subscription(db, app_pk, subscription_id)
    if row is not None and mirror_service.is_fresh(row, conn):
        if not assemble:  # the caller only asks whether Stripe is needed
            return _Plan(Lookup(None, "mirror"))
        return _Plan(Lookup(subscription_from(mirror_service.assemble(db, row)), "mirror"))
    return _Plan(None, key, row is not None)


def _live(
    settings: Settings, key: str, subscription_id: str, timeout: float | None
) -> tuple[Lookup, dict[str, Any] | None]:
    """One retrieve with a short timeout and no retries: a subscriber is waiting."""
    provider = billing_service.make_provider(
        settings, key, timeout=timeout or billing_settings().stripe_timeout, retries=0
    )
    reason: str
    try:
        fetched = provider.retrieve_subscription(subscription_id)
    except BillingObjectMissing:
        reason = "subscription_not_found"
    except BillingUnavailable:
        reason = "stripe_unavailable"
    except BillingPermissionDenied:
        reason = "permission_denied"
    except BillingAuthenticationFailed:
        reason = "key_refused"
    except BillingError:
        reason = "stripe_error"
    else:
        return Lookup(fetched.subscription, "live", None, provider.calls), fetched.raw
    return Lookup(None, "none", reason, provider.calls), None


def _settle(
    db: Session, app_pk: int, subscription_id: str, found: Lookup, raw: dict[str, Any] | None
) -> Lookup:
    """Store a live result in the mirror; after a failure, prefer an older copy to nothing."""
    if raw is not None:
        mirror_service.store_live(db, app_pk, raw)
        return found
    if found.reason != "subscription_not_found":
        row = mirror_repository.get_subscription(db, app_pk, subscription_id)
        if row is not None:
            # Better an older copy than nothing: the subscriber still sees their plan.
            return Lookup(
                subscription_from(mirror_service.assemble(db, row)),
                "stale_mirror",
                found.reason,
                found.stripe_calls,
            )
    return found


def lookup_subscription(
    db: Session,
    app_pk: int,
    subscription_id: str | None,
    settings: Settings,
    encryptor: Encryptor,
    *,
    timeout: float | None = None,
    require_enabled: bool = True,
    prefetched: Lookup | None = None,
) -> Lookup:
    """The mirror row when fresh (0 Stripe calls), else one live read that refreshes it.

    ``prefetched`` is the outcome of ``prefetch`` for this subscription: its live read was
    made outside any transaction and is not made again.
    """
    if prefetched is not None and subscription_id:
        if prefetched.subscription is not None:
            return prefetched
        return _settle(db, app_pk, subscription_id, prefetched, None)
    plan = _plan(db, app_pk, subscription_id, encryptor, require_enabled=require_enabled)
    if plan.done is not None:
        return plan.done
    assert plan.key is not None and subscription_id
    found, raw = _live(settings, plan.key, subscription_id, timeout)
    return _settle(db, app_pk, subscription_id, found, raw)


def prefetch(
    factory: sessionmaker[Session],
    app_pk: int,
    subscription_id: str | None,
    settings: Settings,
    encryptor: Encryptor,
) -> Lookup | None:
    """Make enrichment's live read, when one is needed, without holding a transaction.

    On SQLite a session's first statement takes the write lock (BEGIN IMMEDIATE), so a live
    read made inside a request's transaction holds every writer back for up to the Stripe
    timeout. Here the database is read in one short session, Stripe is asked with no
    session open, and the result is stored in another short one. Returns the live outcome
    (pass it to ``lookup_subscription``), or None when no Stripe call was needed.
    """
    with factory() as db:
        plan = _plan(db, app_pk, subscription_id, encryptor, require_enabled=True, assemble=False)
    if plan.done is not None or plan.key is None or not subscription_id:
        return None
    found, raw = _live(settings, plan.key, subscription_id, None)
    if raw is not None:
        with transaction(factory) as db:
            mirror_service.store_live(db, app_pk, raw)
    return found


# --- the whole enrichment ----------------------------------------------------------------------


def enrich(
    db: Session,
    app_pk: int,
    subscription_id: str | None,
    settings: Settings,
    encryptor: Encryptor,
    *,
    request_fields: Mapping[str, Any] | None = None,
    prefetched: Lookup | None = None,
) -> dict[str, Any]:
    """Dotted source fields + mapped fields + ``enrichment.*`` saying where they came from."""
    found = lookup_subscription(
        db, app_pk, subscription_id, settings, encryptor, prefetched=prefetched
    )
    fields: dict[str, Any] = {}
    if found.subscription is not None:
        fields.update(flatten_subscription(found.subscription))
    mappings = repository.list_mappings(db, app_pk)
    if mappings:
        sources = {**flatten_mapping(dict(request_fields or {})), **fields}
        mapped = apply_mappings(mappings, sources)
        fields.update(mapped.values)
        fields["enrichment.failed_conversions"] = len(mapped.failed)
        if mapped.failed:
            fields["enrichment.failed_fields"] = mapped.failed
        if mapped.missing:
            fields["enrichment.missing_fields"] = mapped.missing
    fields["enrichment.source"] = "fallback" if found.subscription is None else found.source
    fields["enrichment.stripe_calls"] = found.stripe_calls
    if prefetched is not None:
        # The live read happened before the page's transaction (no lock held meanwhile).
        fields["enrichment.prefetched"] = True
    if found.reason:
        fields["enrichment.reason"] = found.reason
    if found.reason or (mappings and fields.get("enrichment.failed_conversions")):
        log.info(
            "enrichment.degraded",
            extra={
                "app_pk": app_pk,
                "reason": found.reason,
                "failed_conversions": fields.get("enrichment.failed_conversions", 0),
            },
        )
    return fields


def source_fields(
    db: Session, app_pk: int, subscription_id: str, settings: Settings, encryptor: Encryptor
) -> tuple[str, dict[str, Any]]:
    """Every source path with a sample value, for building mappings (admin)."""
    found = lookup_subscription(
        db,
        app_pk,
        subscription_id,
        settings,
        encryptor,
        timeout=billing_settings().stripe_admin_timeout,
        require_enabled=False,
    )
    if found.subscription is None:
        reason = found.reason or "unknown"
        if reason == "not_connected":
            raise billing_service.NotConnected("this app is not connected to Stripe")
        if reason in ("subscription_not_found", "invalid_subscription_id"):
            raise NotFound(f"no subscription {subscription_id!r} in the connected Stripe account")
        if reason == "stripe_unavailable":
            raise BillingUnavailable("Stripe did not answer in time; try again")
        raise BillingError(f"cannot read the subscription from Stripe ({reason})")
    return found.source, flatten_subscription(found.subscription, keep_nulls=True)


# --- samples for the admin's preview (the mirror only: never a Stripe call) ---------------------


@dataclass(frozen=True)
class Sample:
    subscription_id: str
    customer_id: str
    status: str
    email: str | None


def sample_subscriptions(db: Session, app_pk: int, *, limit: int = 50) -> list[Sample]:
    """Mirrored subscriptions to preview the cancel page as (most recently synced first)."""
    samples = []
    for row in mirror_repository.list_subscriptions(db, app_pk, limit=limit):
        customer = mirror_repository.get_customer(db, app_pk, row.customer_id)
        email = customer.raw.get("email") if customer is not None else None
        samples.append(
            Sample(row.subscription_id, row.customer_id, row.status, email if email else None)
        )
    return samples


def mirrored_fields(
    db: Session,
    app_pk: int,
    subscription_id: str,
    *,
    request_fields: Mapping[str, Any] | None = None,
) -> dict[str, Any] | None:
    """What enrichment would add for this subscription, read from the mirror however old
    (None when it is not mirrored). For previews: no Stripe call, nothing written."""
    row = mirror_repository.get_subscription(db, app_pk, subscription_id)
    if row is None:
        return None
    fields: dict[str, Any] = dict(
        flatten_subscription(subscription_from(mirror_service.assemble(db, row)))
    )
    mappings = repository.list_mappings(db, app_pk)
    if mappings:
        sources = {**flatten_mapping(dict(request_fields or {})), **fields}
        fields.update(apply_mappings(mappings, sources).values)
    fields["enrichment.source"] = "mirror"
    return fields
