"""Reading and writing flows files (YAML or JSON) and showing what a change does."""

from __future__ import annotations

import difflib
import json
from pathlib import Path
from typing import Any

import yaml


class FlowsFileError(ValueError):
    pass


def parse(text: str, *, name: str = "flows") -> dict[str, Any]:
    try:
        data = yaml.safe_load(text)  # YAML is a superset of JSON: one parser reads both
    except yaml.YAMLError as exc:
        raise FlowsFileError(f"{name}: not valid YAML or JSON: {exc}") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise FlowsFileError(f"{name}: the top level must be a mapping (reasons:, offers:, ...)")
    return data


def dump(document: dict[str, Any], *, as_json: bool) -> str:
    if as_json:
        return json.dumps(document, indent=2, ensure_ascii=False) + "\n"
    return yaml.safe_dump(document, sort_keys=False, allow_unicode=True, width=100)


def is_json_path(path: str | Path) -> bool:
    return str(path).lower().endswith(".json")


def diff(old: dict[str, Any], new: dict[str, Any]) -> str:
    before = dump(old, as_json=False).splitlines(keepends=True) if old else []
    after = dump(new, as_json=False).splitlines(keepends=True) if new else []
    return "".join(difflib.unified_diff(before, after, "current", "new"))
