"""Per-app cancel-flow settings, kept in ``App.settings["cancel_flow"]``."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator

from stayflow.apps.models import App

SETTINGS_KEY = "cancel_flow"
LOCAL_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})


class CancelFlowSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    allowed_origins: list[str] = Field(
        default_factory=list,
        max_length=50,
        description="Web origins allowed to call /precancel from a browser, e.g. "
        "https://app.example.com",
    )
    allowed_redirect_domains: list[str] = Field(
        default_factory=list,
        max_length=50,
        description="Hosts save_return_url and cancel_confirmation_url may point to; "
        "'*.example.com' allows subdomains. The allowed origins' hosts are always allowed.",
    )
    allow_unsigned_precancel: bool = Field(
        default=False,
        description="Accept precancel requests without auth_hash (Brightback-style). "
        "Anyone who knows a subscription id could then open its cancel page.",
    )
    allow_unsigned_targeting: bool = Field(
        default=False,
        description="Let audience rules read request fields the business did not sign (the "
        "subscriber can change those, and so choose their own offers). Saving such rules is "
        "refused without this, and answered with a warning with it.",
    )
    signed_fields_max_age_seconds: int = Field(
        default=600,
        ge=30,
        le=24 * 60 * 60,
        description="How long a signed_fields token is accepted after its timestamp.",
    )
    save_return_url: str | None = Field(
        default=None,
        max_length=2048,
        description="Where a saved subscriber goes when the request names no save_return_url. "
        "Neither: stayflow's own result page.",
    )
    cancel_confirmation_url: str | None = Field(
        default=None,
        max_length=2048,
        description="Where a cancelled subscriber goes when the request names no "
        "cancel_confirmation_url. Neither: stayflow's own result page.",
    )
    reason_required: bool = Field(
        default=True, description="Whether a subscriber must pick a reason before cancelling."
    )
    session_expiry_minutes: int = Field(
        default=24 * 60, ge=5, le=30 * 24 * 60, description="How long a cancel link works."
    )
    abandon_after_minutes: int = Field(
        default=60,
        ge=5,
        le=30 * 24 * 60,
        description="A session not acted on by then is marked abandoned (it may still be "
        "completed until it expires).",
    )
    cancel_pass_thru_url: str | None = Field(
        default=None,
        max_length=2000,
        description="After a cancel, send the subscriber here with a signed token "
        "(stayflow_token) instead of cancel_confirmation_url; see docs/webhooks.md.",
    )
    pass_thru_expiry_minutes: int = Field(
        default=15, ge=1, le=24 * 60, description="How long a pass-thru token is valid."
    )

    @field_validator("cancel_pass_thru_url")
    @classmethod
    def _pass_thru(cls, value: str | None) -> str | None:
        from stayflow.offers.schemas import check_pass_thru_url

        return check_pass_thru_url(value) if value else None

    @field_validator("allowed_origins")
    @classmethod
    def _origins(cls, values: list[str]) -> list[str]:
        cleaned = []
        for value in values:
            parts = urlsplit(value.strip())
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise ValueError(f"{value!r} is not an origin like https://app.example.com")
            if parts.path not in ("", "/") or parts.query or parts.fragment or parts.username:
                raise ValueError(f"{value!r}: an origin has no path, query or user")
            if parts.scheme == "http" and parts.hostname not in LOCAL_HOSTS:
                raise ValueError(f"{value!r}: only localhost may use http; use https")
            port = f":{parts.port}" if parts.port else ""
            cleaned.append(f"{parts.scheme}://{parts.hostname}{port}")
        return sorted(set(cleaned))

    @field_validator("allowed_redirect_domains")
    @classmethod
    def _domains(cls, values: list[str]) -> list[str]:
        cleaned = []
        for value in values:
            host = value.strip().lower().rstrip(".")
            bare = host.removeprefix("*.")
            labels = bare.split(".")
            if not bare or any(
                not label or len(label) > 63 or not all(c.isalnum() or c == "-" for c in label)
                for label in labels
            ):
                raise ValueError(f"{value!r} is not a host name like app.example.com")
            cleaned.append(host)
        return sorted(set(cleaned))

    @field_validator("save_return_url", "cancel_confirmation_url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        parts = urlsplit(value.strip())
        if parts.scheme not in ("http", "https") or not parts.hostname or parts.username:
            raise ValueError(f"{value!r} is not an absolute http(s) URL")
        if parts.scheme == "http" and parts.hostname not in LOCAL_HOSTS:
            raise ValueError(f"{value!r}: only localhost may use http; use https")
        return value.strip()

    def redirect_hosts(self) -> tuple[str, ...]:
        """The hosts (``*.`` patterns too) redirects may point to: the allowed redirect
        domains and the allowed origins' hosts. Precancel keeps these per cached app."""
        hosts = {urlsplit(o).hostname or "" for o in self.allowed_origins}
        return (*self.allowed_redirect_domains, *sorted(hosts))

    def redirect_allowed(self, url: str, hosts: tuple[str, ...] | None = None) -> bool:
        """Is ``url`` an absolute http(s) URL on an allowed host? (no open redirects)

        ``hosts``: ``redirect_hosts()`` computed before, for these settings."""
        try:
            parts = urlsplit(url)
            host = (parts.hostname or "").lower().rstrip(".")
        except ValueError:
            return False
        if parts.scheme not in ("http", "https") or not host or parts.username or parts.password:
            return False
        if parts.scheme == "http" and host not in LOCAL_HOSTS:
            return False
        for allowed in self.redirect_hosts() if hosts is None else hosts:
            if allowed.startswith("*."):
                if host.endswith(allowed[1:]):
                    return True
            elif host == allowed:
                return True
        return False


class CancelFlowSettingsPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    allowed_origins: list[str] | None = None
    allowed_redirect_domains: list[str] | None = None
    allow_unsigned_precancel: bool | None = None
    allow_unsigned_targeting: bool | None = None
    signed_fields_max_age_seconds: int | None = None
    save_return_url: str | None = None
    cancel_confirmation_url: str | None = None
    reason_required: bool | None = None
    session_expiry_minutes: int | None = None
    abandon_after_minutes: int | None = None
    cancel_pass_thru_url: str | None = None
    pass_thru_expiry_minutes: int | None = None


def read(app: App) -> CancelFlowSettings:
    raw = (app.settings or {}).get(SETTINGS_KEY) or {}
    return CancelFlowSettings.model_validate(raw)


def write(app: App, patch: dict[str, Any]) -> CancelFlowSettings:
    """Validate the merged settings, then store them (a new dict so the change is seen)."""
    merged = {**read(app).model_dump(), **patch}
    new = CancelFlowSettings.model_validate(merged)
    app.settings = {**(app.settings or {}), SETTINGS_KEY: new.model_dump()}
    return new
