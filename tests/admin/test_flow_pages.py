"""The cancel-flow pages: the editor's forms and YAML (through the flows service, versions
with the user's email), drafts and publishing, history and restore, the live preview, the
offer pickers filled from the Stripe sandbox, roles (viewer: 403 on every change) and
tenancy (another app's flow pages are 404). On SQLite and PostgreSQL."""

from __future__ import annotations

import re
from typing import Any

import pytest
import yaml
from sqlalchemy import func, select

from stayflow.admin.web import admin_now
from stayflow.app import create_app
from stayflow.apps.repository import get_app_by_public_id
from stayflow.cancel_sessions.models import CancelSession
from stayflow.crypto import Encryptor
from stayflow.db import transaction
from stayflow.enrichment import service as enrichment
from stayflow.flows.models import FlowVersion
from tests.admin.conftest import csrf_of
from tests.cancel_flow.helpers import FLOWS_YAML
from tests.conftest import TEST_SECRET_KEY

FLOWS = yaml.safe_load(FLOWS_YAML)


def _flow(client, tenant) -> dict[str, Any]:
    return dict(client.get("/api/v1/flows", headers=tenant.headers).json())


def _post(user, path: str, data: dict[str, Any], page: str | None = None):
    token = user.csrf(page or path.rsplit("/", 1)[0])
    return user.client.post(path, data={"csrf": token, **data})


@pytest.fixture
def editor(add_user, signed_in, owner):
    add_user("ed@example.com", owner.app_id, role="editor")
    return signed_in("ed@example.com")


def test_forms_save_a_draft_then_publish_as_a_version_by_the_user(browser_client, editor, owner):
    api = browser_client()
    base = f"/admin/apps/{owner.app_id}/flow"
    saved = _post(
        editor,
        f"{base}/reasons/new",
        {
            "id": "too_pricey",
            "label": "Too pricey",
            "feedback": "too_expensive",
            "comment": "1",
            "label_fr": "Trop cher",
            "save": "draft",
            "message": "first reason",
        },
        page=f"{base}/reasons/new",
    )
    assert saved.status_code == 303, saved.text
    assert _flow(api, owner)["version"] == 0  # a draft: nothing live yet
    overview = editor.client.get(base)
    assert "A draft is waiting" in overview.text and "Too pricey" in overview.text
    published = _post(editor, f"{base}/publish", {}, page=base)
    assert published.status_code == 303
    live = _flow(api, owner)
    assert live["version"] == 1
    assert live["flows"]["reasons"] == [
        {
            "id": "too_pricey",
            "label": "Too pricey",
            "feedback": "too_expensive",
            "comment": True,
            "translations": {"fr": {"label": "Trop cher"}},
        }
    ]
    v1 = api.get("/api/v1/flows/versions/1", headers=owner.headers).json()
    assert v1["author"] == "ed@example.com" and v1["message"] == "first reason"

    # Save and publish in one step: an offer after that reason, for an audience.
    _post(
        editor,
        f"{base}/audiences/new",
        {
            "id": "annual",
            "field_0": "subscription.plan.interval",
            "op_0": "equals",
            "value_0": "year",
            "save": "publish",
        },
        page=f"{base}/audiences/new",
    )
    response = _post(
        editor,
        f"{base}/offers/new",
        {
            "id": "pause",
            "type": "pause",
            "duration": "2",
            "interval": "month",
            "reasons": "too_pricey",
            "audience": "annual",
            "headline": "Take a break, {{ first_name | default('friend') }}",
            "save": "publish",
        },
        page=f"{base}/offers/new",
    )
    assert response.status_code == 303, response.text
    live = _flow(api, owner)
    assert live["version"] == 3
    assert live["flows"]["audiences"] == [
        {
            "id": "annual",
            "rule": {"field": "subscription.plan.interval", "op": "equals", "value": "year"},
        }
    ]
    assert live["flows"]["offers"][0] == {
        "id": "pause",
        "type": "pause",
        "reasons": ["too_pricey"],
        "audience": "annual",
        "headline": "Take a break, {{ first_name | default('friend') }}",
        "duration": 2,
    }
    # An experience saved with empty copy and branding keeps none of them (no "branding: {}").
    _post(
        editor,
        f"{base}/experiences/new",
        {"id": "default", "all_reasons": "1", "offers": "pause", "save": "publish"},
        page=f"{base}/experiences/new",
    )
    assert _flow(api, owner)["flows"]["experiences"] == [{"id": "default", "offers": ["pause"]}]
    # Changing the type keeps nothing of the old type's fields.
    _post(
        editor,
        f"{base}/offers/pause",
        {"type": "trial_extension", "days": "14", "save": "publish", "reasons": "too_pricey"},
        page=f"{base}/offers/pause",
    )
    offer = _flow(api, owner)["flows"]["offers"][0]
    assert offer["type"] == "trial_extension" and offer["days"] == 14 and "duration" not in offer


