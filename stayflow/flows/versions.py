"""An app's flows over time: the versions kept on every change, restoring one, and the draft.

Every change to the live flows (API, ``stayflow flows apply``, the admin pages) is a new
version made by ``service.apply``. A draft is a whole flows document validated like a live
one and kept beside it until it is published (a new version) or discarded. Never commits.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from stayflow.apps.models import App
from stayflow.errors import Conflict, NotFound
from stayflow.flows import fileformat, repository, service
from stayflow.flows.models import FlowVersion
from stayflow.flows.service import SYSTEM_AUTHOR, Applied, OfferCheck

MAX_PAGE = 100


class VersionNotFound(NotFound):
    error_type = "version_not_found"


class NoDraft(NotFound):
    error_type = "no_draft"


class NothingToPublish(Conflict):
    error_type = "no_draft"


@dataclass(frozen=True)
class Draft:
    document: dict[str, Any]
    message: str | None
    author: str | None
    updated_at: datetime | None
    # The live version when the draft was saved, and the live version now.
    base_version: int | None
    live_version: int
    # From the live flows to the draft.
    diff: str


def list_versions(
    db: Session, app: App, *, limit: int = 50, before: int | None = None
) -> Sequence[FlowVersion]:
    return repository.list_versions(db, app, limit=max(1, min(limit, MAX_PAGE)), before=before)


def get_version(db: Session, app: App, number: int) -> FlowVersion:
    found = repository.get_version(db, app, number)
    if found is None:
        raise VersionNotFound(f"no version {number} of this app's flows")
    return found


def get_draft(db: Session, app: App) -> Draft:
    config = repository.get_config(db, app)
    if config is None or config.draft is None:
        raise NoDraft("this app's flows have no draft")
    return Draft(
        document=service.canonical(config.draft),
        message=config.draft_message,
        author=config.draft_author,
        updated_at=config.draft_updated_at,
        base_version=config.draft_base_version,
        live_version=config.version,
        diff=fileformat.diff(service.canonical(config.document), service.canonical(config.draft)),
    )


def find_draft(db: Session, app: App) -> Draft | None:
    try:
        return get_draft(db, app)
    except NoDraft:
        return None


def _clear_draft(db: Session, app: App) -> bool:
    config = repository.get_config(db, app, for_update=True)
    if config is None or config.draft is None:
        return False
    config.draft = None
    config.draft_message = None
    config.draft_author = None
    config.draft_updated_at = None
    config.draft_base_version = None
    return True


def discard_draft(db: Session, app: App) -> None:
    if not _clear_draft(db, app):
        raise NoDraft("this app's flows have no draft")


def publish(
    db: Session,
    app: App,
    *,
    author: str = SYSTEM_AUTHOR,
    message: str | None = None,
    offer_check: OfferCheck | None = None,
) -> Applied:
    """Make the draft live (a new version, with the draft's message unless given one)."""
    config = repository.get_config(db, app, for_update=True)
    if config is None or config.draft is None:
        raise NothingToPublish("there is no draft to publish; save one first (draft=true)")
    result = service.apply(
        db,
        app,
        dict(config.draft),
        offer_check=offer_check,
        author=author,
        message=message if message is not None else config.draft_message,
    )
    _clear_draft(db, app)
    return result


def restore(
    db: Session,
    app: App,
    number: int,
    *,
    author: str = SYSTEM_AUTHOR,
    draft: bool = False,
    offer_check: OfferCheck | None = None,
) -> Applied:
    """Version ``number``'s document becomes live again (a new version), or the draft.

    It is validated like any change: an old version that no longer passes (an offer's coupon
    deleted in Stripe, an audience on a field no longer allowed) is refused with the reason.
    """
    found = get_version(db, app, number)
    return service.apply(
        db,
        app,
        dict(found.document),
        offer_check=offer_check,
        author=author,
        message=f"restored version {number}",
        draft=draft,
    )
