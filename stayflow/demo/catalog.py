"""The demo business's Stripe catalog and subscribers, created in the sandbox over its API.

Plain form-encoded HTTP, as Stripe's API takes it (the ``stripe`` SDK is for
``billing/stripe`` only).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

import httpx

SECRET_KEY = "sk_test_stayflow_demo"  # noqa: S105 - the sandbox takes any sk_test_ key


@dataclass(frozen=True)
class Plan:
    id: str
    amount: int  # minor units
    currency: str
    interval: str
    product: str
    label: str


PLANS = (
    Plan("pro_monthly", 2000, "usd", "month", "Pro", "Pro, $20.00 a month"),
    Plan("pro_yearly", 20000, "usd", "year", "Pro yearly", "Pro, $200.00 a year"),
    Plan("team_monthly", 6000, "usd", "month", "Team", "Team, $60.00 a month"),
    Plan("pro_monthly_jpy", 2500, "jpy", "month", "Pro (Japan)", "Pro, ¥2,500 a month"),
)
PLAN_BY_ID = {p.id: p for p in PLANS}

FIRST = (
    "Ada",
    "Grace",
    "Alan",
    "Katherine",
    "Edsger",
    "Barbara",
    "Donald",
    "Frances",
    "Ken",
    "Margaret",
    "Dennis",
    "Radia",
    "John",
    "Hedy",
    "Tim",
    "Sophie",
    "Linus",
    "Annie",
    "Claude",
    "Mary",
    "Niklaus",
    "Jean",
    "Yukihiro",
    "Shafi",
    "Whitfield",
    "Adele",
)
LAST = (
    "Lovelace",
    "Hopper",
    "Turing",
    "Johnson",
    "Dijkstra",
    "Liskov",
    "Knuth",
    "Allen",
    "Thompson",
    "Hamilton",
    "Ritchie",
    "Perlman",
    "Backus",
    "Lamarr",
    "Berners-Lee",
    "Wilson",
    "Torvalds",
    "Easley",
    "Shannon",
    "Keller",
    "Wirth",
    "Sammet",
    "Matsumoto",
    "Goldwasser",
    "Diffie",
    "Goldberg",
)


class SandboxApi:
    """Just the calls the demo makes, with the demo's key."""

    def __init__(self, url: str) -> None:
        self.http = httpx.Client(base_url=url, auth=(SECRET_KEY, ""), timeout=30.0)

    def close(self) -> None:
        self.http.close()

    def post(self, path: str, data: dict[str, Any] | None = None) -> dict[str, Any]:
        answer = self.http.post(path, data=data or {})
        if answer.status_code != 200:
            raise RuntimeError(f"sandbox POST {path}: {answer.text[:300]}")
        return dict(answer.json())

    def get(self, path: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        answer = self.http.get(path, params=params)
        if answer.status_code != 200:
            raise RuntimeError(f"sandbox GET {path}: {answer.text[:300]}")
        return dict(answer.json())

    def delete(self, path: str) -> dict[str, Any]:
        answer = self.http.delete(path)
        if answer.status_code != 200:
            raise RuntimeError(f"sandbox DELETE {path}: {answer.text[:300]}")
        return dict(answer.json())

    def now(self) -> int:
        return int(self.http.get("/_sandbox/clock").json()["now"])

    def advance(self, seconds: int) -> int:
        answer = self.http.post("/_sandbox/clock", json={"advance": seconds})
        if answer.status_code != 200:
            raise RuntimeError(f"sandbox clock: {answer.text[:300]}")
        return int(answer.json()["now"])

    # -- what the demo business sells ------------------------------------------------------

    def create_catalog(self) -> None:
        self.post(
            "/v1/coupons",
            {"id": "SAVE20", "percent_off": 20, "duration": "repeating", "duration_in_months": 3},
        )
        for plan in PLANS:
            self.post(
                "/v1/plans",
                {
                    "id": plan.id,
                    "amount": plan.amount,
                    "currency": plan.currency,
                    "interval": plan.interval,
                    "product[name]": plan.product,
                },
            )

    def subscribe(
        self,
        name: str,
        email: str,
        plan: str,
        *,
        trial_days: int = 0,
        group: str = "history",
        card: str = "pm_card_visa",
    ) -> dict[str, Any]:
        customer = self.post(
            "/v1/customers",
            {
                "name": name,
                "email": email,
                "metadata[demo]": group,
                # Stripe's test cards: most pay, a few start failing later (past due, unpaid).
                "payment_method": card,
                "invoice_settings[default_payment_method]": card,
            },
        )
        data: dict[str, Any] = {
            "customer": customer["id"],
            "items[0][price]": plan,
            "metadata[demo]": group,
        }
        if trial_days:
            data["trial_period_days"] = trial_days
        return self.post("/v1/subscriptions", data)

    def subscriptions(self, group: str) -> list[dict[str, Any]]:
        """Every subscription of the demo group (paged, at most 100 pages)."""
        found: list[dict[str, Any]] = []
        after: str | None = None
        for _ in range(100):
            params: dict[str, Any] = {"limit": 100, "status": "all"}
            if after:
                params["starting_after"] = after
            page = self.get("/v1/subscriptions", params)
            found += [s for s in page["data"] if (s.get("metadata") or {}).get("demo") == group]
            if not page.get("has_more") or not page["data"]:
                break
            after = page["data"][-1]["id"]
        return found


def random_person(rng: random.Random, number: int) -> tuple[str, str]:
    first, last = rng.choice(FIRST), rng.choice(LAST)
    email = f"{first}.{last}.{number}@example.com".lower().replace("-", "")
    return f"{first} {last}", email


def random_card(rng: random.Random) -> str:
    """Most cards pay; one in twenty attaches but declines every charge."""
    return "pm_card_chargeCustomerFail" if rng.random() < 0.05 else "pm_card_visa"


def random_plan(rng: random.Random) -> tuple[str, int]:
    """(plan id, trial days): mostly monthly, some yearly, team and JPY; a few on trial."""
    plan = rng.choices(
        ["pro_monthly", "pro_yearly", "team_monthly", "pro_monthly_jpy"], weights=[5, 2, 2, 1]
    )[0]
    trial = 14 if plan != "pro_yearly" and rng.random() < 0.15 else 0
    return plan, trial
