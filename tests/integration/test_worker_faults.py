"""Several Faust workers share a replay and one is SIGKILLed at a random point: the results equal
a clean single-worker run of the same input (cases, alerts and alert ends, every column), no event
lands twice, every copy on alerts.sla is counted (at-least-once allows copies of what the dead
worker sent after its last commit, nothing else), the failover time is printed, no run stalls."""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import pytest

from civicflow.pipeline import broker_for, read_feeds, sink_thread
from civicflow.settings import Settings
from producers.kafka import EventProducer
from producers.simulator import simulate_grid, write_lines
from schemas.topics import EVENT_TOPICS
from sinks.clickhouse import ClickHouseSink, connect
from sinks.migrate import migrate
from tests.accounting import (
    AlertLedger,
    account_records,
    assert_same_results,
    freeze_merges,
    raw_copies,
    read_alerts,
)
from tests.conftest import policy_text
from tests.stack import start_worker, stop_workers, wait_for_progress, wait_until_assigned

pytestmark = pytest.mark.integration
PARTITIONS = 4
# a month of a small grid: 3,362 records, 3,326 events, 573 cases
FEED = {"seed": 11, "start": date(2026, 9, 21), "days": 30, "cases_per_day": 10, "districts": 2}


@dataclass
class FaultRun:
    db: str
    ledger: AlertLedger
    seconds: float
    tally_read: int
    tally_skipped: int
    kill_fraction: float | None = None
    failover: float | None = None
    killed_held: int = 0  # partitions (of every topic the worker reads) the killed worker held


def dsn(chdb_var: Path) -> str:
    return f"chdb://{(chdb_var / 'clickhouse').resolve()}"


def replay_with_workers(chdb_var: Path, tmp: Path, feed: Path, db: str, workers: int,
                        kill_fraction: float | None = None, snapshots: int = 0) -> FaultRun:
    """Replay `feed` through `workers` worker processes in one group; with `kill_fraction`, SIGKILL
    the first worker once that fraction of `snapshots` (a clean run's count) has landed."""
    events, rejects, tally = read_feeds([("jn-grid", feed)])
    as_of = events[-1].occurred_at
    settings = Settings(var_dir=tmp, partitions=PARTITIONS, database=db, clickhouse=dsn(chdb_var),
                        worker_batch=200)
    sink = ClickHouseSink(connect(settings.clickhouse_dsn()), db)
    sink.client.command(f"DROP DATABASE IF EXISTS {db}")
    migrate(sink.client, db)
    freeze_merges(sink.client, db)
    run_id = f"faults-{db}"
    started = time.monotonic()
    with broker_for(settings) as bootstrap, sink_thread(settings, bootstrap, sink) as runner:
        procs = [start_worker(settings, bootstrap, "replay", i, tmp) for i in range(workers)]
        try:
            wait_until_assigned(procs)
            producer = EventProducer(bootstrap)
            for event in events:
                producer.send_event(event)
            for reject in rejects:
                producer.send_reject(reject)
            producer.send_control(EVENT_TOPICS[events[0].source], range(PARTITIONS),
                                  {"run": run_id, "clock": as_of.isoformat(), "final": True})
            producer.flush()
            del producer
            run = FaultRun(db, AlertLedger(), 0.0, tally.read, tally.duplicates, kill_fraction)
            expected = 3 * PARTITIONS
            alive = list(procs)

            def check() -> None:
                for worker in alive:
                    assert worker.proc.poll() is None, f"worker {worker.index} died:\n{worker.tail()}"

            def landed_rows() -> int:
                return sum(runner.stats.rows.values())

            if kill_fraction is not None:
                victim = procs[0]
                wait_for_progress(lambda: runner.stats.rows.get("cases", 0) >= kill_fraction * snapshots,
                                  landed_rows, stall_seconds=120, timeout=300,
                                  what="before the kill", check=check)
                assert runner.landed(run_id) < expected, "the replay ended before the kill"
                held = victim.rebuilt_at()[-1][1]
                killed_at = time.time()
                victim.proc.kill()
                victim.proc.wait(10)
                alive.remove(victim)
            wait_for_progress(lambda: runner.landed(run_id) == expected, landed_rows,
                              stall_seconds=120, timeout=600, what="the replay", check=check)
            run.seconds = time.monotonic() - started
            if kill_fraction is not None:
                # failover: from the kill until the last survivor whose assignment changed is
                # ready on it (changelog recovered, deadline heaps rebuilt)
                ready = [at for w in alive for at, _ in w.rebuilt_at() if at > killed_at]
                assert ready, "no survivor took over"
                run.failover = max(ready) - killed_at
                run.killed_held = held
            run.ledger = read_alerts(bootstrap)
        finally:
            stop_workers(procs)
    return run


