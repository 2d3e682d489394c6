"""The worker's Prometheus metrics, built on a given registry. Labels are bounded: source,
type, district, urgency, milestone, level, topic, reason code — never a case, grid or text."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from schemas.case import Alert
from schemas.enums import Milestone
from streams.cases import CaseState
from streams.live_metrics import CaseIndex
from streams.processor import Observer

# minutes to weeks: 1m, 5m, 15m, 30m, 1h, 2h, 4h, 8h, 12h, 1d, 2d, 3d, 5d, 7d, 14d, 30d
DURATION_BUCKETS = (60, 300, 900, 1800, 3600, 7200, 14400, 28800, 43200, 86400, 172800, 259200,
                    432000, 604800, 1209600, 2592000)


class CaseGauges(Collector):
    """Open / overdue cases and today's rates, computed from the case index at scrape time."""

    def __init__(self, index: CaseIndex) -> None:
        self.index = index

    def collect(self) -> Iterator[GaugeMetricFamily]:
        open_cases, overdue = self.index.open_and_overdue()
        g_open = GaugeMetricFamily("civicflow_cases_open", "Open cases (not closed or cancelled).",
                                   labels=["source", "district"])
        g_overdue = GaugeMetricFamily("civicflow_cases_overdue",
                                      "Open cases with a red or escalation alert on an unmet milestone.",
                                      labels=["source", "district"])
        for (source, district), count in sorted(open_cases.items()):
            g_open.add_metric([source, district], count)
            g_overdue.add_metric([source, district], overdue.get((source, district), 0))
        yield g_open
        yield g_overdue
        response = GaugeMetricFamily("civicflow_response_rate_today_ratio",
                                     "响应率 of cases created today (Asia/Shanghai) per district.",
                                     labels=["district"])
        on_time = GaugeMetricFamily("civicflow_on_time_resolution_rate_today_ratio",
                                    "按期办结率 of cases created today per district.",
                                    labels=["district"])
        for district, (respond, resolve) in sorted(self.index.rates_for_day().items()):
            if respond is not None:
                response.add_metric([district], respond)
            if resolve is not None:
                on_time.add_metric([district], resolve)
        yield response
        yield on_time


class WorkerMetrics(Observer):
    def __init__(self, registry: CollectorRegistry, index: CaseIndex | None = None) -> None:
        self.index = index or CaseIndex()
        self.events = Counter("civicflow_worker_events_total", "Distinct events applied.",
                              ["source", "type"], registry=registry)
        self.rejects = Counter("civicflow_worker_events_rejected_total",
                               "Records on an events topic that were no canonical event.",
                               ["reason"], registry=registry)
        self.duplicates = Counter("civicflow_worker_events_duplicate_total",
                                  "Events seen again (same event_id) and ignored.", ["source"],
                                  registry=registry)
        self.late_events = Counter("civicflow_worker_events_late_total",
                            "Events that arrived after the clock had passed them.", ["source"],
                            registry=registry)
        self.alerts = Counter("civicflow_alerts_total", "Alerts emitted (retractions included).",
                              ["source", "milestone", "level", "retracted"], registry=registry)
        self.response_time = Histogram("civicflow_response_time_seconds",
                                       "Time from the clock start to the response.",
                                       ["source", "urgency"], buckets=DURATION_BUCKETS,
                                       registry=registry)
        self.resolution_time = Histogram("civicflow_resolution_time_seconds",
                                         "Time from the cycle start to the resolution.",
                                         ["source", "urgency"], buckets=DURATION_BUCKETS,
                                         registry=registry)
        self.alert_delay = Histogram("civicflow_alert_emit_delay_seconds",
                                     "Emission time minus the alert's instant.",
                                     buckets=(0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300, 3600),
                                     registry=registry)
        self.batch_seconds = Histogram("civicflow_worker_batch_seconds",
                                       "Time to process one batch (state, alerts, snapshots).",
                                       buckets=(0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10),
                                       registry=registry)
        self.batch_records = Histogram("civicflow_worker_batch_records", "Records per batch.",
                                       buckets=(1, 10, 100, 1000, 5000, 10000, 50000),
                                       registry=registry)
        self.lag = Gauge("civicflow_consumer_lag_messages",
                         "Messages on the topic not yet processed by this worker.", ["topic"],
                         registry=registry)
        self.clock = Gauge("civicflow_pipeline_clock_timestamp_seconds",
                           "The worker's clock (event time in replay, wall time live).",
                           registry=registry)
        registry.register(CaseGauges(self.index))

    def event(self, source: str, kind: str) -> None:
        self.events.labels(source, kind).inc()

    def duplicate(self, source: str) -> None:
        self.duplicates.labels(source).inc()

    def late(self, source: str) -> None:
        self.late_events.labels(source).inc()

    def rejected(self, reason: str) -> None:
        self.rejects.labels(reason).inc()

    def alert(self, alert: Alert) -> None:
        self.alerts.labels(alert.source.value, alert.milestone.value, alert.level.value,
                           str(alert.retracted).lower()).inc()
        if not alert.retracted:
            self.alert_delay.observe(max(0.0, (alert.emitted_at - alert.fires_at).total_seconds()))

    def milestone_met(self, source: str, urgency: str, milestone: Milestone, seconds: float) -> None:
        if milestone is Milestone.RESPOND:
            self.response_time.labels(source, urgency).observe(max(0.0, seconds))
        elif milestone is Milestone.RESOLVE:
            self.resolution_time.labels(source, urgency).observe(max(0.0, seconds))

    def case(self, case_id: str, state: CaseState, clock: datetime) -> None:
        self.index.update(case_id, state, clock)
