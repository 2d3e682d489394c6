"""The topics' AsyncAPI document, validated by the AsyncAPI CLI (npm, installed by `make tools`)
together with the JSON Schemas it refers to."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

pytestmark = pytest.mark.component
ROOT = Path(__file__).resolve().parents[2]
CLI = ROOT / ".tools" / "node_modules" / ".bin" / "asyncapi"
CONTRACTS = ROOT / "schemas" / "json"


def asyncapi_validate(document: Path, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    if not CLI.exists():
        pytest.fail(f"the AsyncAPI CLI is not installed at {CLI}: run make tools")
    analytics = tmp_path / "asyncapi-analytics.json"  # no usage reports from a test run
    analytics.write_text(json.dumps({"analyticsEnabled": "false", "infoMessageShown": "true",
                                     "userID": "civicflow-tests"}))
    env = {**os.environ, "ASYNCAPI_METRICS_CONFIG_PATH": str(analytics)}
    return subprocess.run([str(CLI), "validate", "--fail-severity", "warn", str(document)],
                          capture_output=True, text=True, env=env, timeout=300, check=False)


def test_the_topics_document_is_valid_asyncapi_3(tmp_path):
    result = asyncapi_validate(CONTRACTS / "asyncapi.json", tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "is valid" in result.stdout
    document = json.loads((CONTRACTS / "asyncapi.json").read_text("utf-8"))
    assert document["asyncapi"].startswith("3.")
    topics = {channel["address"] for channel in document["channels"].values()}
    assert topics == {"events.grid", "events.hotline", "events.property", "events.invalid",
                      "cases.snapshots", "alerts.sla"}


def test_the_cli_refuses_a_broken_document(tmp_path):
    """The check above can fail: a message whose payload refers to no schema is an error."""
    document = json.loads((CONTRACTS / "asyncapi.json").read_text("utf-8"))
    document["components"]["messages"]["CanonicalEvent"]["payload"] = {"$ref": "missing.schema.json"}
    copy = shutil.copytree(CONTRACTS, tmp_path / "json")
    broken = copy / "asyncapi.json"
    broken.write_text(json.dumps(document))
    result = asyncapi_validate(broken, tmp_path)
    assert result.returncode != 0
    assert "missing.schema.json" in result.stdout + result.stderr
