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



def test_the_processor_counts_each_return_once_by_the_cases_district(policy, calendar):
    """A return from the circulation log carries no district: it is charged to the district the
    order export gave the case; the same return delivered twice counts once."""
    from streams.processor import CaseProcessor, Mode, Record
    from tests.conftest import cn, ev

    registry = CollectorRegistry()
    metrics = WorkerMetrics(registry)
    processor = CaseProcessor(policy, calendar, {}, mode=Mode.REPLAY, observer=metrics)
    case = "hotline:12345:GD1"
    events = [ev("c", "created", cn(2026, 10, 12, 9), case=case, district="370102"),
              ev("d", "dispatched", cn(2026, 10, 12, 10), case=case, unit="U1", district="370102"),
              ev("r", "returned", cn(2026, 10, 12, 11), case=case, unit="U1", reason="不属本单位")]
    records = [Record("events.hotline", 0, case.encode(), e.to_json()) for e in events]
    processor.process(records)
    processor.process(records[-1:])  # delivered again
    assert registry.get_sample_value("civicflow_case_returns_total",
                                     {"source": "hotline", "district": "370102"}) == 1.0
