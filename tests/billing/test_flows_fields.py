"""The flows file's ``fields:`` list: field mappings applied and exported with the flows."""

from __future__ import annotations

import yaml
from click.testing import CliRunner

from stayflow.cli.main import main
from tests.conftest import TEST_SECRET_KEY

FLOWS_WITH_FIELDS = """\
reasons:
  - {id: too_expensive, label: "It's too expensive", feedback: too_expensive}
experiences:
  - {id: default, reasons: [too_expensive]}
fields:
  - {field: plan_interval, source: subscription.plan.interval, type: text}
  - {field: price, source: subscription.plan.amount, type: money}
  - {field: seats, source: custom.seats, type: integer}
"""


def _cli(database_url, *args):
    env = {"STAYFLOW_DATABASE_URL": database_url, "STAYFLOW_SECRET_KEY": TEST_SECRET_KEY}
    return CliRunner().invoke(main, list(args), env=env, catch_exceptions=False)


def test_fields_apply_export_round_trip(client, owner, other, database_url, tmp_path):
    source = tmp_path / "flows.yaml"
    source.write_text(FLOWS_WITH_FIELDS)
    dry = _cli(database_url, "flows", "apply", str(source), "--app", owner.app_id, "--dry-run")
    assert dry.exit_code == 0, dry.output
    assert "+- field: plan_interval" in dry.output
    assert client.get("/api/v1/field-mappings", headers=owner.headers).json() == []

    applied = _cli(database_url, "flows", "apply", str(source), "--app", owner.app_id, "--yes")
    assert applied.exit_code == 0, applied.output
    mappings = client.get("/api/v1/field-mappings", headers=owner.headers).json()
    assert [(m["field"], m["type"]) for m in mappings] == [
        ("plan_interval", "text"),
        ("price", "money"),
        ("seats", "integer"),
    ]
    assert client.get("/api/v1/field-mappings", headers=other.headers).json() == []

    exported = tmp_path / "out.yaml"
    assert (
        _cli(database_url, "flows", "export", str(exported), "--app", owner.app_id).exit_code == 0
    )
    doc = yaml.safe_load(exported.read_text())
    assert doc["fields"] == yaml.safe_load(FLOWS_WITH_FIELDS)["fields"]
    again = _cli(database_url, "flows", "apply", str(exported), "--app", owner.app_id, "--yes")
    assert again.exit_code == 0, again.output
    assert "no changes" in again.output

    # Only the fields change: shown as a diff, applied, the flows' version unchanged.
    exported.write_text(exported.read_text().replace("type: integer", "type: decimal"))
    changed = _cli(database_url, "flows", "apply", str(exported), "--app", owner.app_id, "--yes")
    assert changed.exit_code == 0, changed.output
    assert "+  type: decimal" in changed.output
    seats = client.get("/api/v1/field-mappings/seats", headers=owner.headers).json()
    assert seats["type"] == "decimal"

    # A file without fields: leaves the mappings alone.
    source.write_text(FLOWS_WITH_FIELDS.split("fields:")[0])
    without = _cli(database_url, "flows", "apply", str(source), "--app", owner.app_id, "--yes")
    assert without.exit_code == 0, without.output
    assert len(client.get("/api/v1/field-mappings", headers=owner.headers).json()) == 3


def test_bad_fields_refuse_the_whole_file(client, owner, database_url, tmp_path):
    for bad in (
        "  - {field: x, source: subscription.id, type: colour}\n",
        "  - {field: 'has space', source: subscription.id, type: text}\n",
        "  - {field: a, source: subscription.id, type: text}\n"
        "  - {field: a, source: subscription.status, type: text}\n",
        "  - {field: a, source: subscription.id, type: text, currency_source: x.y}\n",
    ):
        source = tmp_path / "bad.yaml"
        source.write_text(FLOWS_WITH_FIELDS.split("fields:")[0] + "fields:\n" + bad)
        result = _cli(database_url, "flows", "apply", str(source), "--app", owner.app_id, "--yes")
        assert result.exit_code != 0
        assert "fields" in result.output
    assert client.get("/api/v1/field-mappings", headers=owner.headers).json() == []
    assert client.get("/api/v1/flows", headers=owner.headers).json()["version"] == 0
