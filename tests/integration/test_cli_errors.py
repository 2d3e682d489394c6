"""Errors a person can act on: one clear line, a non-zero exit, never a traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

FIXTURE = Path(__file__).parent.parent / "fixtures" / "grid_small.jsonl"


def civicflow(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None):
    return subprocess.run([sys.executable, "-m", "civicflow", *args], capture_output=True,
                          text=True, timeout=120, env={**os.environ, **(env or {})}, cwd=cwd)


def assert_one_line_error(proc, *needles: str) -> None:
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr and "Traceback" not in proc.stdout
    lines = [line for line in proc.stderr.splitlines() if line.startswith("civicflow:")]
    assert len(lines) == 1, proc.stderr
    for needle in needles:
        assert needle in proc.stderr.replace("\n", " ")


def test_unwritable_var_dir(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    proc = civicflow("demo", "--var-dir", str(blocker / "var"))
    assert_one_line_error(proc, "cannot write to", "--var-dir")


@pytest.mark.parametrize("binary", ["/bin/false", "/nonexistent/tansu"])
def test_broken_broker_start(tmp_path, binary):
    proc = civicflow("replay", "--format", "jn-grid", str(FIXTURE), "--var-dir", str(tmp_path),
                     env={"CIVICFLOW_TANSU_BIN": binary})
    assert_one_line_error(proc, "broker")


def test_unknown_format_and_missing_file(tmp_path):
    assert_one_line_error(civicflow("replay", "--format", "csv", str(FIXTURE)), "unknown feed format")
    assert_one_line_error(civicflow("replay", "--format", "jn-grid", str(tmp_path / "none.jsonl")),
                          "does not exist")


def test_bad_policy_file_names_the_key(tmp_path):
    policy = tmp_path / "p.toml"
    policy.write_text("[alerts]\nyellow = 0.8\n")
    proc = civicflow("replay", "--format", "jn-grid", str(FIXTURE), "--policy", str(policy),
                     "--var-dir", str(tmp_path))
    assert_one_line_error(proc, "alerts.red")


@pytest.mark.parametrize("command", [["report"], ["simulate", "--days", "1"], ["serve-ingest"]])
def test_malformed_property_secrets_is_one_line_on_every_command(tmp_path, command):
    proc = civicflow(*command, env={"CIVICFLOW_PROPERTY_SECRETS": "{C001: secret}",
                                    "CIVICFLOW_VAR_DIR": str(tmp_path)}, cwd=tmp_path)
    assert_one_line_error(proc, "CIVICFLOW_PROPERTY_SECRETS is not valid JSON",
                          """set it like CIVICFLOW_PROPERTY_SECRETS='{"C001": "secret"}'""")
    wrong_shape = civicflow(*command, env={"CIVICFLOW_PROPERTY_SECRETS": '["secret"]',
                                           "CIVICFLOW_VAR_DIR": str(tmp_path)}, cwd=tmp_path)
    assert_one_line_error(wrong_shape, "(CIVICFLOW_PROPERTY_SECRETS): Input should be a valid dictionary")


def test_unreachable_bootstrap_is_one_line_for_replay_and_serve_ingest(tmp_path):
    replay = civicflow("replay", "--format", "jn-grid", str(FIXTURE), "--var-dir", str(tmp_path),
                       "--bootstrap", "127.0.0.1:1")
    assert_one_line_error(replay, "cannot reach Kafka at 127.0.0.1:1", "check --bootstrap")
    serve = civicflow("serve-ingest", "--bootstrap", "127.0.0.1:1",
                      env={"CIVICFLOW_PROPERTY_SECRETS": '{"C001": "s"}'})
    assert_one_line_error(serve, "cannot reach Kafka at 127.0.0.1:1", "check --bootstrap")


def test_an_unusable_chdb_path_is_one_line_not_a_cpp_stack(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    env = {"CIVICFLOW_CLICKHOUSE": f"chdb://{blocker / 'clickhouse'}"}
    for args in (["report"], ["replay", "--format", "jn-grid", str(FIXTURE), "--var-dir", str(tmp_path)]):
        proc = civicflow(*args, env=env)
        assert_one_line_error(proc, f"cannot use {blocker / 'clickhouse'} as the chDB data directory",
                              "CIVICFLOW_CLICKHOUSE")
        assert "DB::Exception" not in proc.stderr and "@ 0x" not in proc.stderr


def test_brackets_in_a_message_print_as_they_are(tmp_path):
    policy = tmp_path / "p.toml"
    policy.write_text("[limits]\n")
    proc = civicflow("replay", "--format", "jn-grid", str(FIXTURE), "--policy", str(policy),
                     "--var-dir", str(tmp_path))
    assert_one_line_error(proc, "policy key [alerts] is missing")
