"""``POST /v1/invoices/create_preview``: the invoice a subscription change would produce.

The preview runs the real code on a copy of the account: the change (``subscription_details``,
``discounts``) is applied as ``POST /v1/subscriptions/{id}`` would apply it; if that bills at
once (``always_invoice``, a new billing period, ``cancel_now``) the preview is that invoice, else
it is the next one the subscription's clock would make (its renewal or trial end, with the
pending prorations). Then the account is put back as it was: nothing is stored, no event is
kept. As on Stripe, pass the preview's ``proration_date`` to the update to be billed exactly
what the preview showed. Its cost grows with the size of the account (the copy).
"""

from __future__ import annotations

import pickle
from typing import Any

from stayflow.sandbox import lifecycle
from stayflow.sandbox import subscriptions as subs
from stayflow.sandbox.common import EXPAND
from stayflow.sandbox.emulator import Ctx, Emulator, State
from stayflow.sandbox.errors import StripeError, invalid, missing_param
from stayflow.sandbox.params import Emptyable, Enum, ListOf, Params
from stayflow.sandbox.store import Obj
from stayflow.sandbox.subscription_billing import ENDED, cancel_now, current_period

PREVIEW: dict[str, Any] = {
    "customer": "str",
    "subscription": "str",
    "discounts": Emptyable(subs.DISCOUNT_SPEC),
    "preview_mode": Enum.of("next"),
    "subscription_details": {
        "items": ListOf(subs.ITEM_UPDATE, 20),
        "proration_behavior": subs.PRORATION,
        "proration_date": "int",
        "cancel_at_period_end": "bool",
        "cancel_at": Emptyable("int"),
        "cancel_now": "bool",
        "trial_end": "ts_now",
        "billing_cycle_anchor": Enum.of("now", "unchanged"),
        "metadata": Emptyable("metadata"),
    },
    **EXPAND,
}
_UPDATE_KEYS = (
    "items",
    "proration_behavior",
    "proration_date",
    "cancel_at_period_end",
    "cancel_at",
    "trial_end",
    "billing_cycle_anchor",
    "metadata",
)


def create_preview(em: Emulator, ctx: Ctx, p: Params) -> Obj:
    live = em.state
    saved = pickle.dumps(live, protocol=pickle.HIGHEST_PROTOCOL)
    scratch = Ctx(request_id=ctx.request_id, automatic=ctx.automatic)
    try:
        invoice = _simulate(em, scratch, p)
        return _as_preview(em.render("invoices", invoice))
    finally:
        restored: State = pickle.loads(saved)  # noqa: S301 - our own bytes, from just above
        # The request machinery holds these (this request's Idempotency-Key record, webhook
        # deliveries): keep the live ones, not copies.
        restored.idempotency = live.idempotency
        restored.deliveries = live.deliveries
        em.state = restored


def _simulate(em: Emulator, ctx: Ctx, p: Params) -> Obj:
    details: Params = p.get("subscription_details", {})
    known = set(em.t["invoices"].objects)
    if "subscription" not in p:
        # A subscription that does not exist yet: its first invoice.
        if "customer" not in p:
            raise missing_param("customer")
        if "items" not in details:
            raise missing_param("subscription_details[items]")
        create: Params = {"customer": p["customer"], "items": details["items"]}
        for key in ("trial_end", "cancel_at_period_end", "cancel_at", "metadata"):
            if key in details:
                create[key] = details[key]
        if "discounts" in p:
            create["discounts"] = p["discounts"]
        created = subs.create(em, ctx, create)
        return em.t["invoices"].get(str(created["latest_invoice"]))
    sub = em.t["subscriptions"].get(p["subscription"], "subscription")
    if "customer" in p and p["customer"] != sub["customer"]:
        raise invalid("The subscription does not belong to this customer.", param="customer")
    if sub["status"] in ENDED:
        raise invalid(
            f"No upcoming invoices for customer: {sub['customer']}",
            code="invoice_upcoming_none",
        )
    update: Params = {k: details[k] for k in _UPDATE_KEYS if k in details}
    if "discounts" in p:
        update["discounts"] = p["discounts"]
    if update:
        subs.update(em, ctx, update, sub["id"])
    if details.get("cancel_now"):
        prorate = details.get("proration_behavior", "create_prorations") != "none"
        cancel_now(em, ctx, sub, prorate=prorate, invoice_now=True)
    made = [i for i in em.t["invoices"].objects if i not in known]
    if made:
        return em.t["invoices"].get(made[-1])
    return _next_invoice(em, ctx, sub, known)


def _next_invoice(em: Emulator, ctx: Ctx, sub: Obj, known: set[str]) -> Obj:
    """Run the subscription's clock to its next billing moment, as the sandbox will."""
    when = current_period(sub)[1]
    if sub["status"] == "trialing" and sub["trial_end"] is not None:
        when = sub["trial_end"]
    for _ in range(3):  # a trial warning or a pause ending may come first
        saved, em.now_override = em.now_override, when
        try:
            lifecycle.on_due(em, ctx, sub["id"], when)
        finally:
            em.now_override = saved
        made = [i for i in em.t["invoices"].objects if i not in known]
        if made:
            return em.t["invoices"].get(made[-1])
        if sub["status"] in ENDED:
            break
    raise StripeError(
        400,
        f"No upcoming invoices for customer: {sub['customer']}",
        code="invoice_upcoming_none",
    )


def _as_preview(invoice: Obj) -> Obj:
    """A preview is a draft that was never finalized, paid or numbered."""
    preview = dict(invoice)
    preview["id"] = "upcoming_" + str(invoice["id"])
    preview["status"] = "draft"
    preview["number"] = None
    preview["attempted"] = False
    preview["attempt_count"] = 0
    preview["amount_paid"] = 0
    preview["amount_paid_off_stripe"] = 0
    preview["amount_remaining"] = invoice["amount_due"]
    preview["effective_at"] = None
    preview["status_transitions"] = {
        "finalized_at": None,
        "marked_uncollectible_at": None,
        "paid_at": None,
        "voided_at": None,
    }
    lines = preview["lines"]
    preview["lines"] = {**lines, "data": [{**x, "invoice": preview["id"]} for x in lines["data"]]}
    return preview