@pytest.mark.parametrize(
    ("kind", "form", "needle"),
    [
        ("offers", {"id": "d", "type": "discount"}, "exactly one of coupon or promotion_code"),
        ("offers", {"id": "p", "type": "pause", "duration": "many"}, "duration"),
        ("offers", {"id": "bad id!", "type": "pause", "duration": "1"}, "id"),
        (
            "audiences",
            {"id": "seats", "field_0": "custom.seats", "op_0": "greater", "value_0": "2"},
            "unsigned",
        ),
        ("audiences", {"id": "empty"}, "rule"),
        ("experiences", {"id": "e", "offers": "nope", "all_reasons": "1"}, "unknown offer"),
        ("reasons", {"id": "r", "label": "{% if x %}"}, "merge fields }} only"),
    ],
)
def test_invalid_forms_are_400_with_the_reason_and_change_nothing(
    browser_client, editor, owner, kind, form, needle
):
    base = f"/admin/apps/{owner.app_id}/flow"
    response = _post(
        editor, f"{base}/{kind}/new", {**form, "save": "publish"}, page=f"{base}/{kind}/new"
    )
    assert response.status_code == 400, response.text
    assert "Not saved" in response.text and needle in response.text, re.findall(
        r"(?s)<div class=\"error\".*?</div>", response.text
    )
    api = browser_client()
    assert _flow(api, owner)["version"] == 0
    assert api.get("/api/v1/flows/draft", headers=owner.headers).status_code == 404


def test_yaml_editor_history_diff_and_restore(browser_client, editor, owner):
    api = browser_client()
    base = f"/admin/apps/{owner.app_id}/flow"
    bad = _post(
        editor, f"{base}/yaml", {"document": "reasons: [", "save": "publish"}, page=f"{base}/yaml"
    )
    assert bad.status_code == 400 and "not valid YAML" in bad.text
    assert "reasons: [" in bad.text  # what was typed is kept
    ok = _post(
        editor, f"{base}/yaml", {"document": FLOWS_YAML, "save": "publish"}, page=f"{base}/yaml"
    )
    assert ok.status_code == 303
    changed = FLOWS_YAML.replace("Take 20% off", "Keep 20% off")
    _post(
        editor,
        f"{base}/yaml",
        {"document": changed, "save": "publish", "message": "button"},
        page=f"{base}/yaml",
    )
    assert _flow(api, owner)["version"] == 2

    history = editor.client.get(f"{base}/history")
    assert history.status_code == 200
    assert (
        "Version 2" in history.text
        and "ed@example.com" in history.text
        and "button" in history.text
    )
    version = editor.client.get(f"{base}/history/2")
    assert "<del>-  button: Take 20% off</del>" in version.text
    assert "<ins>+  button: Keep 20% off</ins>" in version.text
    # One line each (the template's trim_blocks once ran them together).
    assert (
        "<del>-  button: Take 20% off</del>\n<ins>+  button: Keep 20% off</ins>\n" in version.text
    )

    restored = _post(editor, f"{base}/history/1/restore", {}, page=f"{base}/history/1")
    assert restored.status_code == 303
    live = _flow(api, owner)
    assert live["version"] == 3 and live["flows"]["offers"][0]["button"] == "Take 20% off"
    as_draft = _post(editor, f"{base}/history/2/restore", {"draft": "1"}, page=f"{base}/history/2")
    assert as_draft.status_code == 303
    draft = api.get("/api/v1/flows/draft", headers=owner.headers).json()
    assert draft["flows"]["offers"][0]["button"] == "Keep 20% off"
    assert _post(editor, f"{base}/discard", {}, page=base).status_code == 303
    assert api.get("/api/v1/flows/draft", headers=owner.headers).status_code == 404
    assert editor.client.get(f"{base}/history/99").status_code == 404


