"""Reading, validating and changing an app's flows document. Never commits."""

from __future__ import annotations

import hashlib
import importlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError
from sqlalchemy.orm import Session

from stayflow.apps.models import App
from stayflow.db import insert_ignoring_conflicts, utcnow
from stayflow.errors import BadRequest, Conflict, NotFound
from stayflow.flows import fileformat, repository
from stayflow.flows.models import FlowConfig, FlowVersion
from stayflow.flows.rules import fields_read
from stayflow.flows.schemas import KINDS, FlowsDocument


class InvalidFlows(BadRequest):
    error_type = "invalid_flows"


class FlowItemNotFound(NotFound):
    pass


class FlowItemInUse(Conflict):
    pass


class FlowsChanged(Conflict):
    """What the editor started from was changed by someone else before it was saved."""

    error_type = "flows_changed"


def fingerprint(value: Any) -> str:
    """A short digest of an item or a document, carried by an editor's form as its base."""
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:20]


class UnsignedTargeting(InvalidFlows):
    error_type = "unsigned_targeting"


@dataclass(frozen=True)
class Applied:
    document: dict[str, Any]
    version: int
    changed: bool
    diff: str
    warnings: tuple[str, ...] = ()
    # Saved as the draft (not live); ``version`` is then the live version.
    draft: bool = False


MAX_MESSAGE = 500
# Who made a change when nobody says (tests, benchmarks, the demo).
SYSTEM_AUTHOR = "system"


def clean_message(message: str | None) -> str | None:
    """A version's message: one line of at most 500 characters, or None."""
    if message is None:
        return None
    cleaned = " ".join(message.split())
    if len(cleaned) > MAX_MESSAGE:
        raise InvalidFlows(f"a version message is at most {MAX_MESSAGE} characters")
    return cleaned or None


def describe_validation_error(exc: ValidationError) -> tuple[str, list[dict[str, Any]]]:
    details = []
    for error in exc.errors():
        loc = ".".join(str(p) for p in error.get("loc", ()))
        msg = str(error.get("msg", "invalid")).removeprefix("Value error, ")
        details.append({"loc": loc, "msg": msg})
    first = details[0] if details else {"loc": "", "msg": "invalid"}
    where = f"{first['loc']}: " if first["loc"] else ""
    return f"{where}{first['msg']}", details


def validate(data: Any) -> FlowsDocument:
    if not isinstance(data, dict):
        raise InvalidFlows("the flows document must be an object (reasons, offers, ...)")
    try:
        return FlowsDocument.model_validate(data)
    except ValidationError as exc:
        message, details = describe_validation_error(exc)
        raise InvalidFlows(message, details={"errors": details}) from exc


def current(db: Session, app: App) -> tuple[FlowsDocument, int]:
    config = repository.get_config(db, app)
    if config is None:
        return FlowsDocument(), 0
    return FlowsDocument.model_validate(config.document), config.version


def working(db: Session, app: App) -> tuple[dict[str, Any], bool]:
    """What an editor edits: the draft when there is one (True), else the live flows."""
    config = repository.get_config(db, app)
    if config is not None and config.draft is not None:
        return canonical(config.draft), True
    doc, _ = current(db, app)
    return doc.normalized(), False


def canonical(document: dict[str, Any] | None) -> dict[str, Any]:
    """A stored document in the normalized key order (PostgreSQL's JSONB does not keep it),
    so diffs show what changed rather than how keys were stored."""
    if not document:
        return {}
    try:
        return FlowsDocument.model_validate(document).normalized()
    except ValidationError:
        # An old version that today's schema no longer reads: shown as it was stored.
        return dict(document)


def document_for_app_pk(db: Session, app_pk: int) -> FlowsDocument:
    return live_for_app_pk(db, app_pk)[0]


def live_for_app_pk(db: Session, app_pk: int) -> tuple[FlowsDocument, int]:
    """The live flows and their version number (0: never changed)."""
    config = repository.get_config_by_app_pk(db, app_pk)
    if config is None:
        return FlowsDocument(), 0
    return FlowsDocument.model_validate(config.document), config.version


def _locked_config(db: Session, app: App) -> FlowConfig:
    insert_ignoring_conflicts(
        db,
        FlowConfig,
        {"app_pk": app.id, "document": {}, "version": 0, "updated_at": utcnow()},
        on=["app_pk"],
    )
    config = repository.get_config(db, app, for_update=True)
    assert config is not None
    return config


# Top-level keys of a flows file that other domains keep in their own tables, by the module
# that handles them (``validate(value)``, ``current(db, app_pk)``, ``replace(db, app_pk, value)``).
# A file without the key leaves that part alone.
SECTION_MODULES: dict[str, str] = {
    "fields": "stayflow.enrichment.flows_section",
    "settings": "stayflow.cancel_sessions.flows_section",
}


