"""The last step's words: what happened, said plainly in the subscriber's language.

Built from the session's outcome and its billing action's ``result.summary`` (Stripe's own
answer: the coupon's terms, the pause's end, the cancel's effective date), so a reopened
finished link shows the same sentence, and the business reads it in the session's record.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any

from babel import UnknownLocaleError
from babel import numbers as babel_numbers
from sqlalchemy import select
from sqlalchemy.orm import Session

from stayflow.billing.actions.models import APPLIED, FAILED, PENDING, SKIPPED, BillingAction
from stayflow.cancel_sessions.models import CANCELED, DEFLECTED, REDIRECTED, SAVED, CancelSession
from stayflow.flows.copy import format_date
from stayflow.page import i18n
from stayflow.page.schemas import ResultOut

Gettext = Callable[[str], str]
Ngettext = Callable[[str, str, int], str]


def _babel_locale(locale: str) -> str:
    return locale.replace("-", "_")


def _money(amount: int, currency: str, locale: str) -> str:
    """Integer minor units as the locale writes that currency."""
    code = currency.upper()
    digits = babel_numbers.get_currency_precision(code)
    value = Decimal(amount) / (Decimal(10) ** digits)
    try:
        return babel_numbers.format_currency(value, code, locale=_babel_locale(locale))
    except (ValueError, UnknownLocaleError):
        return babel_numbers.format_currency(value, code, locale="en")


def _percent(value: float, locale: str) -> str:
    try:
        return babel_numbers.format_percent(Decimal(str(value)) / 100, locale=_babel_locale(locale))
    except (ValueError, UnknownLocaleError):
        return f"{value:g}%"


def _next_invoices(ngettext: Ngettext, amount: str, count: int) -> str:
    return ngettext(
        "%(amount)s off is applied to your next invoice",
        "%(amount)s off is applied to your next %(num)d invoices",
        count,
    ) % {"amount": amount, "num": count}


def _discount(summary: dict[str, Any], locale: str, _: Gettext, ngettext: Ngettext) -> str | None:
    if summary.get("percent_off") is not None:
        amount = _percent(float(summary["percent_off"]), locale)
    elif summary.get("amount_off") is not None and summary.get("currency"):
        amount = _money(int(summary["amount_off"]), str(summary["currency"]), locale)
    else:
        return None
    duration = summary.get("duration")
    if duration == "once":
        return _next_invoices(ngettext, amount, 1)
    if duration == "forever":
        return _("%(amount)s off is applied to all your invoices from now on") % {"amount": amount}
    months = summary.get("duration_in_months")
    if isinstance(months, int) and months > 0:
        if summary.get("interval") == "month" and summary.get("interval_count", 1) == 1:
            return _next_invoices(ngettext, amount, months)
        return ngettext(
            "%(amount)s off is applied to your invoices for the next month",
            "%(amount)s off is applied to your invoices for the next %(num)d months",
            months,
        ) % {"amount": amount, "num": months}
    return _("%(amount)s off is applied to your subscription") % {"amount": amount}


def _offer_sentence(
    summary: dict[str, Any], locale: str, _: Gettext, ngettext: Ngettext
) -> str | None:
    kind = summary.get("type")
    if kind == "discount":
        return _discount(summary, locale, _, ngettext)
    if kind == "pause" and summary.get("resumes_at"):
        return _("Your subscription is paused until %(date)s") % {
            "date": format_date(summary["resumes_at"], locale)
        }
    if kind == "extension" and summary.get("resumes_at"):
        return _("You will not be charged until %(date)s; your access continues as usual") % {
            "date": format_date(summary["resumes_at"], locale)
        }
    if kind == "trial_extension" and summary.get("trial_end"):
        return _("Your trial now ends on %(date)s") % {
            "date": format_date(summary["trial_end"], locale)
        }
    if kind == "plan_change":
        amount, currency = summary.get("unit_amount"), summary.get("currency")
        interval = summary.get("interval")
        if isinstance(amount, int) and currency and interval in ("day", "week", "month", "year"):
            price = _money(amount, str(currency), locale)
            per = {
                "day": _("%(price)s per day"),
                "week": _("%(price)s per week"),
                "month": _("%(price)s per month"),
                "year": _("%(price)s per year"),
            }[str(interval)] % {"price": price}
            return _("Your plan is changed: you now pay %(price)s") % {"price": per}
        return _("Your plan is changed")
    return None


def _cancel_sentence(summary: dict[str, Any], locale: str, _: Gettext) -> str:
    when = summary.get("effective_at")
    if summary.get("at_period_end") and when:
        return _(
            "Your subscription ends on %(date)s — you keep access until then. "
            "No further charge will be made."
        ) % {"date": format_date(when, locale)}
    if when:
        return _("Your subscription ended on %(date)s. No further charge will be made.") % {
            "date": format_date(when, locale)
        }
    return _("Your subscription is cancelled. No further charge will be made.")


def _action(db: Session, session_id: str, kind: str) -> BillingAction | None:
    return db.scalar(
        select(BillingAction).where(
            BillingAction.session_id == session_id, BillingAction.kind == kind
        )
    )


def describe(db: Session, cs: CancelSession, locale: str) -> ResultOut:
    """What the finished session did, in ``locale``: a heading, a sentence, and its state."""
    translations = i18n.translations(locale)
    _, ngettext = translations.gettext, translations.ngettext
    if cs.outcome == CANCELED:
        action = _action(db, cs.session_id, "cancel")
        if action is None or action.status == SKIPPED:
            return ResultOut(
                state="done",
                heading=_("Your cancellation is confirmed"),
                message=_("Your subscription is cancelled. No further charge will be made."),
            )
        if action.status == APPLIED:
            return ResultOut(
                state="done",
                heading=_("Your cancellation is confirmed"),
                message=_cancel_sentence(dict(action.result.get("summary") or {}), locale, _),
            )
        if action.status == PENDING:
            return ResultOut(
                state="processing",
                heading=_("Your cancellation is on its way"),
                message=_(
                    "We have your request and are finishing it with our billing provider. "
                    "Your subscription will be cancelled and no further charge will be made. "
                    "You do not need to do anything else."
                ),
            )
        return ResultOut(
            state="failed",
            heading=_("We have your cancellation request"),
            message=_(
                "We could not complete it automatically, so our team has been told and will "
                "finish it for you. You do not need to do anything else."
            ),
        )
    if cs.outcome == SAVED:
        action = _action(db, cs.session_id, "apply_offer")
        heading = _("Thank you for staying")
        if action is None or action.status == SKIPPED:
            return ResultOut(
                state="done", heading=heading, message=_("Your offer is saved on your account.")
            )
        if action.status == APPLIED:
            summary = dict(action.result.get("summary") or {})
            sentence = _offer_sentence(summary, locale, _, ngettext)
            return ResultOut(
                state="done",
                heading=heading,
                message=sentence or _("Your offer is applied to your subscription."),
            )
        if action.status == PENDING:
            return ResultOut(
                state="processing",
                heading=_("Your offer is on its way"),
                message=_(
                    "We have your choice and are applying it with our billing provider; it "
                    "takes effect within a few minutes. You do not need to do anything else."
                ),
            )
        assert action.status == FAILED
        return ResultOut(
            state="failed",
            heading=_("We have your choice"),
            message=_(
                "We could not apply the offer automatically, so our team has been told and "
                "will be in touch. Your subscription is unchanged for now."
            ),
        )
    if cs.outcome == DEFLECTED:
        return ResultOut(
            state="done",
            heading=_("Glad you are staying"),
            message=_("Your subscription continues unchanged."),
        )
    if cs.outcome == REDIRECTED:
        return ResultOut(
            state="done",
            heading=_("Thank you"),
            message=_("There is nothing more to do here."),
        )
    return ResultOut(
        state="done",
        heading=_("This request is already complete"),
        message=_("There is nothing more to do here. Thank you."),
    )