def test_preview_renders_the_real_page_without_a_session(
    browser_client, editor, owner, session_factory
):
    api = browser_client()
    api.put("/api/v1/flows", json=FLOWS, headers=owner.headers)
    base = f"/admin/apps/{owner.app_id}/flow"
    outer = editor.client.get(f"{base}/preview", params={"width": "phone", "lang": "fr"})
    assert outer.status_code == 200
    frame_src = re.search(r'<iframe class="preview-phone" src="([^"]+)"', outer.text)
    assert frame_src, outer.text
    frame = editor.client.get(frame_src.group(1).replace("&amp;", "&"))
    assert frame.status_code == 200
    assert "It&#39;s too expensive" in frame.text  # the business's reasons
    assert 'lang="fr"' in frame.text
    csp = frame.headers["content-security-policy"]
    assert "frame-ancestors 'self'" in csp and "form-action 'none'" in csp
    assert frame.headers["x-frame-options"] == "SAMEORIGIN"

    offers = editor.client.get(
        f"{base}/preview/frame",
        params={"reason": "too_expensive", "request_fields": "first_name: Ada", "lang": "en"},
    )
    assert "Stay for 20% off, Ada" in offers.text
    annual = editor.client.get(
        f"{base}/preview",
        params={"reason": "not_using", "stripe_fields": "subscription.plan.interval: year"},
    )
    assert "Experience annual_flow" in annual.text
    bad = editor.client.get(f"{base}/preview", params={"request_fields": "- not a mapping"})
    assert bad.status_code == 400 and "one field per line" in bad.text
    with session_factory() as db:
        assert db.scalar(select(func.count()).select_from(CancelSession)) == 0
        assert db.scalar(select(func.count()).select_from(FlowVersion)) == 1


def test_a_viewer_reads_everything_and_changes_nothing(browser_client, add_user, signed_in, owner):
    api = browser_client()
    api.put("/api/v1/flows", json=FLOWS, headers=owner.headers)
    api.put(
        "/api/v1/flows?draft=true",
        json={
            **FLOWS,
            "reasons": FLOWS["reasons"][:1],
            "experiences": [{"id": "default"}],
            "offers": [],
            "audiences": [],
        },
        headers=owner.headers,
    )
    add_user("vi@example.com", owner.app_id, role="viewer")
    viewer = signed_in("vi@example.com")
    base = f"/admin/apps/{owner.app_id}/flow"
    for path in (
        base,
        f"{base}/yaml",
        f"{base}/history",
        f"{base}/history/1",
        f"{base}/preview",
        f"{base}/reasons/too_expensive",
        f"{base}/experiences/default",
        f"{base}/reasons/new",
    ):
        page = viewer.client.get(path)
        assert page.status_code == 200, path
        assert "Save and publish" not in page.text and "Publish the draft" not in page.text
    token = viewer.csrf(base)
    for path, data in (
        (f"{base}/publish", {}),
        (f"{base}/discard", {}),
        (f"{base}/yaml", {"document": "reasons: []", "save": "publish"}),
        (f"{base}/reasons/new", {"id": "x", "label": "X", "save": "publish"}),
        (f"{base}/reasons/not_using", {"label": "X", "save": "publish"}),
        (f"{base}/reasons/not_using/delete", {"save": "publish"}),
        (f"{base}/reasons/not_using/move", {"direction": "up"}),
        (f"{base}/history/1/restore", {}),
    ):
        refused = viewer.client.post(path, data={"csrf": token, **data})
        assert refused.status_code == 403, path
    assert _flow(api, owner)["version"] == 1
    assert api.get("/api/v1/flows/draft", headers=owner.headers).status_code == 200


def test_another_apps_flow_pages_are_404(browser_client, editor, owner, other):
    api = browser_client()
    api.put("/api/v1/flows", json=FLOWS, headers=other.headers)
    base = f"/admin/apps/{other.app_id}/flow"
    for path in (
        base,
        f"{base}/yaml",
        f"{base}/history",
        f"{base}/history/1",
        f"{base}/preview",
        f"{base}/preview/frame",
        f"{base}/offers/twenty_off",
        f"{base}/reasons/new",
    ):
        response = editor.client.get(path)
        assert response.status_code == 404, path
        assert "twenty_off" not in response.text
    token = editor.csrf(f"/admin/apps/{owner.app_id}/flow")
    for path in (
        f"{base}/publish",
        f"{base}/history/1/restore",
        f"{base}/reasons/new",
        f"{base}/yaml",
    ):
        assert (
            editor.client.post(path, data={"csrf": token, "id": "x", "label": "x"}).status_code
            == 404
        )
    assert _flow(api, other)["version"] == 1
    # Own pages, but no such item or version.
    mine = f"/admin/apps/{owner.app_id}/flow"
    for path in (f"{mine}/offers/twenty_off", f"{mine}/history/1", f"{mine}/widgets/x"):
        assert editor.client.get(path).status_code == 404, path


