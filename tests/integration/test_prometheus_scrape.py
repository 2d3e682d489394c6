"""A real Prometheus on 127.0.0.1 scrapes a real worker replaying simulated events; the
series it stores match what the test fed in."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import urllib.parse
import urllib.request
from collections import Counter
from datetime import date

import pytest

from civicflow.embedded import free_port, stop_process
from civicflow.pipeline import broker_for, read_feeds, worker_process
from civicflow.settings import Settings
from producers.kafka import EventProducer
from producers.simulator import simulate_grid, write_lines
from schemas.enums import CaseStatus
from schemas.topics import EVENT_TOPICS
from streams.cases import reduce_case
from streams.whatif import group_by_case

pytestmark = pytest.mark.integration


def query(base: str, expr: str) -> list[dict]:
    url = f"{base}/api/v1/query?{urllib.parse.urlencode({'query': expr})}"
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.loads(response.read())["data"]["result"]


def scalar(base: str, expr: str) -> float | None:
    result = query(base, expr)
    return float(result[0]["value"][1]) if result else None


def test_prometheus_scrapes_the_worker(tmp_path, policy, calendar):
    promtool = shutil.which("prometheus")
    assert promtool, "prometheus is missing: `make tools` installs it"
    feed = tmp_path / "grid.jsonl"
    write_lines(str(feed), simulate_grid(seed=4, start=date(2026, 10, 12), days=5,
                                         cases_per_day=10, districts=2))
    events, _, _ = read_feeds([("jn-grid", feed)])
    as_of = events[-1].occurred_at
    cases = group_by_case(events)
    states = [reduce_case(evs, policy, calendar) for evs in cases.values()]
    expected_alerts = Counter(p.level.value for s in states for p in s.fired(as_of))
    expected_open = sum(s.status not in (CaseStatus.CLOSED, CaseStatus.CANCELLED) for s in states)

    metrics_port, web_port = free_port(), free_port()
    settings = Settings(var_dir=tmp_path, partitions=2, metrics_port=metrics_port)
    config = tmp_path / "prometheus.yml"
    config.write_text(
        "global: {scrape_interval: 1s}\n"
        "scrape_configs:\n"
        f"  - job_name: worker\n    static_configs: [{{targets: ['127.0.0.1:{metrics_port}']}}]\n")
    base = f"http://127.0.0.1:{web_port}"
    with broker_for(settings) as bootstrap, worker_process(settings, bootstrap, "replay"):
        producer = EventProducer(bootstrap)
        for event in events:
            producer.send_event(event)
        producer.send_control(EVENT_TOPICS[events[0].source], range(2),
                              {"run": "scrape", "clock": as_of.isoformat(), "final": True})
        producer.flush()
        del producer
        prom = subprocess.Popen(
            [promtool, f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
             f"--web.listen-address=127.0.0.1:{web_port}"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 120
            total = None
            while time.monotonic() < deadline:
                try:
                    total = scalar(base, "sum(civicflow_worker_events_total)")
                    alerts = scalar(base, 'sum(civicflow_alerts_total{kind="fire"})')
                    clock = scalar(base, "max(civicflow_pipeline_clock_timestamp_seconds)")
                except OSError:
                    total = alerts = clock = None
                # the final control records (the clock to --as-of) may come a batch after the
                # last event: wait for the scrape that saw them too
                if total == len(events) and alerts == sum(expected_alerts.values()) and \
                        clock == as_of.timestamp():
                    break
                time.sleep(1)
            assert total == len(events)
            by_level = {r["metric"]["level"]: float(r["value"][1]) for r in query(
                base, 'sum by (level) (civicflow_alerts_total{kind="fire"})')}
            assert by_level == {k: float(v) for k, v in expected_alerts.items()}
            assert scalar(base, "sum(civicflow_cases_open)") == expected_open
            by_type = {r["metric"]["type"]: float(r["value"][1]) for r in query(
                base, "sum by (type) (civicflow_worker_events_total)")}
            assert by_type == {k: float(v) for k, v in Counter(e.type.value for e in events).items()}
            assert scalar(base, "max(civicflow_pipeline_clock_timestamp_seconds)") == as_of.timestamp()
        finally:
            stop_process(prom)
