"""Settled cases leave the worker's table after the archive period: only marks of their
events stay, a re-sent copy is still a duplicate, anything new is a dead letter with its
reason, and open cases are never archived."""

from __future__ import annotations

from datetime import timedelta

import orjson
from prometheus_client import CollectorRegistry

from streams.metrics import WorkerMetrics
from streams.processor import CaseProcessor, Mode, Record
from tests.conftest import cn, ev

SETTLED = "grid:jn-grid:S1"
OPEN = "grid:jn-grid:O1"


def settled_case():
    day = cn(2026, 3, 2, 9)
    return [
        ev("s1", "created", day, case=SETTLED, district="历下区", category="市容环境:垃圾"),
        ev("s2", "dispatched", day + timedelta(minutes=10), case=SETTLED, unit="U1"),
        ev("s3", "responded", day + timedelta(hours=1), case=SETTLED, unit="U1"),
        ev("s4", "resolved", day + timedelta(hours=5), case=SETTLED, unit="U1"),
        ev("s5", "feedback", day + timedelta(hours=6), case=SETTLED, satisfaction="satisfied"),
        ev("s6", "closed", day + timedelta(hours=7), case=SETTLED),
    ]


def open_case():
    return [ev("o1", "created", cn(2026, 3, 2, 10), case=OPEN, district="历下区",
               category="市容环境:垃圾")]


def mover(at, n=1):
    """A new case whose event moves the replay clock (watermark) to `at`."""
    return [ev(f"m{at:%m%d}-{n}", "created", at, case=f"grid:jn-grid:M{at:%m%d}-{n}",
               district="历下区", category="市容环境:垃圾")]


def records(events):
    return [Record("events.grid", 0, e.case_id.encode(), e.to_json()) for e in events]


def processor(policy, calendar, store, days=30, observer=None):
    return CaseProcessor(policy, calendar, store, mode=Mode.REPLAY, observer=observer,
                         archive_after=timedelta(days=days) if days else None)


def snapshot_keys(out):
    return {key.decode() for _, key, _ in out.snapshots}


def test_a_settled_case_is_archived_after_the_period_and_late_news_is_refused(policy, calendar):
    store: dict[str, bytes] = {}
    registry = CollectorRegistry()
    metrics = WorkerMetrics(registry)
    worker = processor(policy, calendar, store, observer=metrics)
    worker.process(records(settled_case() + open_case()))
    whole = len(store[SETTLED])
    assert whole > 200 and SETTLED in metrics.index.rows

    # 29 days after the last event (2026-03-02 16:00): still whole, the clock has not reached it
    worker.process(records(mover(cn(2026, 3, 31, 15))))
    assert len(store[SETTLED]) == whole

    # past 30 days (plus the 10 minutes of allowed lateness the watermark trails by)
    worker.process(records(mover(cn(2026, 4, 1, 16, 11))))
    # a tag, the last event's instant (8 bytes) and a 4-byte mark for each of the 6 events
    assert len(store[SETTLED]) == 1 + 8 + 4 * 6
    assert len(store[OPEN]) > 100  # open: never archived
    assert {case for case, _ in worker.cases()} == {OPEN, "grid:jn-grid:M0331-1", "grid:jn-grid:M0401-1"}
    assert worker.counts["archived"] == 1
    assert registry.get_sample_value("civicflow_worker_cases_archived_total", {"source": "grid"}) == 1
    assert SETTLED not in metrics.index.rows  # the gauges' per-case row is gone too

    # the same feed sent again: every event a duplicate, nothing refused, no snapshot
    again = worker.process(records(settled_case()))
    assert worker.counts["duplicate"] == 6 and not again.rejects and not again.snapshots

    # an event the case never had: a dead letter saying why and what to do
    reopened = ev("s7", "reopened", cn(2026, 4, 2, 9), case=SETTLED)
    late = worker.process(records([reopened]))
    assert not late.snapshots and len(late.rejects) == 1
    dead = orjson.loads(late.rejects[0][1])
    assert dead["reason"].startswith(f"case archived: case {SETTLED} was settled")
    assert "2026-03-02" in dead["reason"] and "CIVICFLOW_CASE_ARCHIVE_DAYS" in dead["reason"]
    assert registry.get_sample_value("civicflow_worker_events_rejected_total",
                                     {"reason": "case archived"}) == 1

    # a restarted worker reads the marks back: copies still duplicates, nothing rebuilt for it
    restarted = processor(policy, calendar, store)
    count, _ = restarted.rebuild({("events.grid", 0)})
    assert count == 3  # the open case and the two movers, not the archived one
    out = restarted.process(records(settled_case()[:2]))
    assert restarted.counts["duplicate"] == 2 and not out.rejects