def _section(key: str) -> Any:
    return importlib.import_module(SECTION_MODULES[key])


def section_values(db: Session, app: App) -> dict[str, Any]:
    """The other domains' sections as a flows file carries them (empty ones left out)."""
    found = {key: _section(key).current(db, app.id) for key in SECTION_MODULES}
    return {key: value for key, value in found.items() if value}


# Checks a billing integration runs on new or changed offers before they are saved
# (``stayflow.billing.actions.validation.offer_check``: coupon / price exist and are active).
OfferCheck = Callable[[Session, App, list[dict[str, Any]]], None]


def _changed_offers(old: dict[str, Any], new: dict[str, Any]) -> list[dict[str, Any]]:
    before = {o.get("id"): o for o in old.get("offers", [])}
    return [o for o in new.get("offers", []) if before.get(o.get("id")) != o]


def check_targeting(
    db: Session, app: App, doc: dict[str, Any], sections: dict[str, Any]
) -> tuple[str, ...]:
    """Refuse audiences that read unsigned request fields, unless the app opted in (warnings).

    The subscriber's browser sends the request fields, so targeting offers on them lets a
    subscriber choose their own offers. Copy may still show them.
    """
    from stayflow.cancel_sessions import trust
    from stayflow.cancel_sessions.settings import read as read_settings

    if "settings" in sections:
        opted_in = bool(sections["settings"].get("allow_unsigned_targeting"))
    else:
        opted_in = read_settings(app).allow_unsigned_targeting
    mappings = (
        sections["fields"] if "fields" in sections else _section("fields").current(db, app.id)
    )
    problems: list[tuple[str, str]] = []
    for audience in doc.get("audiences", []):
        rule = FlowsDocument.model_validate({"audiences": [audience]}).audiences[0].rule
        for path in trust.unsigned_paths(fields_read(rule), mappings):
            problems.append((str(audience.get("id")), path))
    if not problems:
        return ()
    described = [
        f"audience {aid!r} reads {path!r}, a request field the subscriber's browser sends "
        "unsigned (they could change it to get other offers)"
        for aid, path in problems
    ]
    if not opted_in:
        raise UnsignedTargeting(
            f"{described[0]}; target a field from Stripe (subscription.*, customer.*), a field "
            f"you sign (signed.{problems[0][1]}), or set allow_unsigned_targeting in the app's "
            "cancel-flow settings",
            details={
                "errors": [
                    {"loc": f"audiences.{a}", "msg": m}
                    for (a, _), m in zip(problems, described, strict=True)
                ]
            },
        )
    return tuple(f"{m}: allowed because allow_unsigned_targeting is on" for m in described)


def apply(
    db: Session,
    app: App,
    data: Any,
    *,
    dry_run: bool = False,
    offer_check: OfferCheck | None = None,
    author: str = SYSTEM_AUTHOR,
    message: str | None = None,
    draft: bool = False,
    expected: str | None = None,
) -> Applied:
    """Replace the app's flows with ``data``; a no-op (same version) when nothing changes.

    ``expected``: the ``fingerprint`` of the document this change replaces as the caller
    read it (with ``draft``: the draft, else the live flows; without: the live flows); when
    it has changed since, nothing is saved.

    A change to the live flows is kept as a new version (``author``, ``message``, the whole
    document and its diff). With ``draft`` the document is validated the same way and kept
    as the app's draft instead: nothing live changes until it is published.
    """
    message = clean_message(message)
    sections: dict[str, Any] = {}
    if isinstance(data, dict) and any(key in SECTION_MODULES for key in data):
        data = dict(data)
        if draft:
            raise InvalidFlows(
                f"{' and '.join(k for k in SECTION_MODULES if k in data)} cannot be saved in a "
                "draft (they are not versioned with the flows); apply them without draft"
            )
        sections = {
            k: _section(k).validate(data.pop(k)) for k in list(data) if k in SECTION_MODULES
        }
    new = validate(data).normalized()
    warnings = check_targeting(db, app, new, sections)
    if offer_check is not None:
        before, _ = current(db, app)
        offer_check(db, app, _changed_offers(before.normalized(), new))
    old_sections = {key: _section(key).current(db, app.id) for key in sections}
    sections_changed = old_sections != sections
    if dry_run:
        doc, version = current(db, app)
        old = doc.normalized()
        diff = fileformat.diff({**old, **old_sections}, {**new, **sections})
        return Applied(new, version, old != new or sections_changed, diff, warnings, draft)
    if expected is not None and fingerprint(_base(db, app, draft)) != expected:
        raise FlowsChanged("the flows were changed by someone else since you read them")
    if draft:
        return _save_draft(db, app, new, author=author, message=message, warnings=warnings)
    for key, value in sections.items():
        if value != old_sections[key]:
            _section(key).replace(db, app.id, value)
    config = _locked_config(db, app)
    old = canonical(config.document)
    if old == new:
        diff = fileformat.diff(old_sections, sections) if sections_changed else ""
        return Applied(new, config.version, sections_changed, diff, warnings)
    config.document = new
    config.version += 1
    config.updated_at = utcnow()
    db.add(
        FlowVersion(
            app_pk=app.id,
            number=config.version,
            author=author[:320],
            created_at=config.updated_at,
            message=message,
            document=new,
            diff=fileformat.diff(old, new),
        )
    )
    db.flush()
    diff = fileformat.diff({**old, **old_sections}, {**new, **sections})
    return Applied(new, config.version, True, diff, warnings)


