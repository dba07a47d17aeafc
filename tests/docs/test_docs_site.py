"""The documentation site builds without a warning, its generated pages are current, and
every page is reachable (from the site's navigation and from the README)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]


def _pages() -> list[str]:
    return sorted(p.name for p in (ROOT / "docs").glob("*.md"))


def test_mkdocs_builds_strictly(tmp_path: Path) -> None:
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "WARNING" not in done.stderr, done.stderr
    assert (tmp_path / "quickstart" / "index.html").exists()
    # The generated API page made it into the site with a route of each kind.
    api = (tmp_path / "api" / "index.html").read_text()
    assert "/api/v1/cancel-sessions" in api and "/precancel" in api


def test_generated_pages_are_current() -> None:
    done = subprocess.run(
        [sys.executable, "scripts/gen_docs.py", "--check"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr


def test_every_page_is_in_the_navigation_and_the_readme() -> None:
    config = yaml.safe_load((ROOT / "mkdocs.yml").read_text())

    def walk(node: object) -> list[str]:
        if isinstance(node, str):
            return [node]
        if isinstance(node, list):
            return [p for item in node for p in walk(item)]
        if isinstance(node, dict):
            return [p for value in node.values() for p in walk(value)]
        return []

    assert sorted(walk(config["nav"])) == _pages()
    readme = (ROOT / "README.md").read_text()
    missing = [page for page in _pages() if f"docs/{page}" not in readme]
    assert missing == []


def test_the_permission_table_names_every_use_case_of_the_code() -> None:
    from stayflow.billing.service import USE_CASES, WEBHOOK_EVENTS

    page = (ROOT / "docs" / "stripe-permissions.md").read_text()
    for use_case, needs in USE_CASES.items():
        row = re.search(rf"^\| {use_case} \| (.*) \|$", page, re.M)
        assert row, use_case
        assert all(f"`{need}`" in row.group(1) for need in needs)
    assert all(f"- `{event}`" in page for event in WEBHOOK_EVENTS)
