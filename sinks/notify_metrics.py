"""The notifier's Prometheus metrics, built on a given registry."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from schemas.enums import AlertLevel


class NotifyMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.posted = Counter("civicflow_notify_alerts_posted_total",
                              "Alerts Alertmanager accepted as newly firing.", ["level"],
                              registry=registry)
        self.ended = Counter("civicflow_notify_alerts_ended_total",
                             "Alert ends Alertmanager accepted, by why the alert ended.", ["reason"],
                             registry=registry)
        self.active = Gauge("civicflow_notify_active_alerts",
                            "Alerts active now (kept firing in Alertmanager).", ["level"],
                            registry=registry)
        self.resent = Counter("civicflow_notify_alerts_resent_total",
                              "Active alerts re-sent to keep them valid in Alertmanager.",
                              registry=registry)
        self.post_failures = Counter("civicflow_notify_post_failures_total",
                                     "Posts to Alertmanager that failed (retried with backoff).",
                                     registry=registry)
        self.refused = Counter("civicflow_notify_refused_total",
                               "Alerts Alertmanager refused (dead-lettered with its reason).",
                               registry=registry)
        self.delay = Histogram("civicflow_notify_delay_seconds",
                               "From an alert's instant (or its end) to Alertmanager accepting it.",
                               ["kind"], buckets=(0.1, 0.25, 0.5, 1, 2, 3, 5, 10, 30, 60, 300, 3600),
                               registry=registry)
        self.alertmanager_up = Gauge("civicflow_notify_alertmanager_up",
                                     "1 while Alertmanager accepts posts, 0 while retrying.",
                                     registry=registry)
        self.last_success = Gauge("civicflow_notify_last_success_timestamp_seconds",
                                  "When Alertmanager last accepted a post.", registry=registry)
        self.alertmanager_up.set(1)
        for level in AlertLevel:
            self.active.labels(level.value).set(0)
