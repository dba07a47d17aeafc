"""What the clock does to subscriptions: renewals, trial ends, resumes, scheduled cancels,
incomplete expiry."""

from __future__ import annotations

from stayflow.sandbox import invoices
from stayflow.sandbox.emulator import Ctx, Emulator
from stayflow.sandbox.periods import boundary
from stayflow.sandbox.store import Obj
from stayflow.sandbox.subscription_billing import (
    BILLABLE,
    ENDED,
    TRIAL_WARNING,
    after_payment,
    bill,
    cancel_now,
    current_period,
    cycle_of,
    emit_updated,
    expire_discounts,
    full_lines,
    item_price,
    reschedule,
    set_period,
    set_status,
    take_pending,
    warn_trial_end,
)

# -- the clock -----------------------------------------------------------------------------------


def on_due(em: Emulator, ctx: Ctx, sub_id: str, when: int) -> None:
    sub = em.t["subscriptions"].find(sub_id)
    if sub is None or sub["status"] in ENDED:
        return
    before = em.render("subscriptions", sub)
    if sub["status"] == "incomplete":
        if when >= sub["created"] + em.settings.incomplete_expires_after:
            invoice = em.t["invoices"].find(sub["latest_invoice"] or "")
            if invoice is not None and invoice["status"] == "open":
                invoices.void(em, ctx, invoice)
            set_status(em, sub, "incomplete_expired")
            sub["ended_at"] = when
            emit_updated(em, ctx, sub, before)
            return
    trial_end = sub["trial_end"]
    if sub["status"] == "trialing" and trial_end is not None and trial_end - TRIAL_WARNING <= when:
        warn_trial_end(em, ctx, sub)
    pause = sub["pause_collection"]
    if pause is not None and pause["resumes_at"] is not None and pause["resumes_at"] <= when:
        sub["pause_collection"] = None
    if sub["cancel_at"] is not None and sub["cancel_at"] <= when:
        cancel_now(
            em, ctx, sub, prorate=False, invoice_now=False, at=sub["cancel_at"], details=None
        )
        return
    if sub["status"] == "trialing" and sub["trial_end"] is not None and sub["trial_end"] <= when:
        end_trial(em, ctx, sub, sub["trial_end"], reason="subscription_cycle")
    elif sub["status"] in BILLABLE and current_period(sub)[1] <= when:
        renew(em, ctx, sub)
    if sub["status"] not in ENDED:
        emit_updated(em, ctx, sub, before)
        reschedule(em, sub)


def end_trial(em: Emulator, ctx: Ctx, sub: Obj, at: int, reason: str) -> None:
    customer = em.t["customers"].get(sub["customer"])
    no_pm = invoices.payment_would_fail(em, sub, customer) == "no_payment_method"
    behavior = sub["trial_settings"]["end_behavior"]["missing_payment_method"]
    interval, count = cycle_of(item_price(em, sub["_items"][0]))
    sub["_anchor"] = at
    sub["_k"] = 0
    sub["billing_cycle_anchor"] = at
    end = boundary(at, interval, count, 1)
    if (
        no_pm
        and sub["collection_method"] == "charge_automatically"
        and behavior != "create_invoice"
    ):
        if behavior == "cancel":
            cancel_now(
                em,
                ctx,
                sub,
                prorate=False,
                invoice_now=False,
                at=at,
                reason="cancellation_requested",
            )
            return
        set_status(em, sub, "paused")
        set_period(sub, at, end)
        em.emit(ctx, "customer.subscription.paused", em.render("subscriptions", sub))
        return
    set_period(sub, at, end)
    set_status(em, sub, "active")
    lines = [*full_lines(em, sub, at, end), *take_pending(em, sub)]
    _, outcome = bill(em, ctx, sub, lines, reason, at, at)
    after_payment(em, sub, outcome)


def renew(em: Emulator, ctx: Ctx, sub: Obj) -> None:
    interval, count = cycle_of(item_price(em, sub["_items"][0]))
    old_start, old_end = current_period(sub)
    sub["_k"] += 1
    start = old_end
    end = boundary(sub["_anchor"], interval, count, sub["_k"] + 1)
    set_period(sub, start, end)
    expire_discounts(em, ctx, sub, start)
    lines = [*full_lines(em, sub, start, end), *take_pending(em, sub)]
    # The invoice's period is the one just ended (Stripe bills usage in arrears, seats ahead).
    _, outcome = bill(em, ctx, sub, lines, "subscription_cycle", old_start, old_end)
    after_payment(em, sub, outcome)
