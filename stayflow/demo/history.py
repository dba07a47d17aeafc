"""Ninety days of subscribers, played through the real cancel flow while the clock moves.

The sandbox's clock starts 90 days in the past and stayflow reads the same clock
(``stayflow.db.set_clock``), so every session, billing action, renewal and Stripe event is
stamped with the day it happened on. Each simulated day: a few sign-ups, a few subscribers
who click Cancel (precancel, the page's JSON, a reason, then an offer, "never mind", a
cancel, or nothing at all), a few who leave outside stayflow; then the clock moves a day
and the sandbox runs what falls due (renewals, trial ends, pauses that resume, period-end
cancels). The loop is keyed on the sandbox's clock, so a restart goes on where it stopped.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import random
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx

from stayflow.demo.catalog import SandboxApi, random_card, random_person, random_plan

log = logging.getLogger("stayflow.demo")

DAY = 86400
DAYS = 90
FIRST_CUSTOMERS = 60
LIVE = ("active", "trialing", "past_due")
JSON = {"Accept": "application/json"}
COMMENTS = ("Exports to CSV", "A mobile app", "Single sign-on", "Better reports")


def sign(secret: str, subscription_id: str) -> str:
    """The auth_hash a business's server makes: HMAC-SHA256 of the subscription id."""
    return hmac.new(secret.encode(), subscription_id.encode(), hashlib.sha256).hexdigest()


@dataclass
class Target:
    stayflow_url: str
    site_url: str
    app_id: str
    app_secret: str


class Player:
    """Plays one subscriber's visit to the cancel page over HTTP, as a browser would."""

    def __init__(self, target: Target) -> None:
        self.target = target
        self.http = httpx.Client(base_url=target.stayflow_url, timeout=60.0)

    def close(self) -> None:
        self.http.close()

    def _post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        answer = self.http.post(path, json=body, headers=JSON)
        if answer.status_code >= 500:
            raise RuntimeError(f"POST {path}: {answer.status_code} {answer.text[:300]}")
        if answer.status_code >= 400:
            log.warning("demo.history.refused", extra={"path": path, "body": answer.text[:300]})
            return {}
        return dict(answer.json())

    def visit(self, sub: dict[str, Any], name: str, email: str, rng: random.Random) -> str:
        """One session; returns what the subscriber did."""
        sub_id = str(sub["id"])
        site = self.target.site_url
        answer = self.http.post(
            "/precancel",
            json={
                "app_id": self.target.app_id,
                "subscription_id": sub_id,
                "auth_hash": sign(self.target.app_secret, sub_id),
                "email": email,
                "first_name": name.split()[0],
                "save_return_url": f"{site}/?saved",
                "cancel_confirmation_url": f"{site}/?canceled",
            },
            headers={"Origin": site},
        )
        if answer.status_code != 200:
            raise RuntimeError(f"precancel: {answer.status_code} {answer.text[:300]}")
        token = str(answer.json()["url"]).rsplit("/c/", 1)[1]
        page = self.http.get(f"/c/{token}", headers=JSON)
        if page.status_code != 200:
            raise RuntimeError(f"page: {page.status_code} {page.text[:300]}")
        model = page.json()
        if rng.random() < 0.12 or not model["reasons"]:
            return "left the page"  # marked abandoned once its time is over
        csrf = model["csrf_token"]
        reason = rng.choice(model["reasons"])
        body: dict[str, Any] = {"reason_id": reason["id"], "csrf_token": csrf}
        if reason["comment"]:
            body["comment"] = rng.choice(COMMENTS)
        chosen = self._post(f"/c/{token}/reason", body)
        offers = [o for o in (chosen.get("page") or {}).get("offers", []) if _fits(o, sub)]
        roll = rng.random()
        if offers and roll < 0.5:
            offer = rng.choice(offers)
            self._post(f"/c/{token}/accept", {"offer_id": offer["id"], "csrf_token": csrf})
            return f"accepted {offer['id']}"
        if roll < 0.62:
            self._post(f"/c/{token}/deflect", {"csrf_token": csrf})
            return "deflected"
        self._post(f"/c/{token}/cancel", {"csrf_token": csrf})
        return "canceled"


def _fits(offer: dict[str, Any], sub: dict[str, Any]) -> bool:
    """What a real subscriber would take: no yearly USD plan for a yen subscriber, no longer
    trial for one who pays already."""
    if offer["type"] == "plan_change" and sub.get("currency") != "usd":
        return False
    if offer["type"] == "trial_extension" and sub.get("status") != "trialing":
        return False
    return True


def _who(sub: dict[str, Any], people: dict[str, tuple[str, str]]) -> tuple[str, str]:
    return people.get(str(sub.get("customer")), ("Friend", "friend@example.com"))


def play(
    sandbox: SandboxApi,
    target: Target,
    *,
    start: int,
    end: int,
    stop: threading.Event,
    progress: Callable[[int, int], None],
    settle: Callable[[], None],
    played_through: int = -1,
) -> int:
    """Play from the sandbox's current time to ``end``; returns the sessions played.

    ``progress(day, sessions)`` is called after each day (a restart passes the last one as
    ``played_through``, whose day is then not played twice); ``settle()`` before the clock
    moves (stayflow's jobs done, so no job runs across a day's jump). Bounded: one pass a
    day, at most ``(end - start) / DAY + 1``.
    """
    player = Player(target)
    people: dict[str, tuple[str, str]] = {}
    asked: set[str] = set()  # a subscriber clicks Cancel once in the demo's history
    played = 0
    try:
        for _ in range((end - start) // DAY + 1):
            now = sandbox.now()
            if stop.is_set() or now >= end:
                break
            day = (now - start) // DAY
            if day <= played_through:  # played before a restart; only the clock had to move
                sandbox.advance(min(DAY, end - now))
                continue
            rng = random.Random(f"stayflow-demo-{day}")
            signups = FIRST_CUSTOMERS if day == 0 else rng.randint(2, 5)
            for n in range(signups):
                name, email = random_person(rng, day * 100 + n)
                plan, trial = random_plan(rng)
                sub = sandbox.subscribe(name, email, plan, trial_days=trial, card=random_card(rng))
                people[str(sub["customer"])] = (name, email)
            live = [
                s
                for s in sandbox.subscriptions("history")
                if s["status"] in LIVE and not s.get("cancel_at_period_end")
            ]
            for sub in live:
                if str(sub["customer"]) not in people:  # a restart: ask the sandbox
                    customer = sandbox.get(f"/v1/customers/{sub['customer']}")
                    people[str(sub["customer"])] = (customer["name"], customer["email"])
            if day > 0:
                fresh = [s for s in live if s["id"] not in asked]
                for sub in rng.sample(fresh, k=min(len(fresh), rng.randint(2, 5))):
                    if stop.is_set():
                        break
                    asked.add(sub["id"])
                    name, email = _who(sub, people)
                    player.visit(sub, name, email, rng)
                    played += 1
                # Some leave without asking stayflow (a saved subscriber among them is a lapse).
                if live and rng.random() < 0.3:
                    gone = rng.choice(live)
                    sandbox.post(f"/v1/subscriptions/{gone['id']}", {"cancel_at_period_end": True})
            progress(int(day), played)
            settle()
            sandbox.advance(min(DAY, end - now))
    finally:
        player.close()
    return played
