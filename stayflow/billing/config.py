"""Billing settings of their own (``STAYFLOW_*``), so the shared Settings stay small."""

from __future__ import annotations

from functools import lru_cache

from pydantic_settings import BaseSettings, SettingsConfigDict


class BillingSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="STAYFLOW_", extra="ignore")

    # A live lookup during precancel gives up after this long (then: default experience).
    stripe_timeout: float = 1.5
    # Admin calls (connect, permission check) and backfill pages may take longer.
    stripe_admin_timeout: float = 10.0
    stripe_backfill_timeout: float = 30.0
    # A mirror row is trusted without asking Stripe when webhooks have been flowing and it
    # (or the app's webhook stream) was heard from within this many seconds.
    mirror_max_age_seconds: float = 86_400.0


@lru_cache(maxsize=1)
def billing_settings() -> BillingSettings:
    return BillingSettings()