def _save_draft(
    db: Session,
    app: App,
    new: dict[str, Any],
    *,
    author: str,
    message: str | None,
    warnings: tuple[str, ...],
) -> Applied:
    config = _locked_config(db, app)
    if message is None and config.draft is not None:
        message = config.draft_message  # an edit without a message keeps the draft's
    changed = config.draft != new or config.draft_message != message
    config.draft = new
    config.draft_message = message
    config.draft_author = author[:320]
    config.draft_updated_at = utcnow()
    config.draft_base_version = config.version
    diff = fileformat.diff(canonical(config.document), new)
    return Applied(new, config.version, changed, diff, warnings, draft=True)


def _check_kind(kind: str) -> None:
    if kind not in KINDS:
        raise FlowItemNotFound(f"unknown kind {kind!r}; one of {', '.join(KINDS)}")


def get_item(db: Session, app: App, kind: str, item_id: str) -> dict[str, Any]:
    _check_kind(kind)
    doc, _ = current(db, app)
    for item in doc.normalized().get(kind, []):
        if item.get("id") == item_id:
            return dict(item)
    raise FlowItemNotFound(f"no {kind[:-1]} {item_id!r}")


def put_item(
    db: Session,
    app: App,
    kind: str,
    item_id: str,
    body: Any,
    *,
    offer_check: OfferCheck | None = None,
    author: str = SYSTEM_AUTHOR,
    message: str | None = None,
    draft: bool = False,
    expected: str | None = None,
) -> Applied:
    """Create or replace one item, keeping its place in the order (new items go last).

    With ``draft`` the item is changed in the draft (started from the live flows when there
    is none); otherwise in the live flows. ``expected``: the ``fingerprint`` of the item the
    editor started from (of None for a new one); another value now refuses the change.
    """
    _check_kind(kind)
    if not isinstance(body, dict):
        raise InvalidFlows(f"a {kind[:-1]} must be an object")
    if body.get("id", item_id) != item_id:
        raise InvalidFlows("the id in the body differs from the id in the path")
    item = {**body, "id": item_id}
    data = _base(db, app, draft)
    items = list(data.get(kind, []))
    _check_expected(kind, items, item_id, expected)
    for index, existing in enumerate(items):
        if existing.get("id") == item_id:
            items[index] = item
            break
    else:
        items.append(item)
    data[kind] = items
    return apply(
        db, app, data, offer_check=offer_check, author=author, message=message, draft=draft
    )


def _check_expected(
    kind: str, items: list[dict[str, Any]], item_id: str, expected: str | None
) -> None:
    if expected is None:
        return
    before = next((i for i in items if i.get("id") == item_id), None)
    if fingerprint(before) != expected:
        raise FlowsChanged(f"this {kind[:-1]} was changed by someone else since you read it")


def _base(db: Session, app: App, draft: bool) -> dict[str, Any]:
    """The document a one-item change starts from, read under the flows' lock: two changes
    to different items at once then each keep the other's (neither writes back a document
    read before the other committed)."""
    _locked_config(db, app)
    if draft:
        return working(db, app)[0]
    doc, _ = current(db, app)
    return doc.normalized()


def delete_item(
    db: Session,
    app: App,
    kind: str,
    item_id: str,
    *,
    author: str = SYSTEM_AUTHOR,
    message: str | None = None,
    draft: bool = False,
    expected: str | None = None,
) -> Applied:
    _check_kind(kind)
    data = _base(db, app, draft)
    items = list(data.get(kind, []))
    kept = [i for i in items if i.get("id") != item_id]
    if len(kept) == len(items):
        raise FlowItemNotFound(f"no {kind[:-1]} {item_id!r}")
    _check_expected(kind, items, item_id, expected)
    data[kind] = kept
    try:
        return apply(db, app, data, author=author, message=message, draft=draft)
    except InvalidFlows as exc:
        raise FlowItemInUse(
            f"cannot delete {kind[:-1]} {item_id!r}: {exc.message}", details=exc.details
        ) from exc
