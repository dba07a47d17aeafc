"""Stripe's test clocks (``/v1/test_helpers/test_clocks``), beside the sandbox's own clock.

A customer created with ``test_clock`` lives in that clock's frozen time: its subscriptions and
invoices are created, billed and renewed at the clock's time, and only advancing the clock
moves them (the sandbox's own clock leaves them alone). The sandbox advances synchronously: the
advance answers ``status: "advancing"`` as Stripe does, and the clock is ``ready`` by the
next read (Stripe takes seconds to minutes; poll ``status`` in code that runs on both).
"""

from __future__ import annotations

from typing import Any

from stayflow.sandbox.common import EXPAND, LIST, deleted, list_page
from stayflow.sandbox.emulator import Ctx, Emulator
from stayflow.sandbox.errors import invalid
from stayflow.sandbox.params import Params, Required
from stayflow.sandbox.periods import DAY, boundary
from stayflow.sandbox.store import Obj

CREATE: dict[str, Any] = {"frozen_time": Required("int"), "name": "str", **EXPAND}
ADVANCE: dict[str, Any] = {"frozen_time": Required("int"), **EXPAND}
LIST_PARAMS: dict[str, Any] = dict(LIST)
KEEP_FOR = 30 * DAY  # Stripe deletes a test clock 30 days after it is created


def create(em: Emulator, ctx: Ctx, p: Params) -> Obj:
    created = em.clock.now()
    clock: Obj = {
        "id": em.new_id("clock"),
        "object": "test_helpers.test_clock",
        "created": created,
        "deletes_after": created + KEEP_FOR,
        "frozen_time": p["frozen_time"],
        "livemode": False,
        "name": p.get("name"),
        "status": "ready",
        "status_details": {},
    }
    em.insert("test_clocks", clock)
    em.emit(ctx, "test_helpers.test_clock.created", dict(clock))
    return dict(clock)


def retrieve(em: Emulator, ctx: Ctx, p: Params, clock_id: str) -> Obj:
    return dict(em.t["test_clocks"].get(clock_id))


def list_clocks(em: Emulator, ctx: Ctx, p: Params) -> Obj:
    return list_page(em, "test_clocks", "/v1/test_helpers/test_clocks", p)


def _subscriptions(em: Emulator, clock_id: str) -> list[Obj]:
    subs = em.t["subscriptions"]
    out = []
    for cus_id in em.t["customers"].candidates("test_clock", clock_id).ids:
        for sub_id in subs.candidates("customer", cus_id).ids:
            sub = subs.find(sub_id)
            if sub is not None and sub["status"] not in ("canceled", "incomplete_expired"):
                out.append(sub)
    return out


def _advance_limit(em: Emulator, clock: Obj) -> int | None:
    """Stripe: a clock moves at most two intervals of the shortest subscription on it."""
    from stayflow.sandbox.subscription_billing import cycle_of, item_price

    limits = []
    for sub in _subscriptions(em, clock["id"]):
        interval, count = cycle_of(item_price(em, sub["_items"][0]))
        limits.append(boundary(clock["frozen_time"], interval, count, 2))
    return min(limits) if limits else None


def advance(em: Emulator, ctx: Ctx, p: Params, clock_id: str) -> Obj:
    clock = em.t["test_clocks"].get(clock_id)
    target = p["frozen_time"]
    if target <= clock["frozen_time"]:
        raise invalid(
            "The frozen_time must be after the test clock's current frozen_time.",
            param="frozen_time",
        )
    limit = _advance_limit(em, clock)
    if limit is not None and target > limit:
        raise invalid(
            "Cannot advance the test clock more than two intervals of the shortest "
            f"subscription interval on it: at most to {limit}.",
            param="frozen_time",
        )
    answer = {
        **clock,
        "status": "advancing",
        "status_details": {"advancing": {"target_frozen_time": target}},
    }
    em.emit(ctx, "test_helpers.test_clock.advancing", dict(answer))
    em.commit(ctx)
    em.run_due(clock_id, until=target)
    clock["frozen_time"] = target
    em.emit(ctx, "test_helpers.test_clock.ready", dict(clock))
    return answer


def delete(em: Emulator, ctx: Ctx, p: Params, clock_id: str) -> Obj:
    """Deleting a test clock deletes its customers and what they own (Stripe)."""
    from stayflow.sandbox.customers import customer_delete

    clock = em.t["test_clocks"].get(clock_id)
    saved = em.now_override
    em.now_override = clock["frozen_time"]
    try:
        for cus_id in list(em.t["customers"].candidates("test_clock", clock_id).ids):
            if em.t["customers"].find(cus_id) is not None:
                customer_delete(em, ctx, {}, cus_id)
    finally:
        em.now_override = saved
    em.t["test_clocks"].delete(clock_id)
    em.state.clock_due.pop(clock_id, None)
    em.emit(ctx, "test_helpers.test_clock.deleted", dict(clock))
    return deleted(clock_id, "test_helpers.test_clock")
