"""Configuration, read from ``STAYFLOW_*`` environment variables.

Every setting may also be read from a file named by ``STAYFLOW_<NAME>_FILE``
(Docker and Kubernetes secrets), which wins over the plain variable.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Any, Literal

from pydantic import field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_DATABASE_URL = "sqlite:///./stayflow.db"
INSECURE_SECRET_KEYS = frozenset({"", "change-me", "changeme", "secret", "dev"})


class ConfigError(Exception):
    """The configuration cannot be used; the message says what to change."""


def _read_file_overrides(prefix: str, names: list[str]) -> dict[str, str]:
    found: dict[str, str] = {}
    for name in names:
        path = os.environ.get(f"{prefix}{name.upper()}_FILE")
        if path:
            try:
                found[name] = Path(path).read_text().strip()
            except OSError as exc:
                raise ConfigError(
                    f"{prefix}{name.upper()}_FILE: cannot read {path}: {exc}"
                ) from exc
    return found


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="STAYFLOW_", extra="ignore")

    env: Literal["development", "production"] = "development"
    database_url: str = DEFAULT_DATABASE_URL
    secret_key: str = ""
    base_url: str = "http://127.0.0.1:8000"
    log_level: str = "INFO"
    log_json: bool = True
    # Job runner
    worker_concurrency: int = 4
    # Lane jobs (webhook deliveries, one per endpoint at a time) run at once, each on a thread.
    worker_lane_concurrency: int = 32
    worker_poll_interval: float = 0.5
    job_lease_seconds: float = 60.0
    # Extra modules that register job handlers (plugins), comma-separated.
    job_modules: str = ""
    # Point every StripeClient stayflow makes at another base (the sandbox).
    stripe_api_base: str | None = None
    # Outbound webhooks: let deliveries reach private, loopback and link-local addresses
    # (tests, or endpoints inside the operator's own network).
    webhooks_allow_private: bool = False
    webhooks_timeout_seconds: float = 15.0
    # Seconds to wait before each attempt (the first is the wait before attempt 1).
    webhooks_retry_schedule: str = "0,5,300,1800,7200,18000,36000,36000"
    # Daily email digests: smtp://[user:password@]host[:port][?from=a@b&starttls=1] or smtps://
    smtp_url: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _from_files(cls, data: Any) -> Any:
        names = [n for n in cls.model_fields]
        overrides = _read_file_overrides("STAYFLOW_", names)
        if overrides and isinstance(data, dict):
            data = {**data, **overrides}
        return data

    @field_validator("base_url")
    @classmethod
    def _strip_slash(cls, value: str) -> str:
        return value.rstrip("/")

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    @property
    def sqlite_path(self) -> Path | None:
        if not self.is_sqlite:
            return None
        raw = self.database_url.split("///", 1)[1] if "///" in self.database_url else ""
        if not raw or raw == ":memory:":
            return None
        return Path(raw)

    @field_validator("webhooks_retry_schedule")
    @classmethod
    def _check_schedule(cls, value: str) -> str:
        try:
            waits = [float(p) for p in value.split(",") if p.strip()]
        except ValueError as exc:
            raise ValueError("webhooks_retry_schedule: comma-separated seconds") from exc
        if not waits or any(w < 0 for w in waits) or len(waits) > 50:
            raise ValueError("webhooks_retry_schedule: 1 to 50 waits, none negative")
        return value

    @property
    def webhooks_retry_schedule_seconds(self) -> tuple[float, ...]:
        return tuple(float(p) for p in self.webhooks_retry_schedule.split(",") if p.strip())

    @property
    def job_module_list(self) -> list[str]:
        return [m.strip() for m in self.job_modules.split(",") if m.strip()]

    def secret_key_file(self) -> Path:
        db_path = self.sqlite_path
        folder = db_path.resolve().parent if db_path is not None else Path.cwd()
        return folder / "stayflow.secret"

    def ensure_secret_key(self) -> Settings:
        """Return settings with a usable secret key, or raise ConfigError.

        In development a missing key is generated once and kept in a 0600 file
        beside the database, so restarts keep decrypting what was encrypted.
        In production a missing or well-known key refuses to start.
        """
        if self.secret_key and self.secret_key not in INSECURE_SECRET_KEYS:
            return self
        if self.env == "production":
            raise ConfigError(
                "STAYFLOW_SECRET_KEY is missing or a well-known default. Set it (or "
                "STAYFLOW_SECRET_KEY_FILE) to a long random value, e.g. the output of "
                "`python -c 'import secrets; print(secrets.token_urlsafe(48))'`."
            )
        path = self.secret_key_file()
        if path.exists():
            key = path.read_text().strip()
        else:
            key = secrets.token_urlsafe(48)
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as handle:
                handle.write(key + "\n")
        return self.model_copy(update={"secret_key": key})


def load_settings(**overrides: Any) -> Settings:
    try:
        return Settings(**overrides)
    except ValueError as exc:
        raise ConfigError(str(exc)) from exc
