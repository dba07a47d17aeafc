"""The mirror's set-based store (one read of stored versions, executemany INSERT ... ON CONFLICT
DO NOTHING, executemany conditional UPDATE) keeps the rules of the row-by-row upsert: newer
only, a live read wins a same-second tie, never out of a terminal status; on both databases."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from stayflow.db import transaction
from stayflow.mirror import repository, service
from stayflow.mirror.models import MirrorCustomer, MirrorProduct, MirrorSubscription
from tests.billing.helpers import app_pk, subscription_obj
from tests.conftest import Tenant


def _states(factory: sessionmaker[Session]) -> dict[str, tuple[str, int, str]]:
    with factory() as db:
        rows = db.execute(
            select(
                MirrorSubscription.subscription_id,
                MirrorSubscription.status,
                MirrorSubscription.version,
                MirrorSubscription.source,
            )
        ).all()
    return {sub_id: (status, version, source) for sub_id, status, version, source in rows}


def _store(
    factory: sessionmaker[Session], pk: int, raws: list[dict[str, Any]], version: int, source: str
) -> int:
    with transaction(factory) as db:
        return service.store_subscriptions(db, pk, raws, version=version, source=source)


def test_a_batch_moves_each_row_forward_by_the_same_rules(
    session_factory: sessionmaker[Session], owner: Tenant
) -> None:
    pk = app_pk(session_factory, owner.app_id)
    first = [
        subscription_obj("sub_old"),
        subscription_obj("sub_tie"),
        subscription_obj("sub_new"),
        subscription_obj("sub_dead", "canceled"),
        subscription_obj("sub_exp", "incomplete_expired"),
    ]
    assert _store(session_factory, pk, first, 200, "backfill") == 5
    # The same data again at the same version from a backfill: nothing written.
    assert _store(session_factory, pk, first, 200, "backfill") == 0

    assert (
        _store(session_factory, pk, [subscription_obj("sub_old", "past_due")], 100, "events") == 0
    )
    assert _store(session_factory, pk, [subscription_obj("sub_tie", "past_due")], 200, "live") == 1
    assert _store(session_factory, pk, [subscription_obj("sub_new", "unpaid")], 300, "events") == 1
    # Stripe never revives a canceled subscription; a later terminal state still lands.
    assert _store(session_factory, pk, [subscription_obj("sub_dead")], 300, "live") == 0
    assert (
        _store(session_factory, pk, [subscription_obj("sub_exp", "canceled")], 300, "events") == 1
    )
    assert _states(session_factory) == {
        "sub_old": ("active", 200, "backfill"),
        "sub_tie": ("past_due", 200, "live"),
        "sub_new": ("unpaid", 300, "events"),
        "sub_dead": ("canceled", 200, "backfill"),
        "sub_exp": ("canceled", 300, "events"),
    }


def test_one_batch_mixing_new_newer_older_and_a_repeated_id(
    session_factory: sessionmaker[Session], owner: Tenant
) -> None:
    pk = app_pk(session_factory, owner.app_id)
    _store(
        session_factory, pk, [subscription_obj("sub_a"), subscription_obj("sub_b")], 200, "events"
    )
    with transaction(session_factory) as db:
        rows = [
            repository.subscription_values(
                pk, subscription_obj("sub_a", "past_due"), version=300, source="events"
            ),
            repository.subscription_values(
                pk, subscription_obj("sub_b", "past_due"), version=100, source="events"
            ),
            repository.subscription_values(
                pk, subscription_obj("sub_c"), version=300, source="events"
            ),
        ]
        assert repository.upsert_subscriptions(db, rows) == 2
    # A page naming a subscription twice stores the last one.
    pages = [subscription_obj("sub_d"), subscription_obj("sub_d", "trialing")]
    assert _store(session_factory, pk, pages, 400, "backfill") == 1
    states = _states(session_factory)
    assert states["sub_a"][:2] == ("past_due", 300)
    assert states["sub_b"][:2] == ("active", 200)
    assert states["sub_c"][:2] == ("active", 300)
    assert states["sub_d"][:2] == ("trialing", 400)


def test_a_row_another_writer_inserted_after_the_read_is_not_rolled_back(
    session_factory: sessionmaker[Session], owner: Tenant, monkeypatch: pytest.MonkeyPatch
) -> None:
    pk = app_pk(session_factory, owner.app_id)
    _store(session_factory, pk, [subscription_obj("sub_race", "past_due")], 500, "webhook")
    # The read of stored versions is made to miss the row, as when another transaction
    # inserts it between that read and our INSERT: a race a test cannot time reliably.
    monkeypatch.setattr(repository, "subscription_states", lambda db, app_pk, ids: {})
    assert _store(session_factory, pk, [subscription_obj("sub_race")], 400, "backfill") == 0
    assert _states(session_factory)["sub_race"][:2] == ("past_due", 500)
    assert _store(session_factory, pk, [subscription_obj("sub_race")], 600, "backfill") == 1
    assert _states(session_factory)["sub_race"][:2] == ("active", 600)


def test_expanded_customers_and_products_are_stored_and_only_move_forward(
    session_factory: sessionmaker[Session], owner: Tenant
) -> None:
    pk = app_pk(session_factory, owner.app_id)
    raw = subscription_obj("sub_x")
    raw["customer"] = {"id": "cus_x", "object": "customer", "email": "a@example.com"}
    raw["items"]["data"][0]["price"]["product"] = {"id": "prod_x", "name": "Pro"}
    _store(session_factory, pk, [raw], 200, "backfill")
    assert raw["customer"]["id"] == "cus_x"  # the caller's object is left as it was
    with session_factory() as db:
        row = repository.get_subscription(db, pk, "sub_x")
        assert row is not None
        assert row.raw["customer"] == "cus_x"
        assert row.raw["items"]["data"][0]["price"]["product"] == "prod_x"
    with transaction(session_factory) as db:
        older = {"id": "cus_x", "email": "old@example.com"}
        assert repository.upsert_customer(db, pk, older, version=100) is False
        same = {"id": "cus_x", "email": "same@example.com"}
        assert repository.upsert_customer(db, pk, same, version=200) is True
        assert (
            repository.upsert_products(
                db,
                [
                    repository.product_values(pk, {"id": "prod_x", "name": "Old"}, version=150),
                    repository.product_values(pk, {"id": "prod_y", "name": "New"}, version=150),
                ],
            )
            == 1
        )
    with session_factory() as db:
        emails = db.scalars(select(MirrorCustomer.email)).all()
        names = dict(db.execute(select(MirrorProduct.product_id, MirrorProduct.name)).all())
    assert emails == ["same@example.com"]
    assert names == {"prod_x": "Pro", "prod_y": "New"}
