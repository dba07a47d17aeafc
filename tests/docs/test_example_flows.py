"""docs/examples/flows.yaml is complete and applies, with the CLI, to a sandbox-connected app."""

from __future__ import annotations

import typing
from pathlib import Path

import yaml
from click.testing import CliRunner
from fastapi.testclient import TestClient

from stayflow.app import create_app
from stayflow.cli.main import main
from stayflow.offers.schemas import Offer
from tests.conftest import TEST_SECRET_KEY

EXAMPLE = Path(__file__).resolve().parents[2] / "docs" / "examples" / "flows.yaml"


def _offer_types() -> set[str]:
    union = typing.get_args(Offer)[0]
    return {typing.get_args(m.model_fields["type"].annotation)[0] for m in typing.get_args(union)}


def test_the_example_has_every_part_and_every_offer_type() -> None:
    doc = yaml.safe_load(EXAMPLE.read_text())
    assert {o["type"] for o in doc["offers"]} == _offer_types()
    assert doc["reasons"] and doc["audiences"] and doc["fields"]
    assert len(doc["experiences"]) >= 2 and doc["experiments"]


def test_the_example_applies_to_a_sandbox_connected_app(
    monkeypatch, tmp_path, settings, database_url, sandbox, stripe_client, owner
) -> None:
    stripe_client.v1.coupons.create(
        {"id": "SAVE20", "percent_off": 20, "duration": "repeating", "duration_in_months": 3}
    )
    stripe_client.v1.plans.create(
        {
            "id": "pro_yearly",
            "amount": 20000,
            "currency": "usd",
            "interval": "year",
            "product": {"name": "Pro yearly"},
        }
    )
    app = create_app(settings.model_copy(update={"stripe_api_base": sandbox.url}))
    with TestClient(app) as client:
        connected = client.put(
            "/api/v1/billing/stripe", json={"api_key": sandbox.secret_key}, headers=owner.headers
        )
        assert connected.status_code == 200, connected.text

        monkeypatch.setenv("STAYFLOW_DATABASE_URL", database_url)
        monkeypatch.setenv("STAYFLOW_SECRET_KEY", TEST_SECRET_KEY)
        monkeypatch.setenv("STAYFLOW_STRIPE_API_BASE", sandbox.url)
        applied = CliRunner().invoke(
            main, ["flows", "apply", str(EXAMPLE), "--app", owner.app_id, "--yes"]
        )
        assert applied.exit_code == 0, applied.output

        document = client.get("/api/v1/flows", headers=owner.headers).json()["flows"]
        assert {o["type"] for o in document["offers"]} == _offer_types()
        assert [e["id"] for e in document["experiences"]] == ["yearly", "standard", "pause_first"]
        assert [x["id"] for x in document["experiments"]] == ["pause_first_test"]
        mappings = client.get("/api/v1/field-mappings", headers=owner.headers).json()
        assert [m["field"] for m in mappings] == ["plan_interval", "price", "customer_since"]

        # Applying the same file again changes nothing.
        again = CliRunner().invoke(
            main, ["flows", "apply", str(EXAMPLE), "--app", owner.app_id, "--yes"]
        )
        assert again.exit_code == 0, again.output

    # A changed discount offer whose coupon is gone from the account is refused, by name.
    stripe_client.v1.coupons.delete("SAVE20")
    doc = yaml.safe_load(EXAMPLE.read_text())
    doc["offers"][0]["headline"] = "Changed, so checked again"
    changed = tmp_path / "flows.yaml"
    changed.write_text(yaml.safe_dump(doc))
    refused = CliRunner().invoke(
        main, ["flows", "apply", str(changed), "--app", owner.app_id, "--yes"]
    )
    assert refused.exit_code != 0 and "SAVE20" in refused.output, refused.output
