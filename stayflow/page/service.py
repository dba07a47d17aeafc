"""Builds the page model from a session: steps, translated words, personalized copy."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.orm import Session

from stayflow.apps.models import App
from stayflow.billing import service as billing
from stayflow.billing.actions.plans import offer_shown
from stayflow.billing.schemas import CancelOptions
from stayflow.cancel_sessions import service as sessions
from stayflow.cancel_sessions.enrichment import enricher_from
from stayflow.cancel_sessions.models import CancelSession
from stayflow.cancel_sessions.settings import CancelFlowSettings
from stayflow.cancel_sessions.settings import read as read_settings
from stayflow.flows.assignment import FlowSnapshot, offers_for_reason
from stayflow.flows.copy import format_date, render_copy
from stayflow.offers.schemas import Offer
from stayflow.page import i18n
from stayflow.page.schemas import (
    Actions,
    BrandingOut,
    Copy,
    OfferOut,
    PageModel,
    ReasonOut,
    ResultOut,
    Step,
)

Gettext = Callable[[str], str]
Ngettext = Callable[[str, str, int], str]


@dataclass
class PageState:
    """Everything an endpoint needs about one session, loaded once per request."""

    cs: CancelSession
    app: App
    settings: CancelFlowSettings
    snap: FlowSnapshot
    locale: str
    # Offers not to show: refused by Stripe under the current flows, or to this session.
    hidden_offers: frozenset[str] = frozenset()
    # For a finished session: what happened, in the subscriber's language.
    result: ResultOut | None = field(default=None)
    # How stayflow will cancel in Stripe; None when it will not (the business does).
    cancel: CancelOptions | None = field(default=None)

    @property
    def gettext(self) -> Gettext:
        return i18n.translations(self.locale).gettext

    @property
    def ngettext(self) -> Ngettext:
        return i18n.translations(self.locale).ngettext


def load(
    db: Session,
    token: str,
    services: Mapping[str, Any],
    accept_language: str | None,
    now: datetime,
) -> PageState:
    cs = sessions.find_by_token(db, token)
    app = sessions.app_of(db, cs)
    if cs.finished or now >= cs.expires_at:
        snap = sessions.snapshot(cs) if cs.flow else FlowSnapshot.model_validate(_empty_flow())
    else:
        snap = sessions.ensure_assigned(db, cs, app, enricher_from(services), now)
    locale = i18n.negotiate(cs.locale, accept_language)
    state = PageState(cs, app, read_settings(app), snap, locale)
    if not cs.finished:
        state.cancel = billing.cancel_options(db, app)
    refresh(db, state)
    return state


def refresh(db: Session, state: PageState) -> None:
    """(Re)compute what depends on billing: hidden offers, or the finished session's result."""
    from stayflow.billing.actions.service import refused_offers
    from stayflow.page.result import describe

    cs = state.cs
    if cs.finished:
        state.result = describe(db, cs, state.locale)
        state.hidden_offers = frozenset()
    else:
        state.result = None
        state.hidden_offers = frozenset(refused_offers(db, cs.app_pk, cs.session_id))


def _empty_flow() -> dict[str, Any]:
    return {"experience": {"id": "default"}, "reasons": [], "offers": []}


def _localized(
    base: Mapping[str, Any], translations: Mapping[str, Any], locale: str
) -> dict[str, Any]:
    """The item's copy in ``locale`` where the business gave it, else its own copy."""
    chosen = translations.get(locale) or translations.get(locale.split("-", 1)[0])
    merged = dict(base)
    if chosen is not None:
        merged.update({k: v for k, v in dict(chosen).items() if v})
    return merged


def _period(ngettext: Ngettext, count: int, interval: str) -> str:
    if interval == "day":
        return ngettext("%(num)d day", "%(num)d days", count) % {"num": count}
    if interval == "week":
        return ngettext("%(num)d week", "%(num)d weeks", count) % {"num": count}
    return ngettext("%(num)d month", "%(num)d months", count) % {"num": count}


