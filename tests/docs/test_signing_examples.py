"""The signing examples of `docs/snippet.md`, in Python, Node.js, Ruby and PHP, run as written
and used against a real stayflow: each program's output opens a cancel session whose audience
targets the signed field, and each hash is the one stayflow's own check accepts.

An interpreter that is missing skips its language, unless STAYFLOW_REQUIRE_SIGNERS=1 (CI,
whose .ci/run installs ruby and php-cli), where that is a failure.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.cancel_flow.helpers import ORIGIN, configure, precancel_body

ROOT = Path(__file__).resolve().parents[2]
LANGUAGES = {
    "python": ("python3", ".py"),
    "javascript": ("node", ".js"),
    "ruby": ("ruby", ".rb"),
    "php": ("php", ".php"),
}
FLOWS = """\
reasons: [{id: r, label: "Why?"}]
offers:
  - {id: big_account, type: trial_extension, days: 30}
  - {id: everyone, type: trial_extension, days: 7}
audiences:
  - {id: big, rule: {field: signed.account.seats, op: greater, value: 100}}
experiences:
  - {id: big_flow, audience: big, offers: [big_account]}
  - {id: default, offers: [everyone]}
"""


def example(language: str) -> str:
    page = (ROOT / "docs" / "snippet.md").read_text()
    blocks = re.findall(rf"```{language}\n(.*?)```", page, re.S)
    assert len(blocks) == 1, f"docs/snippet.md has {len(blocks)} {language} blocks"
    return blocks[0]


def run_example(language: str, tmp_path: Path, secret: str, subscription: str) -> dict:
    program, suffix = LANGUAGES[language]
    if shutil.which(program) is None:
        if os.environ.get("STAYFLOW_REQUIRE_SIGNERS") == "1":
            pytest.fail(f"STAYFLOW_REQUIRE_SIGNERS=1 but {program} is not installed")
        pytest.skip(f"{program} is not installed")
    source = tmp_path / f"sign{suffix}"
    source.write_text(example(language))
    done = subprocess.run(
        [program, str(source)],
        env={**os.environ, "APP_SECRET": secret, "SUBSCRIPTION_ID": subscription},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return dict(json.loads(done.stdout))


@pytest.mark.parametrize("language", sorted(LANGUAGES))
def test_the_signing_example_opens_a_session_stayflow_trusts(
    language: str, client, owner, tmp_path: Path
) -> None:
    configure(client, owner)
    answer = client.put("/api/v1/flows", json=yaml.safe_load(FLOWS), headers=owner.headers)
    assert answer.status_code == 200, answer.text
    subscription = f"sub_{language}Example42"
    made = run_example(language, tmp_path, owner.app_secret, subscription)

    body = precancel_body(owner, subscription_id=subscription, **made)
    opened = client.post("/precancel", json=body, headers={"Origin": ORIGIN})
    assert opened.status_code == 200, opened.text
    session_id = opened.json()["session_id"]
    token = opened.json()["url"].rsplit("/c/", 1)[1]
    assert client.get(f"/c/{token}", headers={"Accept": "application/json"}).status_code == 200
    record = client.get(f"/api/v1/cancel-sessions/{session_id}", headers=owner.headers).json()
    assert record["signed"] is True and record["signed_fields"] == {"account": {"seats": 250}}
    assert record["experience_id"] == "big_flow"

    # Made with another secret, the same program's output is refused.
    forged = run_example(language, tmp_path, "sfs_not-the-app-secret", subscription)
    refused = client.post(
        "/precancel",
        json=precancel_body(owner, subscription_id=subscription, **forged),
        headers={"Origin": ORIGIN},
    )
    assert refused.status_code == 400
    assert refused.json()["error"]["type"] == "invalid_signature"
