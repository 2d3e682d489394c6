"""A simulated month through the embedded stack: replays are repeatable, match the pure
reduction, and survive a killed worker without losing or duplicating an alert."""

from __future__ import annotations

import signal
import time
from datetime import UTC, date

import pytest

from civicflow.pipeline import broker_for, read_feeds, replay, sink_thread, worker_process
from civicflow.settings import Settings
from producers.kafka import EventProducer
from producers.simulator import simulate_grid, write_lines
from schemas.topics import EVENT_TOPICS
from sinks.clickhouse import ClickHouseSink, connect
from sinks.migrate import migrate
from streams.cases import reduce_case
from streams.whatif import group_by_case

pytestmark = pytest.mark.integration
ALERT_COLUMNS = "alert_id, fires_at, due_at, retracted"


@pytest.fixture(scope="module")
def month_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("sim") / "grid.jsonl"
    write_lines(str(path), simulate_grid(seed=11, start=date(2026, 9, 21), days=30,
                                         cases_per_day=10, districts=2))
    return path


def predicted_alerts(events, policy, calendar, as_of):
    rows = []
    for case_events in group_by_case(events).values():
        for p in reduce_case(case_events, policy, calendar).fired(as_of):
            rows.append((p.alert_id, p.fires_at.astimezone(UTC).replace(tzinfo=None),
                         p.due_at.astimezone(UTC).replace(tzinfo=None), False))
    return sorted(rows)


def landed_alerts(client, db, columns=ALERT_COLUMNS):
    return [tuple(r) for r in client.query(
        f"SELECT {columns} FROM {db}.alerts FINAL ORDER BY alert_id").result_rows]


def test_two_replays_are_identical_and_match_the_pure_reduction(month_file, chdb_var, policy, calendar):
    runs = []
    for db in ("it_month_a", "it_month_b"):
        settings = Settings(var_dir=chdb_var, partitions=3, database=db)
        result, sink = replay(settings, [("jn-grid", month_file)], None, lambda _m: None, timeout=300)
        runs.append((result, sink.client, db))
    (result, client, db_a), (_, _, db_b) = runs
    full = "alert_id, case_id, level, fires_at, due_at, emitted_at, retracted"
    first, second = landed_alerts(client, db_a, full), landed_alerts(client, db_b, full)
    assert first == second and len(first) > 50
    cases = "SELECT * EXCEPT version FROM {db}.cases FINAL ORDER BY case_id"
    assert (client.query(cases.format(db=db_a)).result_rows
            == client.query(cases.format(db=db_b)).result_rows)
    assert landed_alerts(client, db_a) == predicted_alerts(result.events, policy, calendar,
                                                           result.as_of)


def test_killed_worker_loses_and_duplicates_no_alert(month_file, chdb_var, policy, calendar):
    db = "it_month_kill"
    settings = Settings(var_dir=chdb_var, partitions=3, database=db, worker_batch=200)
    events, _, _ = read_feeds([("jn-grid", month_file)])
    as_of = events[-1].occurred_at
    sink = ClickHouseSink(connect(settings.clickhouse_dsn()), db)
    migrate(sink.client, db)
    with broker_for(settings) as bootstrap, sink_thread(settings, bootstrap, sink) as runner:
        producer = EventProducer(bootstrap)
        for event in events:
            producer.send_event(event)
        producer.send_control(EVENT_TOPICS[events[0].source], range(3),
                              {"run": "kill", "clock": as_of.isoformat(), "final": True})
        producer.flush()
        del producer
        with worker_process(settings, bootstrap, "replay") as first:
            deadline = time.monotonic() + 120
            while runner.stats.rows.get("alerts", 0) < 20 and time.monotonic() < deadline:
                time.sleep(0.05)
            assert runner.stats.rows.get("alerts", 0) >= 20, "the first worker produced nothing"
            first.send_signal(signal.SIGKILL)
            first.wait(10)
        assert runner.landed("kill") < 9, "the first worker finished before it was killed"
        with worker_process(settings, bootstrap, "replay"):
            deadline = time.monotonic() + 180
            while runner.landed("kill") < 9 and time.monotonic() < deadline:
                time.sleep(0.1)
            assert runner.landed("kill") == 9
    got = landed_alerts(sink.client, db)
    assert len(got) == len({row[0] for row in got})
    assert got == predicted_alerts(events, policy, calendar, as_of)
