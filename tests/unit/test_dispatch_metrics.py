"""The worker's 退单 counter: what the observer reports is what Prometheus reads."""

from __future__ import annotations

from prometheus_client import CollectorRegistry

from streams.metrics import WorkerMetrics


def test_returns_are_counted_per_source_and_district():
    registry = CollectorRegistry()
    metrics = WorkerMetrics(registry)
    for source, district, count in [("hotline", "370102", 1), ("hotline", "370102", 2),
                                    ("grid", "370102", 1), ("hotline", None, 1)]:
        metrics.returned(source, district, count)

    def returns(source: str, district: str) -> float | None:
        return registry.get_sample_value("civicflow_case_returns_total",
                                         {"source": source, "district": district})
    assert (returns("hotline", "370102"), returns("grid", "370102"), returns("hotline", "unknown")) == (
        3.0, 1.0, 1.0)