def test_offer_pickers_list_the_apps_stripe_coupons_and_the_preview_reads_the_mirror(
    settings,
    sandbox,
    stripe_client,
    make_price,
    make_paying_customer,
    clock,
    add_user,
    owner,
    session_factory,
):
    from fastapi.testclient import TestClient

    from tests.admin.conftest import sign_in

    config = settings.model_copy(update={"stripe_api_base": sandbox.url})
    web = create_app(config)
    web.dependency_overrides[admin_now] = lambda: clock.now
    coupon = stripe_client.v1.coupons.create(
        {"percent_off": 25, "duration": "once", "name": "Stay25"}
    )
    price = make_price()
    customer = make_paying_customer()
    sub = stripe_client.v1.subscriptions.create(
        {"customer": customer.id, "items": [{"price": price.id}]}
    )
    with TestClient(web, follow_redirects=False) as client:
        connected = client.put(
            "/api/v1/billing/stripe", json={"api_key": sandbox.secret_key}, headers=owner.headers
        )
        assert connected.status_code == 200, connected.text
        # A live read, as a cancel page's enrichment makes it, stores the subscription in
        # the mirror (the preview reads only the mirror).
        with transaction(session_factory) as db:
            app = get_app_by_public_id(db, owner.app_id)
            assert app is not None
            found = enrichment.lookup_subscription(
                db, app.id, sub.id, config, Encryptor(TEST_SECRET_KEY), require_enabled=False
            )
            assert found.source == "live" and found.subscription is not None
        add_user("ed@example.com", owner.app_id, role="editor")
        assert sign_in(client, "ed@example.com").status_code == 303
        base = f"/admin/apps/{owner.app_id}/flow"
        form = client.get(f"{base}/offers/new")
        assert form.status_code == 200
        assert (
            f'<option value="{coupon.id}">Stay25: 25% off, once ({coupon.id})</option>' in form.text
        )
        assert f'<option value="{price.id}">' in form.text
        token = csrf_of(form.text)
        saved = client.post(
            f"{base}/offers/new",
            data={
                "csrf": token,
                "id": "stay25",
                "type": "discount",
                "coupon": coupon.id,
                "save": "publish",
            },
        )
        assert saved.status_code == 303, saved.text
        missing = client.post(
            f"{base}/offers/new",
            data={
                "csrf": token,
                "id": "gone",
                "type": "discount",
                "coupon": "no_such_coupon",
                "save": "publish",
            },
        )
        assert missing.status_code == 400 and "does not exist" in missing.text
        preview = client.get(f"{base}/preview")
        assert f'<option value="{sub.id}">' in preview.text
        # Stripe answering nothing but errors changes nothing: the preview never calls it.
        with sandbox.faulty("error", status=500, times=None):
            shown = client.get(f"{base}/preview", params={"subscription": sub.id})
            frame = client.get(f"{base}/preview/frame", params={"subscription": sub.id})
        assert shown.status_code == 200 and "Stripe fields: mirror." in shown.text
        assert frame.status_code == 200 and "<form" in frame.text


def _base_of(html_text: str) -> str:
    found = re.search(r'name="base" value="([^"]*)"', html_text)
    assert found, "the form carries no base"
    return found.group(1)


def test_a_stale_form_is_refused_and_kept_and_saving_again_replaces_knowingly(
    browser_client, editor, add_user, signed_in, owner
):
    """Two editors open the same reason; the second to save is told, loses nothing typed,
    and overwrites only when saving again from the page that told them."""
    add_user("ana@example.com", owner.app_id, role="editor")
    ana = signed_in("ana@example.com")
    base = f"/admin/apps/{owner.app_id}/flow"
    assert (
        _post(
            editor, f"{base}/yaml", {"document": FLOWS_YAML, "save": "publish"}, page=f"{base}/yaml"
        ).status_code
        == 303
    )
    path = f"{base}/reasons/too_expensive"
    ed_page, ana_page = editor.client.get(path).text, ana.client.get(path).text
    form = {"label": "x", "feedback": "too_expensive", "save": "publish"}
    ana_saved = ana.client.post(
        path,
        data={
            **form,
            "label": "Ana's label",
            "csrf": csrf_of(ana_page),
            "base": _base_of(ana_page),
        },
    )
    assert ana_saved.status_code == 303, ana_saved.text
    stale = editor.client.post(
        path,
        data={**form, "label": "Ed's label", "csrf": csrf_of(ed_page), "base": _base_of(ed_page)},
    )
    assert stale.status_code == 409, stale.text
    assert "Someone else saved a change here" in stale.text
    assert "Ed&#39;s label" in stale.text or "Ed's label" in stale.text  # what he typed
    api = browser_client()
    live = _flow(api, owner)
    assert live["version"] == 2
    assert live["flows"]["reasons"][0]["label"] == "Ana's label"
    again = editor.client.post(
        path,
        data={
            **form,
            "label": "Ed's label",
            "csrf": csrf_of(stale.text),
            "base": _base_of(stale.text),
        },
    )
    assert again.status_code == 303, again.text
    assert _flow(api, owner)["flows"]["reasons"][0]["label"] == "Ed's label"
    # A change to another item in between is no conflict for this one.
    other = f"{base}/reasons/not_using"
    ed_page = editor.client.get(path).text
    ana_other = ana.client.get(other).text
    assert (
        ana.client.post(
            other,
            data={
                "label": "Unused",
                "feedback": "unused",
                "save": "publish",
                "csrf": csrf_of(ana_other),
                "base": _base_of(ana_other),
            },
        ).status_code
        == 303
    )
    assert (
        editor.client.post(
            path,
            data={**form, "label": "Ed again", "csrf": csrf_of(ed_page), "base": _base_of(ed_page)},
        ).status_code
        == 303
    )
    reasons = {r["id"]: r["label"] for r in _flow(api, owner)["flows"]["reasons"]}
    assert reasons == {"too_expensive": "Ed again", "not_using": "Unused"}


