"""Reports tests reuse the admin pages' fixtures (signed-in browsers, users)."""

from __future__ import annotations

from tests.admin.conftest import add_user, browser_client, clock, signed_in, web_app

__all__ = ["add_user", "browser_client", "clock", "signed_in", "web_app"]
