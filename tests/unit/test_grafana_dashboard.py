"""The Grafana dashboard only uses metrics civicflow exports."""

from __future__ import annotations

import json
import re
from pathlib import Path

from prometheus_client import CollectorRegistry

from producers.metrics import IngestMetrics
from sinks.metrics import SinkMetrics
from streams.metrics import WorkerMetrics

DASHBOARD = Path(__file__).parents[2] / "deploy" / "grafana" / "civicflow-overview.json"


def exported_names() -> set[str]:
    registry = CollectorRegistry()
    WorkerMetrics(registry)
    SinkMetrics(registry)
    IngestMetrics(registry)
    names = set()
    suffixes = {"counter": ["_total"], "histogram": ["_bucket", "_sum", "_count"], "gauge": [""]}
    for family in registry.collect():
        names.update(family.name + suffix for suffix in suffixes.get(family.type, [""]))
    # collectors that only yield series once cases exist
    names.update({"civicflow_cases_open", "civicflow_cases_overdue", "civicflow_cases_suspended",
                  "civicflow_response_rate_today_ratio", "civicflow_on_time_resolution_rate_today_ratio"})
    return names


def test_every_panel_queries_exported_metrics():
    dashboard = json.loads(DASHBOARD.read_text())
    names = exported_names()
    used = set()
    for panel in dashboard["panels"]:
        for target in panel["targets"]:
            used.update(re.findall(r"civicflow_[a-z_]+", target["expr"]))
    assert len(dashboard["panels"]) >= 10
    assert used and used <= names, f"unknown metrics: {sorted(used - names)}"
