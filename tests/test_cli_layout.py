"""The command-line entry point imports the domains, never the reverse (issue 9, section 6)."""

from __future__ import annotations

import ast
from pathlib import Path

import stayflow

PACKAGE = Path(stayflow.__file__).parent


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    return names


def test_no_module_outside_the_entry_point_imports_it():
    offenders = {
        str(path.relative_to(PACKAGE))
        for path in PACKAGE.rglob("*.py")
        if path.parent != PACKAGE / "cli" and "stayflow.cli.main" in _imports(path)
    }
    assert offenders == set()


def test_domain_commands_use_the_shared_module():
    for domain in ("billing", "flows"):
        assert "stayflow.cli.common" in _imports(PACKAGE / domain / "cli.py")
    assert "stayflow.cli.main" not in _imports(PACKAGE / "cli" / "common.py")
