"""Offer configuration checked against the connected Stripe account when it is saved.

A discount's coupon must exist and still be valid; a plan change's price must exist, be
active and recurring, and be in a currency the app's subscriptions use. Only new or changed
offers are checked (an unrelated edit does not fail on an offer saved long ago). An app
without a Stripe connection, or with offers off, is not checked: nothing would be applied.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from stayflow.apps.models import App
from stayflow.billing import repository as billing_repository
from stayflow.billing import service as billing_service
from stayflow.billing.actions.config import action_settings
from stayflow.billing.provider import (
    BillingError,
    BillingObjectMissing,
    BillingUnavailable,
    BillingWriter,
    OfferCatalog,
)
from stayflow.billing.schemas import StripeSetup
from stayflow.errors import BadRequest

OfferCheck = Callable[[Session, App, list[dict[str, Any]]], None]


class InvalidOfferConfig(BadRequest):
    error_type = "invalid_offer"


def _writer(db: Session, app: App, services: Mapping[str, Any]) -> BillingWriter | None:
    from stayflow.billing.actions.service import WRITER_FACTORIES

    conn = billing_repository.get_connection(db, app)
    if conn is None or not StripeSetup.model_validate(conn.setup or {}).offers:
        return None
    key = billing_service.connected_key(services["encryptor"], conn)
    if key is None:
        return None
    timeout = action_settings().worker_timeout
    return WRITER_FACTORIES[conn.provider](services["settings"], key, timeout)


def _app_currencies(db: Session, app: App) -> set[str]:
    from stayflow.mirror.models import MirrorSubscription

    rows = db.scalars(
        select(MirrorSubscription.currency).where(MirrorSubscription.app_pk == app.id).distinct()
    ).all()
    return {c.lower() for c in rows if c}


def check_offer(db: Session, app: App, writer: BillingWriter, offer: dict[str, Any]) -> None:
    where = f"offer {offer.get('id')!r}"
    kind = offer.get("type")
    try:
        if kind == "discount":
            if offer.get("promotion_code"):
                code = str(offer["promotion_code"])
                try:
                    promo = writer.retrieve_promotion_code(code)
                except BillingObjectMissing:
                    raise InvalidOfferConfig(
                        f"{where}: promotion code {code!r} does not exist in the connected "
                        "Stripe account"
                    ) from None
                if not promo.active or promo.coupon_id is None:
                    raise InvalidOfferConfig(f"{where}: promotion code {code!r} is not active")
                offer = {**offer, "coupon": promo.coupon_id}
            coupon_id = str(offer["coupon"])
            try:
                coupon = writer.retrieve_coupon(coupon_id)
            except BillingObjectMissing:
                raise InvalidOfferConfig(
                    f"{where}: coupon {coupon_id!r} does not exist in the connected Stripe account"
                ) from None
            if not coupon.valid:
                raise InvalidOfferConfig(
                    f"{where}: coupon {coupon_id!r} is no longer valid (expired, deleted or "
                    "fully redeemed)"
                )
        elif kind == "plan_change":
            price_id = str(offer["price"])
            try:
                price = writer.retrieve_price(price_id)
            except BillingObjectMissing:
                raise InvalidOfferConfig(
                    f"{where}: price {price_id!r} does not exist in the connected Stripe account"
                ) from None
            if not price.active:
                raise InvalidOfferConfig(f"{where}: price {price_id!r} is archived (inactive)")
            if not price.recurring:
                raise InvalidOfferConfig(f"{where}: price {price_id!r} is not a recurring price")
            currencies = _app_currencies(db, app)
            if currencies and price.currency.lower() not in currencies:
                raise InvalidOfferConfig(
                    f"{where}: price {price_id!r} is in {price.currency.upper()}, but this "
                    f"app's subscriptions are in {', '.join(sorted(c.upper() for c in currencies))}"
                    "; a plan change cannot change a subscription's currency"
                )
    except BillingUnavailable as exc:
        raise BillingUnavailable(
            f"{where}: could not check it with Stripe ({exc.message}); try again"
        ) from None
    except BillingError as exc:
        if isinstance(exc, InvalidOfferConfig):
            raise
        raise InvalidOfferConfig(f"{where}: Stripe refused the check: {exc.message}") from None


def offer_check(services: Mapping[str, Any]) -> OfferCheck:
    """The check ``flows.service.apply`` runs on new or changed offers before saving them."""

    def check(db: Session, app: App, offers: list[dict[str, Any]]) -> None:
        billing = [o for o in offers if o.get("type") in ("discount", "plan_change")]
        if not billing:
            return
        writer = _writer(db, app, services)
        if writer is None:
            return
        for offer in billing:
            check_offer(db, app, writer, offer)

    return check


def offer_catalog(db: Session, app: App, services: Mapping[str, Any]) -> OfferCatalog | None:
    """What the app's offers can name in its Stripe account (for the admin's pickers); None
    when no key is connected or offers are off. Stripe's refusals come out as BillingError."""
    writer = _writer(db, app, services)
    return None if writer is None else writer.offer_catalog()
