"""The repository explains itself: its README and docs never send a reader outside it."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _doc_files() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]


def test_no_document_points_outside_the_repository() -> None:
    outside = re.compile(r"\.\./|/work/|shared/DESIGN")
    found = [
        f"{path.relative_to(ROOT)}:{number}: {line.strip()}"
        for path in _doc_files()
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if outside.search(line)
    ]
    assert found == []


def test_every_repository_path_a_document_names_exists() -> None:
    """`docs/x.md` or `stayflow/...` named in backticks must be in the repository."""
    named = re.compile(r"`((?:docs|stayflow|bench|tests)/[A-Za-z0-9_./-]+)`")
    missing = [
        f"{path.relative_to(ROOT)}: {target}"
        for path in _doc_files()
        for target in named.findall(path.read_text())
        if "<" not in target and not (ROOT / target.rstrip("/")).exists()
    ]
    assert missing == []


def test_readme_points_at_the_architecture() -> None:
    assert "docs/architecture.md" in (ROOT / "README.md").read_text()
    assert (ROOT / "docs" / "architecture.md").exists()
