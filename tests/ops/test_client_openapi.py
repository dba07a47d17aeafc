"""The JS client's inputs are current: the OpenAPI subset it calls and the page's words it
shows (python -m stayflow.ops.client_openapi writes both)."""

from __future__ import annotations

import json

from stayflow.ops import client_openapi
from stayflow.ops.client_openapi import CLIENT_DIR


def test_client_files_are_current() -> None:
    for path, text in client_openapi.rendered().items():
        assert path.read_text(encoding="utf-8") == text, (
            f"{path} is out of date: run python -m stayflow.ops.client_openapi "
            "(then npm run types:generate in clients/js)"
        )


def test_the_subset_has_what_the_client_calls() -> None:
    document = json.loads((CLIENT_DIR / "openapi.json").read_text(encoding="utf-8"))
    assert set(document["paths"]) == set(client_openapi.OPERATIONS)
    schemas = document["components"]["schemas"]
    assert {"PageModel", "ActionResultOut", "PrecancelOk", "ResultOut"} <= set(schemas)
    assert "embed_nonce" in schemas["PrecancelOk"]["properties"]


def test_check_mode_reports_a_stale_file(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(client_openapi, "CLIENT_DIR", tmp_path)
    assert client_openapi.main(["--check"]) == 1
    assert client_openapi.main([]) == 0
    assert client_openapi.main(["--check"]) == 0
