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
from schemas.enums import CaseStatus, Milestone
from schemas.topics import EVENT_TOPICS
from streams.calendar import CHINA_TZ
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
    expected_overdue, expected_rates = overdue_and_rates(states, as_of)
    assert sum(expected_overdue.values()) >= 3 and len(expected_rates) == 2

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
            # what the alert rules read: CivicflowOverdueSurge sums civicflow_cases_overdue by
            # district, CivicflowResponseRateLow reads civicflow_response_rate_today_ratio
            overdue = {r["metric"]["district"]: float(r["value"][1]) for r in query(
                base, "sum by (district) (civicflow_cases_overdue)")}
            assert overdue == {d: float(n) for d, n in expected_overdue.items()}
            rates = {r["metric"]["district"]: float(r["value"][1]) for r in query(
                base, "civicflow_response_rate_today_ratio")}
            assert rates.keys() == expected_rates.keys()
            for district, rate in expected_rates.items():
                assert abs(rates[district] - rate) < 1e-9, district
            assert scalar(base, "sum(civicflow_consumer_lag_messages)") == 0.0
        finally:
            stop_process(prom)


def overdue_and_rates(states, as_of):
    """Worked out from each case's reduced state, apart from the worker's gauge code: overdue =
    open with a current milestone unmet and its due time (the red instant) passed, per district;
    响应率 of the cases created on the clock's day (Asia/Shanghai), a milestone counting once met
    or due before the clock, per district."""
    overdue: Counter[str] = Counter()
    rates: dict[str, list[int]] = {}
    today = as_of.astimezone(CHINA_TZ).date()
    for state in states:
        district = state.district or "unknown"
        if state.status is CaseStatus.CANCELLED:
            continue
        if state.status is not CaseStatus.CLOSED:
            late = False
            for milestone in Milestone:
                clock = state.current(milestone)
                if clock is not None and clock.met_at is None and clock.stopped_at is None:
                    late |= clock.due() <= as_of
            overdue[district] += late
        if state.created_at.astimezone(CHINA_TZ).date() == today:
            due = state.dues.get(Milestone.RESPOND)
            met = state.clock(Milestone.RESPOND).met_at
            pair = rates.setdefault(district, [0, 0])
            if due is not None:
                pair[0] += met is not None and met <= due
                pair[1] += met is not None or due < as_of
    return ({d: n for d, n in overdue.items()},
            {d: on_time / due for d, (on_time, due) in rates.items() if due})


def worker_figures(port: int) -> dict[str, float] | None:
    """Sums of the worker's samples by metric name (and lag by topic) from its endpoint."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as response:
            text = response.read().decode()
    except OSError:
        return None
    sums: Counter[str] = Counter()
    for line in text.splitlines():
        if line.startswith("#") or not line.strip():
            continue
        name, value = line.rsplit(" ", 1)
        sums[name.split("{", 1)[0]] += float(value)
        if name.startswith("civicflow_consumer_lag_messages"):
            sums[name] += float(value)
    return dict(sums)


def test_lag_gauge_is_the_backlog_the_worker_has_not_processed(tmp_path):
    """CivicflowWorkerLagGrowing reads civicflow_consumer_lag_messages: while a worker works
    through a backlog of known size, the gauge equals the records sent minus the records the worker
    counted as processed — within one worker batch (a scrape between a batch's counters and its
    lag report) and one producer batch per partition (Tansu reports a partition's end as the
    first offset of its last record batch + 1)."""
    from datetime import timedelta

    from tests.conftest import cn, ev

    sent, worker_batch, producer_batch, partitions = 12_000, 300, 200, 2
    port = free_port()
    settings = Settings(var_dir=tmp_path, partitions=partitions, metrics_port=port,
                        worker_batch=worker_batch)
    samples: list[tuple[float, float]] = []
    with broker_for(settings) as bootstrap:
        producer = EventProducer(bootstrap)
        for i in range(sent):
            producer.send_event(ev(f"lag{i}", "created", cn(2026, 10, 12, 9) + timedelta(seconds=i),
                                   case=f"grid:jn-grid:LAG{i}"))
            if (i + 1) % producer_batch == 0:
                producer.flush()
        producer.flush()
        del producer
        with worker_process(settings, bootstrap, "replay"):
            deadline = time.monotonic() + 180
            processed = 0.0
            while processed < sent and time.monotonic() < deadline:
                figures = worker_figures(port)
                if figures:
                    processed = (figures.get("civicflow_worker_events_total", 0)
                                 + figures.get("civicflow_worker_events_duplicate_total", 0)
                                 + figures.get("civicflow_worker_events_rejected_total", 0))
                    lag = figures.get('civicflow_consumer_lag_messages{topic="events.grid"}')
                    if lag is not None and 0 < processed < sent:
                        samples.append((sent - processed, lag))
                time.sleep(0.2)
            final = worker_figures(port) or {}
    assert processed == sent
    assert len(samples) >= 3, f"only {len(samples)} scrapes while the backlog lasted"
    slack = worker_batch + partitions * producer_batch
    for backlog, lag in samples:
        assert backlog - slack <= lag <= backlog + slack, (backlog, lag)
    assert samples[0][1] > 2 * slack  # a real backlog was seen, not only its tail
    assert final.get('civicflow_consumer_lag_messages{topic="events.grid"}') == 0.0
