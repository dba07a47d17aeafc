"""The flows file's ``settings:`` section: the app's cancel-flow settings, kept with its flows.

``stayflow flows export|apply`` carries it through the hook in ``stayflow.flows.service``
(``SECTION_MODULES``). A file with the section replaces the settings (a setting it leaves
out returns to its default); a file without it leaves them alone.

```yaml
settings:
  allowed_origins: [https://app.example.com]
  save_return_url: https://app.example.com/account
  cancel_confirmation_url: https://app.example.com/goodbye
```
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError
from sqlalchemy.orm import Session

from stayflow.apps.models import App
from stayflow.cancel_sessions import settings as flow_settings
from stayflow.errors import BadRequest

KEY = "settings"


class InvalidSettingsSection(BadRequest):
    error_type = "invalid_flows"


def validate(value: Any) -> dict[str, Any]:
    """The section as it will be stored (defaults left out), or a message naming the bad key."""
    if value is None:
        value = {}
    if not isinstance(value, dict):
        raise InvalidSettingsSection("settings: must be a mapping (allowed_origins:, ...)")
    try:
        parsed = flow_settings.CancelFlowSettings.model_validate(value)
    except ValidationError as exc:
        first = exc.errors()[0] if exc.errors() else {"loc": (), "msg": "invalid"}
        loc = ".".join(str(p) for p in first.get("loc", ()))
        msg = str(first.get("msg", "invalid")).removeprefix("Value error, ")
        raise InvalidSettingsSection(f"settings.{loc}: {msg}" if loc else msg) from exc
    return parsed.model_dump(exclude_defaults=True)


def _app(db: Session, app_pk: int) -> App:
    app = db.get(App, app_pk)
    assert app is not None
    return app


def current(db: Session, app_pk: int) -> dict[str, Any]:
    return flow_settings.read(_app(db, app_pk)).model_dump(exclude_defaults=True)


def replace(db: Session, app_pk: int, value: dict[str, Any]) -> None:
    app = _app(db, app_pk)
    new = flow_settings.CancelFlowSettings.model_validate(value)
    app.settings = {**(app.settings or {}), flow_settings.SETTINGS_KEY: new.model_dump()}