def _offer_defaults(
    offer: Offer, _: Gettext, ngettext: Ngettext
) -> tuple[str, str, str, dict[str, Any]]:
    """Default headline, body, button and the terms shown for an offer's type."""
    if offer.type == "discount":
        return (
            _("A discount if you stay"),
            _("Keep everything you have today and pay less."),
            _("Accept the discount"),
            {"promotion_code": offer.promotion_code}
            if offer.promotion_code
            else {"coupon": offer.coupon},
        )
    if offer.type == "pause":
        period = _period(ngettext, offer.duration, offer.interval)
        return (
            _("Pause for %(period)s instead") % {"period": period},
            _("Take a break: you won't be charged, and everything will be here when you return."),
            _("Pause my subscription"),
            {"duration": offer.duration, "interval": offer.interval},
        )
    if offer.type == "extension":
        period = _period(ngettext, offer.duration, offer.interval)
        return (
            _("Get %(period)s free") % {"period": period},
            _("Stay with us and the next %(period)s are on us.") % {"period": period},
            _("Claim my free time"),
            {"duration": offer.duration, "interval": offer.interval},
        )
    if offer.type == "plan_change":
        return (
            _("Switch to a plan that fits better"),
            _("Keep your account and move to a plan that suits how you use it."),
            _("Switch plan"),
            {"price": offer.price},
        )
    if offer.type == "trial_extension":
        days = ngettext("%(num)d day", "%(num)d days", offer.days) % {"num": offer.days}
        return (
            _("Take %(days)s more to try it") % {"days": days},
            _("Your trial gets longer, so you can decide without hurry."),
            _("Extend my trial"),
            {"days": offer.days},
        )
    return (
        _("Talk to us first"),
        _("We may be able to fix what's wrong."),
        _("Contact us"),
        {"url": offer.url},
    )


def _offer_out(offer: Offer, state: PageState, fields: Mapping[str, Any]) -> OfferOut:
    _, ngettext = state.gettext, state.ngettext
    headline, body, button, details = _offer_defaults(offer, _, ngettext)
    copy = _localized(
        {"headline": offer.headline, "body": offer.body, "button": offer.button},
        offer.translations,
        state.locale,
    )
    return OfferOut(
        id=offer.id,
        type=offer.type,
        headline=render_copy(copy["headline"], fields, state.locale) or headline,
        body=render_copy(copy["body"], fields, state.locale) if copy["body"] else body,
        button=render_copy(copy["button"], fields, state.locale) or button,
        details=details,
    )


def branding(snap: FlowSnapshot) -> BrandingOut:
    """The experience's branding (the result page wears it too)."""
    found = snap.experience.branding
    return BrandingOut(
        company_name=found.company_name if found else None,
        logo=found.logo if found else None,
        **{
            k: v
            for k, v in {
                "primary_color": found.primary_color if found else None,
                "background_color": found.background_color if found else None,
            }.items()
            if v
        },
    )


def step_of(state: PageState, now: datetime, wanted: str | None = None) -> Step:
    cs = state.cs
    if cs.finished:
        return "finished"
    if now >= cs.expires_at:
        return "expired"
    if state.snap.reasons and (cs.reason_id is None or wanted == "reason"):
        return "reason"
    shown = [
        o for o in offers_for_reason(state.snap, cs.reason_id) if o.id not in state.hidden_offers
    ]
    return "offers" if shown else "confirm"


