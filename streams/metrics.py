"""The worker's Prometheus metrics, built on a given registry. Labels are bounded: source,
type, district, urgency, milestone, level, topic, reason code — never a case, grid or text."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from schemas.enums import Milestone
from streams.calendar import WorkingDayCalendar, day_start_us, to_us
from streams.live_metrics import CaseIndex
from streams.observer import BatchStats, Observer
from streams.processor import CaseFacts

# minutes to weeks: 1m, 5m, 15m, 30m, 1h, 2h, 4h, 8h, 12h, 1d, 2d, 3d, 5d, 7d, 14d, 30d
DURATION_BUCKETS = (60, 300, 900, 1800, 3600, 7200, 14400, 28800, 43200, 86400, 172800, 259200,
                    432000, 604800, 1209600, 2592000)


class CaseGauges(Collector):
    """Open / overdue cases and today's rates, computed from the case index at scrape time."""

    def __init__(self, index: CaseIndex) -> None:
        self.index = index

    def collect(self) -> Iterator[GaugeMetricFamily]:
        open_cases, overdue, suspended = self.index.open_overdue_suspended()
        g_open = GaugeMetricFamily("civicflow_cases_open", "Open cases (not closed or cancelled).",
                                   labels=["source", "district"])
        g_overdue = GaugeMetricFamily("civicflow_cases_overdue",
                                      "Open cases with a red or escalation alert on an unmet milestone.",
                                      labels=["source", "district"])
        g_suspended = GaugeMetricFamily("civicflow_cases_suspended",
                                        "Open cases suspended now (挂起: their clocks paused).",
                                        labels=["source", "district"])
        for (source, district), count in sorted(open_cases.items()):
            g_open.add_metric([source, district], count)
            g_overdue.add_metric([source, district], overdue.get((source, district), 0))
            g_suspended.add_metric([source, district], suspended.get((source, district), 0))
        yield g_open
        yield g_overdue
        yield g_suspended
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
    def __init__(self, registry: CollectorRegistry, index: CaseIndex | None = None,
                 calendar: WorkingDayCalendar | None = None) -> None:
        self.index = index or CaseIndex()
        self.calendar_horizon = Gauge(
            "civicflow_calendar_official_until_timestamp_seconds",
            "End (24:00, Asia/Shanghai) of the last day of the official working-day schedule; "
            "instants past it are provisional until the next year's schedule is installed.",
            registry=registry)
        if calendar is not None:
            end = calendar.official_until_index + 1
            self.calendar_horizon.set(day_start_us(end) / 1e6)
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
        self.alerts = Counter("civicflow_alerts_total",
                              "Alert records emitted: kind fire (an alert fired), end (its milestone "
                              "met, its case closed or cancelled, its clock restarted) or retract.",
                              ["source", "milestone", "level", "kind"], registry=registry)
        self.returns = Counter("civicflow_case_returns_total",
                               "Returns (退单) applied: a unit handed a case back to the dispatch centre.",
                               ["source", "district"], registry=registry)
        self.archived = Counter("civicflow_worker_cases_archived_total",
                                "Settled cases whose whole state left the worker after the archive "
                                "period (CIVICFLOW_CASE_ARCHIVE_DAYS); only marks of their events stay.",
                                ["source"], registry=registry)
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
        self.cached_cases = Gauge(
            "civicflow_worker_cached_cases",
            "Cases kept decoded with their fold (bounded by CIVICFLOW_WORKER_CACHED_CASES): the "
            "worker's memory grows with it after a restart until the bound, then stays.",
            registry=registry)
        registry.register(CaseGauges(self.index))

    def batch(self, stats: BatchStats) -> None:
        self.cached_cases.set(stats.cached_cases)
        for (source, kind), count in stats.events.items():
            self.events.labels(source, kind).inc(count)
        for source, count in stats.duplicates.items():
            self.duplicates.labels(source).inc(count)
        for source, count in stats.late.items():
            self.late_events.labels(source).inc(count)
        for reason, count in stats.rejects.items():
            self.rejects.labels(reason).inc(count)
        for (source, milestone, level, kind), count in stats.alerts.items():
            self.alerts.labels(source, milestone, level, kind).inc(count)
        for delay in stats.alert_delays:
            self.alert_delay.observe(delay)
        for source, count in stats.archived.items():
            self.archived.labels(source).inc(count)
        for (source, district), count in stats.returns.items():
            self.returned(source, district, count)
        for source, urgency, milestone, seconds in stats.met:
            if milestone is Milestone.RESPOND:
                self.response_time.labels(source, urgency).observe(max(0.0, seconds))
            elif milestone is Milestone.RESOLVE:
                self.resolution_time.labels(source, urgency).observe(max(0.0, seconds))

    def returned(self, source: str, district: str | None, count: int = 1) -> None:
        """Distinct `returned` events applied, by the case's district (a circulation log's
        steps carry none)."""
        self.returns.labels(source, district or "unknown").inc(count)

    def case(self, case_id: str, facts: CaseFacts | None) -> None:
        self.index.update(case_id, facts)

    def set_clock(self, at: datetime) -> None:
        """The worker's clock: its gauge, and the day whose 响应率 / 按期办结率 the rate gauges show
        (without it the index knows no day and those gauges stay empty)."""
        self.clock.set(at.timestamp())
        self.index.update_clock(to_us(at))
