"""Billing-action settings (``STAYFLOW_*``)."""

from __future__ import annotations

from functools import lru_cache

from pydantic_settings import BaseSettings, SettingsConfigDict


class ActionSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="STAYFLOW_BILLING_ACTION_", extra="ignore")

    # The attempt made inside the subscriber's request: one try per call, short timeout.
    inline_timeout: float = 2.0
    # Attempts the worker makes: per-call timeout, and in-attempt tries of a transient error.
    worker_timeout: float = 5.0
    worker_call_tries: int = 4
    # Longest an in-attempt retry waits (a longer Retry-After hands the job back instead).
    max_inline_wait: float = 2.0
    # Job backoff between attempts (base doubles each attempt, capped).
    backoff_base: float = 1.0
    backoff_max: float = 300.0
    max_attempts: int = 20


@lru_cache(maxsize=1)
def action_settings() -> ActionSettings:
    return ActionSettings()
