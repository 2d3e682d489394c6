"""The sink against a real broker (Tansu) and real chDB: a stop between insert and commit,
rows ClickHouse refuses, and a table ClickHouse cannot find — nothing lost, nothing doubled
(raw rows counted with merges stopped, not only FINAL)."""

from __future__ import annotations

import threading
import time

import orjson
import pytest

from civicflow.embedded import embedded_broker
from producers.kafka import EventProducer
from sinks.clickhouse import ClickHouseSink, connect
from sinks.migrate import migrate
from sinks.runner import SinkRunner
from tests.accounting import freeze_merges
from tests.conftest import cn, ev

pytestmark = pytest.mark.component


@pytest.fixture(scope="module")
def broker(tmp_path_factory):
    with embedded_broker(tmp_path_factory.mktemp("sinkbroker"), 2) as bootstrap:
        yield bootstrap


@pytest.fixture(scope="module")
def client(chdb_var):
    return connect(f"chdb://{(chdb_var / 'clickhouse').resolve()}")


def fresh(client, name):
    client.command(f"DROP DATABASE IF EXISTS {name}")
    migrate(client, name)
    return ClickHouseSink(client, name)


def produce(bootstrap, events, raw_rows=()):
    producer = EventProducer(bootstrap)
    for event in events:
        producer.send_event(event)
    for row in raw_rows:
        producer.send("events.grid", b"bad", row)  # a row no adapter would send
    producer.flush()
    del producer


def run_until(runner, done, timeout=60):
    thread = threading.Thread(target=runner.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout
    while not done() and time.monotonic() < deadline and thread.is_alive():
        time.sleep(0.1)
    runner.stop_event.set()
    thread.join(20)
    return done()


def count(client, sql):
    return client.query(sql).result_rows[0][0]


def grid_events(prefix, n):
    return [ev(f"{prefix}-{i}", "created", cn(2026, 10, 12, 9, 0), case=f"grid:jn-grid:{prefix}{i}")
            for i in range(n)]


def test_sink_stopped_between_an_insert_and_its_commit_writes_each_row_once(broker, client):
    """Three waves of events written and committed; then a batch of the fourth written and not
    committed (the sink stops there). The restarted sink reads it again and ClickHouse keeps one
    copy: raw rows (merges stopped) equal the events sent."""
    sink = fresh(client, "ct_crash")
    freeze_merges(client, "ct_crash")
    first = SinkRunner(broker, sink, batch_rows=1, batch_seconds=0.1, group_id="g-crash")

    def stop_once_the_fourth_wave_is_written():
        if first.stats.rows["events"] > 150:
            raise RuntimeError("stopped between insert and commit")
    first.before_commit = stop_once_the_fourth_wave_is_written
    thread = threading.Thread(target=first.run, daemon=True)
    thread.start()
    for wave in range(4):  # each wave committed before the next is sent
        produce(broker, grid_events(f"crash{wave}", 50))
        deadline = time.monotonic() + 60
        while (first.stats.rows["events"] < 50 * (wave + 1) and first.error is None
               and time.monotonic() < deadline):
            time.sleep(0.05)
    thread.join(60)
    assert isinstance(first.error, RuntimeError)
    written = count(client, "SELECT count() FROM ct_crash.events")
    assert 150 < written <= 200  # a batch of the fourth wave written, not committed
    produce(broker, grid_events("crash4", 50))
    second = SinkRunner(broker, sink, batch_rows=1, group_id="g-crash")
    assert run_until(second, lambda: count(client, "SELECT count() FROM ct_crash.events FINAL") >= 250)
    assert second.error is None
    assert count(client, "SELECT count() FROM ct_crash.events") == 250  # raw: no copy
    assert count(client, "SELECT uniqExact(event_id) FROM ct_crash.events") == 250


def test_rows_clickhouse_refuses_become_dead_letters_with_the_reason(broker, client):
    sink = fresh(client, "ct_refused")
    bad = orjson.dumps({"event_id": "bad", "case_id": "grid:jn-grid:bad", "source": "grid",
                        "system": "jn-grid", "type": "created", "occurred_at": "not a time",
                        "category": "x", "urgency": "normal", "schema_version": 1})
    produce(broker, grid_events("ok", 20), [bad])
    runner = SinkRunner(broker, sink, group_id="g-refused")
    assert run_until(runner, lambda: count(client, "SELECT count() FROM ct_refused.rejects FINAL") == 1)
    assert count(client, "SELECT count() FROM ct_refused.events FINAL WHERE event_id LIKE 'ok-%'") == 20
    reason, raw = client.query("SELECT reason, raw FROM ct_refused.rejects FINAL").result_rows[0]
    assert "clickhouse refused the row for events" in reason and '"not a time"' in raw
    assert runner.stats.dead_lettered == 1
    assert count(client, "SELECT count() FROM ct_refused.events WHERE event_id LIKE 'ok-%'") == 20  # raw


def scrape(metrics):
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in metrics.collect() for s in family.samples}


def test_detached_table_pauses_the_sink_until_it_is_back_and_loses_nothing(broker, client):
    """A real ClickHouse error (UNKNOWN_TABLE while `events` is detached), not a stand-in: the
    sink retries with backoff, says so on its health gauge, dead-letters nothing, and writes
    every event once when the table is attached again."""
    from prometheus_client import CollectorRegistry

    from sinks.metrics import SinkMetrics

    sink = fresh(client, "ct_detach")
    freeze_merges(client, "ct_detach")
    registry = CollectorRegistry()
    runner = SinkRunner(broker, sink, batch_rows=1, batch_seconds=0.1, group_id="g-detach",
                        metrics=SinkMetrics(registry))
    thread = threading.Thread(target=runner.run, daemon=True)
    thread.start()
    mine = "SELECT count() FROM ct_detach.events WHERE event_id LIKE 'detach-%'"
    try:
        produce(broker, grid_events("detach-a", 30))
        deadline = time.monotonic() + 60
        while count(client, mine) < 30 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert count(client, mine) == 30 and runner.stats.healthy
        client.command("DETACH TABLE ct_detach.events")
        produce(broker, grid_events("detach-b", 40))
        deadline = time.monotonic() + 60
        while runner.stats.failures < 3 and time.monotonic() < deadline:
            time.sleep(0.1)
        health = registry.get_sample_value("civicflow_sink_healthy")
        failures = runner.stats.failures
        client.command("ATTACH TABLE ct_detach.events")
        deadline = time.monotonic() + 90
        while count(client, mine) < 70 and time.monotonic() < deadline:
            time.sleep(0.2)
        while not runner.stats.healthy and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        runner.stop_event.set()
        thread.join(30)
    assert failures >= 3 and health == 0.0  # backing off, and the gauge said so
    assert runner.error is None
    assert count(client, mine) == 70  # raw rows: every event once
    # none of them dead-lettered (the module's broker also holds the refused row of another test)
    assert count(client, "SELECT count() FROM ct_detach.rejects WHERE raw LIKE '%detach-%'") == 0
    assert registry.get_sample_value("civicflow_sink_healthy") == 1.0
    assert registry.get_sample_value("civicflow_sink_failures_total") == runner.stats.failures