def test_a_stale_yaml_document_is_refused_and_kept(
    browser_client, editor, add_user, signed_in, owner
):
    add_user("ana@example.com", owner.app_id, role="editor")
    ana = signed_in("ana@example.com")
    base = f"/admin/apps/{owner.app_id}/flow"
    ed_page, ana_page = editor.client.get(f"{base}/yaml").text, ana.client.get(f"{base}/yaml").text
    ana_doc = FLOWS_YAML.replace("Take 20% off", "Ana's button")
    assert (
        ana.client.post(
            f"{base}/yaml",
            data={
                "document": ana_doc,
                "save": "draft",
                "csrf": csrf_of(ana_page),
                "base": _base_of(ana_page),
            },
        ).status_code
        == 303
    )
    ed_doc = FLOWS_YAML.replace("Take 20% off", "Ed's button")
    stale = editor.client.post(
        f"{base}/yaml",
        data={
            "document": ed_doc,
            "save": "draft",
            "csrf": csrf_of(ed_page),
            "base": _base_of(ed_page),
        },
    )
    assert stale.status_code == 409, stale.text
    assert "Someone else saved a change here" in stale.text and "Ed&#39;s button" in stale.text
    api = browser_client()
    draft = api.get("/api/v1/flows/draft", headers=owner.headers).json()
    assert draft["flows"]["offers"][0]["button"] == "Ana's button"
    again = editor.client.post(
        f"{base}/yaml",
        data={
            "document": ed_doc,
            "save": "draft",
            "csrf": csrf_of(stale.text),
            "base": _base_of(stale.text),
        },
    )
    assert again.status_code == 303, again.text
    draft = api.get("/api/v1/flows/draft", headers=owner.headers).json()
    assert draft["flows"]["offers"][0]["button"] == "Ed's button"


def test_a_stale_delete_is_refused(browser_client, editor, add_user, signed_in, owner):
    add_user("ana@example.com", owner.app_id, role="editor")
    ana = signed_in("ana@example.com")
    base = f"/admin/apps/{owner.app_id}/flow"
    yaml_page = editor.client.get(f"{base}/yaml").text
    editor.client.post(
        f"{base}/yaml",
        data={"document": FLOWS_YAML, "save": "publish", "csrf": csrf_of(yaml_page)},
    )
    api = browser_client()
    added = api.put("/api/v1/flows/reasons/spare", json={"label": "Spare"}, headers=owner.headers)
    assert added.status_code == 200, added.text
    path = f"{base}/reasons/spare"
    ed_page, ana_page = editor.client.get(path).text, ana.client.get(path).text
    assert (
        ana.client.post(
            path,
            data={
                "label": "Ana's",
                "save": "publish",
                "csrf": csrf_of(ana_page),
                "base": _base_of(ana_page),
            },
        ).status_code
        == 303
    )
    delete = {"save": "publish", "csrf": csrf_of(ed_page)}
    stale = editor.client.post(f"{path}/delete", data={**delete, "base": _base_of(ed_page)})
    assert stale.status_code == 409, stale.text
    assert "Not deleted" in stale.text and "changed by someone else" in stale.text
    reasons = [r["id"] for r in _flow(api, owner)["flows"]["reasons"]]
    assert "spare" in reasons
    fresh = editor.client.get(path).text
    gone = editor.client.post(f"{path}/delete", data={**delete, "base": _base_of(fresh)})
    assert gone.status_code == 303, gone.text
    assert "spare" not in [r["id"] for r in _flow(api, owner)["flows"]["reasons"]]