@pytest.fixture(scope="module")
def month(tmp_path_factory):
    path = tmp_path_factory.mktemp("faults") / "grid.jsonl"
    write_lines(str(path), simulate_grid(**FEED))
    return path


@pytest.fixture(scope="module")
def clean(month, chdb_var, tmp_path_factory):
    """The clean single-worker run every fault run is compared with."""
    run = replay_with_workers(chdb_var, tmp_path_factory.mktemp("clean"), month, "it_faults_clean", 1)
    client = connect(dsn(chdb_var))
    snapshots = raw_copies(client, run.db)["cases"]["raw"]
    print(f"clean run: {run.seconds:.0f}s, {run.ledger.line()}, {snapshots} snapshots")
    assert run.ledger.copies == 0 and snapshots > 400
    return run, snapshots


# `make test` runs the three-worker case (two survivors share the dead one's partitions);
# `make soak` runs the two-worker case too
@pytest.mark.parametrize("workers", [pytest.param(2, marks=pytest.mark.soak), 3])
def test_a_worker_killed_at_a_random_point_changes_no_result(workers, month, clean, chdb_var, tmp_path):
    clean_run, snapshots = clean
    fraction = random.Random().uniform(0.15, 0.7)
    db = f"it_faults_kill_{workers}"
    run = replay_with_workers(chdb_var, tmp_path, month, db, workers, fraction, snapshots)
    client = connect(dsn(chdb_var))
    sizes = assert_same_results(client, clean_run.db, db)
    copies = raw_copies(client, db)
    account = account_records(client, db, run.tally_read, run.tally_skipped)
    print(f"{workers} workers, killed after {fraction:.0%} of the snapshots: failover "
          f"{run.failover:.1f}s, run {run.seconds:.0f}s (clean {clean_run.seconds:.0f}s); "
          f"{run.ledger.line()}; {account.line()}; rows {sizes}; raw copies "
          f"{ {t: c['copies'] for t, c in copies.items()} }")
    assert account.balanced and account.raw_events == account.distinct_events
    assert copies["events"]["copies"] == 0 and copies["rejects"]["copies"] == 0
    # alerts.sla: every (alert, kind) of the clean run is there, nothing else
    assert run.ledger.distinct == clean_run.ledger.distinct
    # copies only of what the dead worker had sent after its last commit (see docs/RELIABILITY.md)
    assert run.ledger.copies <= clean_run.ledger.records / workers


# respond 0.1 min = 6 s: yellow 4.8 s, red 6 s, escalations 9, 12 and 18 s after a case is created
FAST_POLICY = policy_text("""
[property.urgent]
respond = "0.1m"
resolve = "10m"
feedback = "1wd"
""")


