"""``stayflow keys rotate`` re-encrypts every stored secret under the first key."""

from __future__ import annotations

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from stayflow.apps.models import App
from stayflow.billing.models import BillingConnection
from stayflow.cli.main import main
from stayflow.crypto import DecryptionError, Encryptor
from tests.billing.helpers import set_webhook_secret
from tests.conftest import TEST_SECRET_KEY

NEW_KEY = "new-secret-key-" + "n" * 32


def _tokens(session_factory):
    with session_factory() as db:
        apps = [a.secret_encrypted for a in db.scalars(select(App))]
        conns = db.scalars(select(BillingConnection)).all()
        return (
            apps
            + [c.api_key_encrypted for c in conns]
            + [c.webhook_secret_encrypted for c in conns]
        )


def test_rotate_re_encrypts_app_secrets_stripe_keys_and_webhook_secrets(
    owner, other, session_factory, database_url, monkeypatch
):
    set_webhook_secret(session_factory, owner.app_id, "whsec_owner_1234567890", api_key="sk_test_o")
    set_webhook_secret(session_factory, other.app_id, "whsec_other_1234567890", api_key="rk_test_x")
    before = _tokens(session_factory)
    old = Encryptor(TEST_SECRET_KEY)
    plain = [old.decrypt(t) for t in before]

    monkeypatch.setenv("STAYFLOW_DATABASE_URL", database_url)
    # Without the old key listed, nothing decrypts: refuse and change nothing.
    monkeypatch.setenv("STAYFLOW_SECRET_KEY", NEW_KEY)
    refused = CliRunner().invoke(main, ["keys", "rotate"])
    assert refused.exit_code != 0
    assert "does not decrypt" in refused.output
    assert _tokens(session_factory) == before

    monkeypatch.setenv("STAYFLOW_SECRET_KEY", f"{NEW_KEY},{TEST_SECRET_KEY}")
    result = CliRunner().invoke(main, ["keys", "rotate"])
    assert result.exit_code == 0, result.output
    assert "apps: 2 secret(s) re-encrypted" in result.output
    assert "billing_connections: 4 secret(s) re-encrypted" in result.output
    after = _tokens(session_factory)
    assert all(a != b for a, b in zip(after, before, strict=True))
    only_new = Encryptor(NEW_KEY)
    assert [only_new.decrypt(t) for t in after] == plain
    for token in after:
        with pytest.raises(DecryptionError):
            old.decrypt(token)
    for secret in plain:
        assert secret not in result.output