def test_within_the_period_or_with_archiving_off_late_news_is_applied(policy, calendar):
    for days, clock in ((30, cn(2026, 3, 31, 15)), (0, cn(2026, 9, 1))):
        store: dict[str, bytes] = {}
        worker = processor(policy, calendar, store, days=days)
        worker.process(records(settled_case() + mover(clock)))
        out = worker.process(records([ev("s7", "reopened", clock, case=SETTLED)]))
        assert not out.rejects and SETTLED in snapshot_keys(out)
        snapshot = orjson.loads(next(v for _, k, v in out.snapshots if k == SETTLED.encode()))
        assert snapshot["status"] == "reopened" and snapshot["version"] // 16 == 7  # 7 events


def test_the_table_holds_marks_not_states_of_old_cases(policy, calendar):
    """100 settled cases a day for 60 days: with archiving the table's bytes grow with the
    cases of the last 30 days, without it with all 6,000."""
    sizes = {}
    for days in (30, 0):
        store: dict[str, bytes] = {}
        worker = processor(policy, calendar, store, days=days)
        for day in range(60):
            batch = []
            for n in range(100):
                case = f"grid:jn-grid:D{day}-{n}"
                start = cn(2026, 3, 2, 9) + timedelta(days=day)
                batch += [ev(f"{case}-{i}", kind, start + timedelta(hours=i), case=case,
                             district="历下区", category="市容环境:垃圾", unit="U1",
                             **({"satisfaction": "satisfied"} if kind == "feedback" else {}))
                          for i, kind in enumerate(("created", "dispatched", "responded",
                                                    "resolved", "feedback", "closed"))]
            worker.process(records(batch))
        cases = [len(v) for k, v in store.items() if not k.startswith("\x00")]
        sizes[days] = sum(cases)
        whole = [size for size in cases if size > 33]
        marks = [size for size in cases if size == 33]
        if days:
            # the cases whose last event is more than 30 days (and the lateness) before the
            # clock (day 59, 14:00): days 0..28 are archived, 29..59 whole
            assert len(marks) == 29 * 100 and len(whole) == 31 * 100
        else:
            assert not marks and len(whole) == 60 * 100
    print(f"table bytes: {sizes[30]:,} archiving, {sizes[0]:,} whole")
    assert sizes[30] < 0.6 * sizes[0]


def test_history_backfilled_into_a_live_worker_is_not_archived_while_it_arrives(policy, calendar):
    """Live mode, wall clock in December: a March case arrives in two batches (its 回访 after its
    结案). Its events are 9 months old, but the worker heard of it just now: nothing is refused;
    it is archived 30 days of wall clock after the last news."""
    now = [cn(2026, 12, 1, 9)]
    store: dict[str, bytes] = {}
    worker = CaseProcessor(policy, calendar, store, mode=Mode.LIVE, wall_clock=lambda: now[0],
                           archive_after=timedelta(days=30))
    history = settled_case()
    worker.process(records([e for e in history if e.type != "feedback"]))
    now[0] += timedelta(hours=1)
    out = worker.process(records([e for e in history if e.type == "feedback"]))
    assert not out.rejects and SETTLED in snapshot_keys(out)
    now[0] += timedelta(days=29)
    worker.tick()
    assert len(store[SETTLED]) > 100
    now[0] += timedelta(days=1, minutes=1)
    worker.tick()
    assert len(store[SETTLED]) == 1 + 8 + 4 * 6
