"""The flows admin API and the `stayflow flows export|apply` round trip."""

from __future__ import annotations

import json

import pytest
import yaml
from click.testing import CliRunner

from stayflow.cli.main import main
from tests.cancel_flow.helpers import FLOWS_YAML, apply_flows
from tests.conftest import TEST_SECRET_KEY


def test_put_get_and_idempotent_apply(client, owner):
    first = apply_flows(client, owner)
    assert first["changed"] is True and first["version"] == 1
    assert "+reasons:" in first["diff"]
    again = apply_flows(client, owner)
    assert again["changed"] is False and again["version"] == 1 and again["diff"] == ""
    got = client.get("/api/v1/flows", headers=owner.headers).json()
    assert got["version"] == 1
    assert [r["id"] for r in got["flows"]["reasons"]] == ["too_expensive", "not_using"]
    assert (
        got["flows"]["offers"][0]["headline"]
        == "Stay for 20% off, {{ first_name | default('friend') }}"
    )


def test_dry_run_does_not_save(client, owner):
    data = yaml.safe_load(FLOWS_YAML)
    response = client.put("/api/v1/flows?dry_run=true", json=data, headers=owner.headers)
    assert response.status_code == 200 and response.json()["changed"] is True
    assert client.get("/api/v1/flows", headers=owner.headers).json()["version"] == 0


@pytest.mark.parametrize(
    ("patch", "needle"),
    [
        ({"experiences": [{"id": "x", "offers": ["nope"]}]}, "unknown offer"),
        ({"experiences": [{"id": "x", "audience": "annual"}]}, "default"),
        ({"reasons": [{"id": "a", "label": "A"}, {"id": "a", "label": "B"}]}, "twice"),
        ({"reasons": [{"id": "a", "label": "A", "feedback": "bored"}]}, "feedback"),
        ({"offers": [{"id": "o", "type": "discount"}]}, "coupon"),
        ({"offers": [{"id": "o", "type": "teleport"}]}, "type"),
        ({"offers": [{"id": "o", "type": "pause", "duration": 0}]}, "duration"),
        ({"offers": [{"id": "o", "type": "redirect", "url": "javascript:alert(1)"}]}, "url"),
        (
            {
                "offers": [
                    {
                        "id": "o",
                        "type": "trial_extension",
                        "days": 7,
                        "headline": "{% for x in y %}{% endfor %}",
                    }
                ]
            },
            "merge",
        ),
        (
            {
                "offers": [
                    {
                        "id": "o",
                        "type": "trial_extension",
                        "days": 7,
                        "headline": "{{ x.__class__ }}",
                    }
                ]
            },
            "headline",
        ),
        (
            {
                "offers": [
                    {
                        "id": "o",
                        "type": "trial_extension",
                        "days": 7,
                        "headline": "{{ 'a' * 99999999 }}",
                    }
                ]
            },
            "merge",
        ),
        (
            {
                "offers": [
                    {
                        "id": "o",
                        "type": "trial_extension",
                        "days": 7,
                        "headline": "{{ x | attr('y') }}",
                    }
                ]
            },
            "filter",
        ),
        (
            {"experiences": [{"id": "d", "branding": {"primary_color": "red; background:url(x)"}}]},
            "colour",
        ),
        (
            {
                "experiences": [
                    {"id": "d", "branding": {"logo": "https://cdn.example.com/logo.png"}}
                ]
            },
            "logo",
        ),
        ({"reasons": [{"id": "bad id", "label": "A"}]}, "id"),
        (
            {"experiments": [{"id": "e", "variants": [{"experience": "default", "weight": 0}]}]},
            "weight",
        ),
        ({"surprise": []}, "surprise"),
    ],
)
def test_invalid_documents_are_4xx_and_change_nothing(client, owner, patch, needle):
    apply_flows(client, owner)
    data = yaml.safe_load(FLOWS_YAML)
    data.update(patch)
    response = client.put("/api/v1/flows", json=data, headers=owner.headers)
    assert 400 <= response.status_code < 500, response.text
    error = response.json()["error"]
    assert needle.lower() in json.dumps(error).lower(), error
    assert client.get("/api/v1/flows", headers=owner.headers).json()["version"] == 1