def confirm_sentence(
    cancel: CancelOptions | None, enriched: Mapping[str, Any] | None, locale: str, _: Gettext
) -> str:
    """What cancelling will do, said before the subscriber confirms: when it ends, and
    whether anything is charged or credited, from the app's cancel options and the
    subscription's period as Stripe gave it."""
    if cancel is None:
        return _("Your subscription will be cancelled. You can come back any time.")
    also = (
        " " + _("Your other subscriptions with us are cancelled the same way.")
        if cancel.all_subscriptions
        else ""
    )
    period_end = (enriched or {}).get("subscription.current_period_end")
    if cancel.at_period_end:
        if isinstance(period_end, int | float) and not isinstance(period_end, bool):
            when = datetime.fromtimestamp(int(period_end), tz=UTC)
            return (
                _(
                    "Your subscription will end on %(date)s — you keep access until then. "
                    "No further charge will be made."
                )
                % {"date": format_date(when, locale)}
                + also
            )
        return (
            _(
                "Your subscription will end at the end of the period you have paid for. "
                "No further charge will be made."
            )
            + also
        )
    parts = [_("Your subscription will end now, and access with it.")]
    if cancel.prorate:
        parts.append(_("The unused part of the period is credited to your account."))
    if cancel.invoice_now:
        parts.append(_("Any outstanding charges are invoiced now."))
    if not cancel.prorate and not cancel.invoice_now:
        parts.append(_("No further charge will be made."))
    return " ".join(parts) + also


def build(
    state: PageState,
    *,
    csrf_token: str,
    base_path: str,
    now: datetime,
    wanted_step: str | None = None,
) -> PageModel:
    cs, snap, _ = state.cs, state.snap, state.gettext
    fields = sessions.merge_context(cs)
    step = step_of(state, now, wanted_step)
    exp = snap.experience
    exp_copy = _localized(
        exp.model_dump(include=set(Copy.model_fields)), exp.translations, state.locale
    )
    defaults = {
        "title": _("We're sorry to see you go"),
        "intro": _("Before you cancel, please tell us why you're leaving. It helps us get better."),
        "offers_title": _("Before you go, here's something for you"),
        "confirm_title": _("Confirm your cancellation"),
        "confirm_body": confirm_sentence(state.cancel, cs.enriched_fields, state.locale, _),
    }
    copy = Copy(
        **{k: render_copy(exp_copy.get(k), fields, state.locale) or v for k, v in defaults.items()}
    )
    reasons = []
    for reason in snap.reasons:
        if snap.builtin_reasons:
            label = _(reason.label)
        else:
            label = render_copy(
                _localized({"label": reason.label}, reason.translations, state.locale)["label"],
                fields,
                state.locale,
            )
        reasons.append(ReasonOut(id=reason.id, label=label, comment=reason.comment))
    offers: list[OfferOut] = []
    if step in ("offers", "reason", "confirm"):
        fitting = offers_for_reason(snap, cs.reason_id if step != "reason" else None)
        # Not an offer this subscriber's billing cannot take (a pause over an annual renewal).
        fitting = [
            o
            for o in fitting
            if o.id not in state.hidden_offers
            and offer_shown(o.model_dump(), cs.enriched_fields, now)
        ]
        if step == "offers":
            sessions.note_offers_shown(cs, [o.id for o in fitting])
        offers = [_offer_out(o, state, fields) for o in fitting] if step == "offers" else []
    brand = branding(snap)
    redirect_url = None
    if cs.finished:
        # No URL from the request or the app: this page (finished) is the result page.
        redirect_url = sessions.destination(cs, snap) or base_path
    return PageModel(
        session_id=cs.session_id,
        step=step,
        outcome=cs.outcome if cs.finished else None,
        locale=state.locale,
        reason_required=state.settings.reason_required and bool(snap.reasons),
        copy_text=copy,
        reasons=reasons,
        selected_reason_id=cs.reason_id,
        comment=cs.reason_comment,
        offers=offers,
        csrf_token=csrf_token,
        actions=Actions(
            reason=f"{base_path}/reason",
            accept=f"{base_path}/accept",
            deflect=f"{base_path}/deflect",
            cancel=f"{base_path}/cancel",
        ),
        branding=brand,
        return_url=cs.save_return_url or base_path,
        redirect_url=redirect_url or None,
        result=state.result,
    )
