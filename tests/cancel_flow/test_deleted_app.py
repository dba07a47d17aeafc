"""A precancel for an app deleted a moment ago is a 404, not a 500.

Each process caches an app's precancel settings for a few seconds, so a request can pass the
app check after another process deleted the app; the session's insert is then refused by
its foreign key. The deletion here runs outside the serving app (as another process's
would), so this process's cache still holds the app.
"""

from __future__ import annotations

from sqlalchemy import select

from stayflow.apps.erase import delete_app
from stayflow.apps.models import App
from stayflow.crypto import Encryptor
from stayflow.db import transaction
from tests.cancel_flow.helpers import ORIGIN, configure, precancel_body
from tests.conftest import TEST_SECRET_KEY


def test_precancel_just_after_the_app_is_deleted_is_unknown_app(
    client, owner, session_factory, settings
) -> None:
    configure(client, owner)
    first = client.post("/precancel", json=precancel_body(owner), headers={"Origin": ORIGIN})
    assert first.status_code == 200, first.text  # the app's settings are cached now
    with transaction(session_factory) as db:
        app = db.scalars(select(App).where(App.app_id == owner.app_id)).one()
        delete_app(db, app, settings, Encryptor(TEST_SECRET_KEY), confirm=owner.app_id)
    again = client.post("/precancel", json=precancel_body(owner), headers={"Origin": ORIGIN})
    assert again.status_code == 404, again.text
    assert again.json()["valid"] is False and again.json()["error"]["type"] == "unknown_app"