def test_a_worker_joining_a_live_group_while_alerts_fire_loses_and_doubles_none(chdb_var, tmp_path,
                                                                                 calendar):
    """Cases arrive for 20 s, their alerts due within seconds (a third answered after the red);
    a second live worker joins the group in the middle, so partitions move while alerts fire.
    Every alert the policy gives (worked out by the pure reduction) fires once and every answered
    one ends once on alerts.sla; copies are counted; ClickHouse holds the same alerts."""
    from datetime import UTC, datetime, timedelta

    from schemas import Event, load_policy
    from streams.cases import reduce_case

    policy_file = tmp_path / "fast.toml"
    policy_file.write_text(FAST_POLICY)
    policy = load_policy(policy_file)
    db = "it_faults_live_join"
    settings = Settings(var_dir=tmp_path, partitions=PARTITIONS, database=db, clickhouse=dsn(chdb_var),
                        policy=policy_file, clock_report_seconds=1.0)
    sink = ClickHouseSink(connect(settings.clickhouse_dsn()), db)
    sink.client.command(f"DROP DATABASE IF EXISTS {db}")
    migrate(sink.client, db)
    freeze_merges(sink.client, db)
    events: list[Event] = []

    def case_event(n: int, kind: str, at: datetime) -> Event:
        return Event(event_id=f"live-{n}-{kind}", case_id=f"property:wuye:LIVE{n}", source="property",
                     system="wuye", type=kind, occurred_at=at, urgency="urgent", district="370102")

    with broker_for(settings) as bootstrap, \
            sink_thread(settings, bootstrap, sink, live=True) as runner:
        first = start_worker(settings, bootstrap, "live", 0, tmp_path)
        procs = [first]
        try:
            wait_until_assigned([first])
            producer = EventProducer(bootstrap)
            answers: list[tuple[float, Event]] = []
            joined_at = None
            started = time.monotonic()
            n = 0
            while time.monotonic() - started < 20 or answers:
                now = datetime.now(UTC)
                for _ in range(2 if time.monotonic() - started < 20 else 0):
                    created = case_event(n, "created", now)
                    events.append(created)
                    producer.send_event(created)
                    if n % 3 == 0:  # answered 7 s in: after its red, before its first escalation
                        answers.append((time.monotonic() + 7, case_event(n, "responded",
                                                                       now + timedelta(seconds=7))))
                    n += 1
                while answers and answers[0][0] <= time.monotonic():
                    answer = answers.pop(0)[1]
                    events.append(answer)
                    producer.send_event(answer)
                producer.flush()
                if joined_at is None and time.monotonic() - started > 8:
                    procs.append(start_worker(settings, bootstrap, "live", 1, tmp_path))
                    joined_at = time.time()
                time.sleep(0.25)
            del producer
            last_instant = max(e.occurred_at for e in events) + timedelta(seconds=18)
            states = [reduce_case([e for e in events if e.case_id == case], policy, calendar)
                      for case in {e.case_id for e in events}]
            expected_fire = {(p.alert_id, "fire") for s in states for p in s.fired(last_instant)}
            answered = {e.case_id for e in events if e.type == "responded"}
            expected_end = {(a, "end") for a, _ in expected_fire if a.split(":respond:")[0] in answered}
            expected = expected_fire | expected_end

            def seen() -> int:
                return runner.stats.rows.get("alerts", 0) + runner.stats.rows.get("alert_ends", 0)
            wait_for_progress(lambda: seen() >= len(expected) and datetime.now(UTC) > last_instant
                              + timedelta(seconds=5), seen, stall_seconds=120, timeout=300,
                              what="every alert and end", check=lambda: None)
            wait_until_assigned(procs)
            ledger = read_alerts(bootstrap, keep="property:wuye:LIVE")
        finally:
            stop_workers(procs)
    both = [w for w in procs if w.rebuilt_at()]
    moved = [at for w in both for at, _ in w.rebuilt_at() if joined_at and at > joined_at]
    print(f"{len(events)} events, {len(expected_fire)} alerts fire, {len(expected_end)} end; "
          f"{ledger.line()}; the join took {max(moved) - joined_at:.1f}s to settle")  # type: ignore[operator]
    assert len(expected_fire) > 300 and len(expected_end) > 50
    # an answer that reached a worker after its case's next instant (partitions were moving)
    # finds that alert fired: it is retracted, so fired minus retracted is what the policy gives
    retracted = {(a, "fire") for a, kind in ledger.counts if kind == "retract"}
    fired = {key for key in ledger.counts if key[1] == "fire"}
    ended = {key for key in ledger.counts if key[1] == "end"}
    wrongly = sorted(expected_fire - (fired - retracted))
    case = wrongly[0][0].split(":respond")[0] if wrongly else ""
    assert fired - retracted == expected_fire, (
        wrongly[:5], sorted(fired - retracted - expected_fire)[:5],
        [a for a in ledger.kept if a["case_id"] == case],
        [(e.type, e.occurred_at.isoformat()) for e in events if e.case_id == case])
    assert not retracted & expected_fire  # only wrong firings were retracted
    assert ended == expected_end
    assert ledger.copies <= len(expected) // 10, ledger.duplicates
    rows = sink.client.query(f"SELECT alert_id FROM {db}.alerts FINAL WHERE NOT retracted").result_rows
    assert {(r[0], "fire") for r in rows} == expected_fire
    rows = sink.client.query(f"SELECT alert_id FROM {db}.alert_ends FINAL").result_rows
    assert {(r[0], "end") for r in rows} == expected_end