def test_item_routes(client, owner):
    apply_flows(client, owner)
    got = client.get("/api/v1/flows/offers/twenty_off", headers=owner.headers)
    assert got.status_code == 200 and got.json()["coupon"] == "SAVE20"
    changed = client.put(
        "/api/v1/flows/offers/twenty_off",
        json={**got.json(), "coupon": "SAVE25"},
        headers=owner.headers,
    )
    assert changed.status_code == 200 and changed.json()["version"] == 2
    offers = client.get("/api/v1/flows", headers=owner.headers).json()["flows"]["offers"]
    assert [o["id"] for o in offers] == ["twenty_off", "pause_2m"]  # kept in place
    assert offers[0]["coupon"] == "SAVE25"
    new = client.put(
        "/api/v1/flows/reasons/other", json={"label": "Something else"}, headers=owner.headers
    )
    assert new.status_code == 200
    # In use by the default experience: deleting it would break a reference.
    in_use = client.delete("/api/v1/flows/offers/pause_2m", headers=owner.headers)
    assert in_use.status_code == 409
    assert client.delete("/api/v1/flows/reasons/other", headers=owner.headers).status_code == 200
    assert client.get("/api/v1/flows/reasons/other", headers=owner.headers).status_code == 404
    assert client.get("/api/v1/flows/widgets/x", headers=owner.headers).status_code == 422
    mismatch = client.put(
        "/api/v1/flows/reasons/a", json={"id": "b", "label": "B"}, headers=owner.headers
    )
    assert mismatch.status_code == 400


def test_resolve(client, owner):
    apply_flows(client, owner)
    response = client.post(
        "/api/v1/flows/resolve",
        json={"subscription_id": "sub_1", "fields": {"subscription.plan.interval": "year"}},
        headers=owner.headers,
    )
    assert response.status_code == 200
    assert response.json()["experience_id"] == "annual_flow"


def _cli(database_url: str, *args: str, input: str | None = None):
    runner = CliRunner()
    env = {"STAYFLOW_DATABASE_URL": database_url, "STAYFLOW_SECRET_KEY": TEST_SECRET_KEY}
    return runner.invoke(main, list(args), env=env, input=input, catch_exceptions=False)


@pytest.mark.parametrize("suffix", ["yaml", "json"])
def test_cli_apply_export_round_trip(client, owner, database_url, tmp_path, suffix):
    source = tmp_path / "flows.yaml"
    source.write_text(FLOWS_YAML)
    dry = _cli(database_url, "flows", "apply", str(source), "--app", owner.app_id, "--dry-run")
    assert dry.exit_code == 0, dry.output
    assert "+- id: twenty_off" in dry.output and "dry run" in dry.output
    assert client.get("/api/v1/flows", headers=owner.headers).json()["version"] == 0
    refused = _cli(database_url, "flows", "apply", str(source), "--app", owner.app_id, input="n\n")
    assert refused.exit_code != 0
    applied = _cli(database_url, "flows", "apply", str(source), "--app", owner.app_id, input="y\n")
    assert applied.exit_code == 0, applied.output
    assert "applied: version 1" in applied.output
    exported = tmp_path / f"out.{suffix}"
    out = _cli(database_url, "flows", "export", str(exported), "--app", owner.app_id)
    assert out.exit_code == 0, out.output
    text = exported.read_text()
    if suffix == "json":
        json.loads(text)
    api_doc = client.get("/api/v1/flows", headers=owner.headers).json()["flows"]
    assert yaml.safe_load(text) == api_doc
    # Applying the export is a no-op: export and apply are inverse.
    again = _cli(database_url, "flows", "apply", str(exported), "--app", owner.app_id, "--yes")
    assert again.exit_code == 0 and "no changes" in again.output
    # A change to the file shows as a diff and applies.
    edited = text.replace("SAVE20", "SAVE30")
    exported.write_text(edited)
    changed = _cli(database_url, "flows", "apply", str(exported), "--app", owner.app_id, "--yes")
    assert changed.exit_code == 0, changed.output
    diff = changed.output.splitlines()
    removed = [line for line in diff if line.startswith("-") and "SAVE20" in line]
    added = [line for line in diff if line.startswith("+") and "SAVE30" in line]
    assert len(removed) == 1 and len(added) == 1, changed.output
    assert "applied: version 2" in changed.output


def test_cli_refuses_bad_files_and_unknown_apps(owner, database_url, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("reasons: [{id: a}]\n")
    result = _cli(database_url, "flows", "apply", str(bad), "--app", owner.app_id, "--yes")
    assert result.exit_code != 0 and "label" in result.output
    broken = tmp_path / "broken.yaml"
    broken.write_text("reasons: [\n")
    assert _cli(database_url, "flows", "apply", str(broken), "--app", owner.app_id).exit_code != 0
    nobody = _cli(database_url, "flows", "export", "-", "--app", "app_nobody")
    assert nobody.exit_code != 0 and "no app" in nobody.output
