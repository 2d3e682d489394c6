"""How many cases the worker keeps decoded (its memory after a restart grows with them up to the
bound, then stays): the bound per mode and setting, and the gauge ops read it from."""

from __future__ import annotations

from prometheus_client import CollectorRegistry

from civicflow.settings import Settings
from streams.app import build_processor
from streams.metrics import WorkerMetrics
from streams.processor import CaseProcessor, Mode, Record
from tests.conftest import cn, ev


def test_live_keeps_fewer_cases_decoded_than_replay_unless_set():
    def bound(settings: Settings, mode: Mode) -> int:
        processor, _ = build_processor(settings, mode, {})
        return processor.working_set

    assert bound(Settings(), Mode.LIVE) == 20_000
    assert bound(Settings(), Mode.REPLAY) == 100_000
    assert bound(Settings(worker_cached_cases=500), Mode.LIVE) == 500
    assert bound(Settings(worker_cached_cases=500), Mode.REPLAY) == 500


def test_the_gauge_shows_the_cases_kept_decoded_up_to_the_bound(policy, calendar):
    registry = CollectorRegistry()
    processor = CaseProcessor(policy, calendar, {}, mode=Mode.REPLAY, working_set=50,
                              observer=WorkerMetrics(registry))

    def cached() -> float | None:
        return registry.get_sample_value("civicflow_worker_cached_cases")

    def created(first: int, count: int) -> list[Record]:
        cases = [f"grid:jn-grid:K{i}" for i in range(first, first + count)]
        return [Record("events.grid", 0, case.encode(),
                       ev(f"e{case}", "created", cn(2026, 10, 12, 9), case=case).to_json())
                for case in cases]

    processor.process(created(0, 30))
    assert cached() == 30
    processor.process(created(30, 90))  # 120 cases seen, 50 kept
    assert cached() == 50


def test_folds_the_worker_drops_are_freed_at_once_not_left_to_the_cyclic_collector(policy, calendar):
    """The worker collects cycles rarely (tune_gc): a fold dropped from its working set (or
    replaced when an event came out of order) must not wait for that collection. With the
    collector off, the folds alive after a feed are at most the cases kept decoded."""
    import gc
    import io
    from datetime import date

    from producers.base import Reject
    from producers.grid import GridAdapter
    from producers.simulator import simulate_grid
    from schemas.event import event_time_order

    lines = simulate_grid(seed=11, start=date(2026, 10, 12), days=6, cases_per_day=60, districts=2)
    events = [e for e in GridAdapter().parse(io.BytesIO(b"\n".join(lines)), "sim")
              if not isinstance(e, Reject)]
    events.sort(key=event_time_order)
    records = [Record("events.grid", 0, e.case_id.encode(), e.to_json()) for e in events]
    cases = len({e.case_id for e in events})
    kept = 40
    processor = CaseProcessor(policy, calendar, {}, mode=Mode.REPLAY, working_set=kept)
    gc.collect()
    gc.disable()
    try:
        for i in range(0, len(records), 97):
            processor.process(records[i:i + 97])
        folds = sum(1 for o in gc.get_objects() if type(o).__name__ == "CaseState")
    finally:
        gc.enable()
    assert cases > 5 * kept
    assert 0 < folds <= kept  # 0 would mean the folds are not visible to this count
