"""The sink against a real broker (Tansu) and real chDB: a crash between insert and commit,
rows ClickHouse refuses, and ClickHouse being unavailable — nothing lost, nothing doubled."""

from __future__ import annotations

import threading
import time

import orjson
import pytest
from clickhouse_connect.driver.exceptions import OperationalError

from civicflow.embedded import embedded_broker
from producers.kafka import EventProducer
from sinks.clickhouse import ClickHouseSink, connect
from sinks.migrate import migrate
from sinks.runner import SinkRunner
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


def test_crash_between_insert_and_commit_loses_and_doubles_nothing(broker, client):
    sink = fresh(client, "ct_crash")
    produce(broker, grid_events("crash", 200))
    first = SinkRunner(broker, sink, batch_rows=50, group_id="g-crash")

    def crash():
        raise RuntimeError("killed between insert and commit")
    first.before_commit = crash
    run_until(first, lambda: first.error is not None)
    assert isinstance(first.error, RuntimeError)
    inserted_before_crash = count(client, "SELECT count() FROM ct_crash.events")
    assert 0 < inserted_before_crash <= 200  # inserted, then killed before the commit
    second = SinkRunner(broker, sink, batch_rows=50, group_id="g-crash")
    # nothing was committed, so the restarted sink writes every row again ...
    assert run_until(second, lambda: second.stats.rows["events"] >= 200)
    assert second.stats.rows["events"] == 200
    # ... and what users read (FINAL) shows each event once
    assert count(client, "SELECT count() FROM ct_crash.events FINAL") == 200
    assert count(client, "SELECT uniqExact(event_id) FROM ct_crash.events FINAL") == 200


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


class FlakyClient:
    """Fails the first inserts as an unreachable server would, then behaves."""

    def __init__(self, client, failures):
        self._client = client
        self.failures = failures

    def raw_insert(self, *args, **kwargs):
        if self.failures:
            self.failures -= 1
            raise OperationalError("connection refused (simulated ClickHouse outage)")
        return self._client.raw_insert(*args, **kwargs)

    def __getattr__(self, name):
        return getattr(self._client, name)


def test_clickhouse_outage_pauses_the_sink_and_loses_nothing(broker, client):
    fresh(client, "ct_outage")
    flaky = FlakyClient(client, failures=3)
    sink = ClickHouseSink(flaky, "ct_outage")  # type: ignore[arg-type]
    produce(broker, grid_events("outage", 30))
    runner = SinkRunner(broker, sink, group_id="g-outage")
    mine = "SELECT count() FROM ct_outage.events {} WHERE event_id LIKE 'outage-%'"
    landed = run_until(runner, lambda: count(client, mine.format("FINAL")) == 30)
    assert landed, runner.error
    assert runner.stats.failures == 3 and runner.stats.healthy
    assert count(client, mine.format("")) == 30  # retried batches were not written twice
