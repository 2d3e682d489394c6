"""The Prometheus rules and Alertmanager config, checked and unit-tested by the real tools."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

pytestmark = pytest.mark.component
DEPLOY = Path(__file__).parents[2] / "deploy"


def tool(name: str) -> str:
    found = shutil.which(name)
    assert found, f"{name} is missing: `make tools` installs Debian's prometheus packages"
    return found


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, timeout=120, cwd=DEPLOY)


def test_rules_are_valid():
    proc = run(tool("promtool"), "check", "rules", "prometheus/rules.yml")
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_every_alert_has_a_passing_unit_test():
    proc = run(tool("promtool"), "test", "rules", "prometheus/rules_test.yml")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    rules = (DEPLOY / "prometheus" / "rules.yml").read_text()
    tests = (DEPLOY / "prometheus" / "rules_test.yml").read_text()
    alerts = [line.split(":", 1)[1].strip() for line in rules.splitlines()
              if line.strip().startswith("- alert:")]
    assert len(alerts) == 8
    for alert in alerts:
        fired = f"alertname: {alert}\n        exp_alerts:\n          - exp_labels"
        quiet = f"alertname: {alert}\n        exp_alerts: []"
        assert fired in tests, f"{alert} has no firing test"
        assert quiet in tests, f"{alert} has no not-firing test"


def test_prometheus_and_alertmanager_configs_are_valid():
    proc = run(tool("promtool"), "check", "config", "--syntax-only", "prometheus/prometheus.yml")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    proc = run(tool("amtool"), "check-config", "alertmanager/alertmanager.yml")
    assert proc.returncode == 0, proc.stdout + proc.stderr
