"""The notifier's metrics pass `promtool check metrics` and their labels stay bounded."""

from __future__ import annotations

import shutil
import subprocess

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from schemas.enums import AlertEnd, AlertLevel
from sinks.notify_metrics import NotifyMetrics

pytestmark = pytest.mark.component


def test_notify_metrics_lint_and_bounded_labels():
    registry = CollectorRegistry()
    metrics = NotifyMetrics(registry)
    for level in AlertLevel:
        metrics.posted.labels(level.value).inc()
    for reason in [*(r.value for r in AlertEnd), "retracted", "superseded"]:
        metrics.ended.labels(reason).inc()
    for kind in ("fire", "end"):
        metrics.delay.labels(kind).observe(1.5)
    promtool = shutil.which("promtool")
    assert promtool, "promtool is missing: `make tools` installs it"
    lint = subprocess.run([promtool, "check", "metrics"], input=generate_latest(registry),
                          capture_output=True, timeout=60)
    assert lint.returncode == 0, lint.stdout.decode() + lint.stderr.decode()
    values: dict[str, set[str]] = {}
    for family in registry.collect():
        for sample in family.samples:
            for name, value in sample.labels.items():
                values.setdefault(name, set()).add(value)
    assert set(values) == {"level", "reason", "kind", "le"}
    assert len(values["level"]) == 5 and len(values["reason"]) == 6 and values["kind"] == {"fire", "end"}
