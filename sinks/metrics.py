"""The sink's Prometheus metrics, built on a given registry."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class SinkMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.batch_rows = Histogram("civicflow_sink_batch_rows", "Rows per ClickHouse batch.",
                                    buckets=(1, 10, 100, 1000, 10000, 50000, 100000, 500000),
                                    registry=registry)
        self.insert_seconds = Histogram("civicflow_sink_insert_seconds",
                                        "Time to insert one batch into every table.",
                                        buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30),
                                        registry=registry)
        self.rows = Counter("civicflow_sink_rows_written_total", "Rows ClickHouse accepted.",
                            ["table"], registry=registry)
        self.failures = Counter("civicflow_sink_failures_total",
                                "Failed inserts (retried while ClickHouse is unavailable).",
                                registry=registry)
        self.dead_lettered = Counter("civicflow_sink_dead_lettered_total",
                                     "Rows ClickHouse refused, written to rejects.",
                                     registry=registry)
        self.last_success = Gauge("civicflow_sink_last_success_timestamp_seconds",
                                  "When the last batch was committed.", registry=registry)
        self.healthy = Gauge("civicflow_sink_healthy", "1 while inserts succeed, 0 while retrying.",
                             registry=registry)
        self.healthy.set(1)
