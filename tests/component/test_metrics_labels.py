"""After a simulated month, every metric label stays within a fixed, small set of values."""

from __future__ import annotations

import io
import re
from collections import defaultdict
from datetime import date

from prometheus_client import CollectorRegistry

from producers.base import Reject
from producers.grid import GridAdapter
from producers.simulator import simulate_grid
from streams.metrics import WorkerMetrics
from streams.processor import CaseProcessor, Mode, Record

MAX_VALUES = {"source": 3, "type": 10, "district": 6, "urgency": 3, "milestone": 3, "level": 5,
              "kind": 3, "reason": 20, "topic": 3}


def test_labels_are_bounded_after_a_simulated_month(policy, calendar):
    lines = simulate_grid(seed=9, start=date(2026, 9, 1), days=30, cases_per_day=12, districts=5)
    events = sorted((e for e in GridAdapter().parse(io.BytesIO(b"\n".join(lines)), "sim")
                     if not isinstance(e, Reject)), key=lambda e: e.occurred_at)
    registry = CollectorRegistry()
    metrics = WorkerMetrics(registry)
    processor = CaseProcessor(policy, calendar, {}, mode=Mode.REPLAY, observer=metrics)
    records = [Record("events.grid", hash(e.case_id) % 3, b"k", e.to_json()) for e in events]
    records.append(Record("events.grid", 0, b"k", b"not an event"))
    for i in range(0, len(records), 2000):
        processor.process(records[i:i + 2000])
    values: dict[str, set[str]] = defaultdict(set)
    samples = 0
    for family in registry.collect():
        for sample in family.samples:
            samples += 1
            for name, value in sample.labels.items():
                if name != "le":
                    values[name].add(value)
    assert samples > 100
    assert set(values) <= set(MAX_VALUES), f"unexpected labels {set(values) - set(MAX_VALUES)}"
    for name, seen in values.items():
        assert len(seen) <= MAX_VALUES[name], f"label {name} took {len(seen)} values: {sorted(seen)}"
        for value in seen:
            assert ":" not in value and not re.fullmatch(r"\d{15}", value), f"{name}={value}"
    # the counters add up to what was fed
    applied = sum(s.value for f in registry.collect() if f.name == "civicflow_worker_events"
                  for s in f.samples if s.name.endswith("_total"))
    assert applied == processor.counts["processed"] == len({e.event_id for e in events})


def test_metric_names_pass_promtool_lint(policy, calendar):
    import shutil
    import subprocess

    from prometheus_client import generate_latest

    from producers.metrics import IngestMetrics
    from sinks.metrics import SinkMetrics

    registry = CollectorRegistry()
    metrics = WorkerMetrics(registry)
    SinkMetrics(registry).rows.labels("events").inc()
    IngestMetrics(registry).records.labels("jn-grid", "produced").inc()
    processor = CaseProcessor(policy, calendar, {}, mode=Mode.REPLAY, observer=metrics)
    lines = simulate_grid(seed=2, start=date(2026, 10, 12), days=3, cases_per_day=5, districts=1)
    events = [e for e in GridAdapter().parse(io.BytesIO(b"\n".join(lines)), "sim") if not isinstance(e, Reject)]
    processor.process([Record("events.grid", 0, b"k", e.to_json())
                       for e in sorted(events, key=lambda e: e.occurred_at)])
    promtool = shutil.which("promtool")
    assert promtool, "promtool is missing: `make tools` installs it"
    lint = subprocess.run([promtool, "check", "metrics"], input=generate_latest(registry),
                          capture_output=True, timeout=60)
    assert lint.returncode == 0, lint.stdout.decode() + lint.stderr.decode()
