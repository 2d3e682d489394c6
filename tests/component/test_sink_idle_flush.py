"""The live sink's batching against a real broker (Tansu) and real chDB: a batch is written when
the sink has nothing more queued (not on a timer), records that arrive while a batch is being
written go together into the next one, control records read together close one batch, not
one each, and while ClickHouse fails the sink waits instead of reading ahead. How fast alerts
land is measured in bench/ (`python -m bench worker-live`)."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime

import orjson
import pytest

from civicflow.embedded import embedded_broker
from producers.kafka import EventProducer
from schemas.errors import SinkUnavailable
from schemas.topics import ALERTS_TOPIC
from sinks.clickhouse import ClickHouseSink, connect
from sinks.migrate import migrate
from sinks.runner import SinkRunner

pytestmark = pytest.mark.component
# the replay timer, long enough that a row landing within the test did not wait for it
TIMER_SECONDS = 600.0
PARTITIONS = 2


@pytest.fixture
def broker(tmp_path):
    with embedded_broker(tmp_path, PARTITIONS) as bootstrap:
        yield bootstrap


@pytest.fixture(scope="module")
def client(chdb_var):
    return connect(f"chdb://{(chdb_var / 'clickhouse').resolve()}")


def fresh(client, name: str) -> ClickHouseSink:
    client.command(f"DROP DATABASE IF EXISTS {name}")
    migrate(client, name)
    return ClickHouseSink(client, name)


def live_runner(bootstrap: str, sink: ClickHouseSink, group: str) -> SinkRunner:
    return SinkRunner(bootstrap, sink, batch_seconds=TIMER_SECONDS, idle_flush=True,
                      linger_seconds=0.02, fetch_wait_ms=50, group_id=group)


def alert(i: int, sent: datetime) -> bytes:
    at = sent.isoformat()
    return orjson.dumps({"alert_id": f"property:wuye:A{i}:respond:0:yellow",
                         "case_id": f"property:wuye:A{i}", "source": "property",
                         "category": "物业服务", "milestone": "respond", "cycle": 0,
                         "level": "yellow", "due_at": at, "fires_at": at, "emitted_at": at,
                         "retracted": False})


def send_alerts(producer: EventProducer, numbers: range) -> None:
    now = datetime.now(UTC)
    for i in numbers:
        producer.send(ALERTS_TOPIC, f"property:wuye:A{i}".encode(), alert(i, now),
                      partition=i % PARTITIONS)
    assert producer.flush() == 0


def wait_for(condition, what: str, runner: SinkRunner, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert runner.error is None, f"the sink stopped: {runner.error!r}"
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def count(client, sql: str) -> int:
    return client.query(sql).result_rows[0][0]


def test_a_lone_alert_is_written_once_the_sink_has_nothing_more_queued(broker, client):
    """One alert, far below any batch size: it lands in one batch of its own, long before the
    timer a replay batch waits for (landing time in ClickHouse against the time it was sent)."""
    sink = fresh(client, "ct_idle_lone")
    runner = live_runner(broker, sink, "g-idle-lone")
    thread = threading.Thread(target=runner.run, daemon=True)
    thread.start()
    try:
        producer = EventProducer(broker)
        send_alerts(producer, range(1))
        del producer
        wait_for(lambda: runner.stats.rows["alerts"] == 1, "the alert to land", runner)
    finally:
        runner.stop_event.set()
        thread.join(30)
    (rows, waited), = client.query(
        "SELECT count(), max(dateDiff('millisecond', emitted_at, landed_at)) / 1000 "
        "FROM ct_idle_lone.alerts").result_rows
    assert rows == 1
    assert 0 <= waited < TIMER_SECONDS
    assert runner.stats.batches == 1
    assert count(client, "SELECT count() FROM ct_idle_lone.sink_batches") == 1


def test_what_arrives_while_a_batch_is_written_goes_into_one_next_batch(broker, client):
    """The writer is held inside the first batch (a lone alert) while three bursts of alerts
    and the control records of both partitions arrive. The sink reads them all meanwhile (it
    does not stop reading to wait for the writer, nor write one batch per control record), and
    once the writer is free, writes them as one batch: one insert, so one landing time."""
    sink = fresh(client, "ct_idle_group")
    holding, release = threading.Event(), threading.Event()
    write = sink.write

    def held_write(blocks, written, token=None):
        if not holding.is_set():
            holding.set()
            release.wait(60)
        write(blocks, written, token)

    sink.write = held_write  # type: ignore[method-assign]
    runner = live_runner(broker, sink, "g-idle-group")
    thread = threading.Thread(target=runner.run, daemon=True)
    thread.start()
    try:
        producer = EventProducer(broker)
        send_alerts(producer, range(1))
        wait_for(holding.is_set, "the first batch to be written", runner)
        send_alerts(producer, range(1, 101))
        producer.send_control(ALERTS_TOPIC, range(PARTITIONS), {"run": "r1", "clock": None})
        send_alerts(producer, range(101, 201))
        send_alerts(producer, range(201, 301))
        del producer
        # the rows after the control records on both partitions: those were read too
        wait_for(lambda: sink.pending == 300, "the sink to read every burst", runner)
        assert runner.stats.batches == 0
        release.set()
        wait_for(lambda: runner.landed("r1") == PARTITIONS, "the control records to land", runner)
        wait_for(lambda: runner.stats.rows["alerts"] == 301, "every alert to land", runner)
    finally:
        release.set()
        runner.stop_event.set()
        thread.join(30)
    assert runner.stats.batches == 2
    assert count(client, "SELECT count() FROM ct_idle_group.sink_batches") == 2
    rows, distinct, inserts = client.query(
        "SELECT count(), uniqExact(alert_id), uniqExact(landed_at) FROM ct_idle_group.alerts "
        "WHERE alert_id != 'property:wuye:A0:respond:0:yellow'").result_rows[0]
    assert (rows, distinct, inserts) == (300, 300, 1)
    assert count(client, "SELECT count() FROM ct_idle_group.control_markers "
                         "WHERE run_id = 'r1'") == PARTITIONS


def test_while_clickhouse_fails_the_sink_waits_instead_of_reading_ahead(broker, client):
    """The first batch's insert fails (ClickHouse unavailable) and is retried; alerts sent
    meanwhile stay on the broker, not in the sink's memory; once ClickHouse is back, every
    alert lands once."""
    sink = fresh(client, "ct_idle_outage")
    failing = threading.Event()
    failing.set()
    write = sink.write

    def unavailable_write(blocks, written, token=None):
        if failing.is_set():
            raise SinkUnavailable("ClickHouse is unavailable (test)")
        write(blocks, written, token)

    sink.write = unavailable_write  # type: ignore[method-assign]
    runner = SinkRunner(broker, sink, batch_seconds=TIMER_SECONDS, idle_flush=True,
                        linger_seconds=0.02, fetch_wait_ms=50, group_id="g-idle-outage",
                        retry_max_seconds=0.5)
    thread = threading.Thread(target=runner.run, daemon=True)
    thread.start()
    try:
        producer = EventProducer(broker)
        send_alerts(producer, range(1))
        # a second failure: the read loop has seen the first and waits for the writer
        wait_for(lambda: runner.stats.failures >= 2, "the insert to be retried", runner)
        send_alerts(producer, range(1, 101))
        del producer
        time.sleep(1.0)  # many reads' worth (20 ms each) for a sink that would read ahead
        assert sink.pending == 0
        assert runner.stats.healthy is False
        failing.clear()
        wait_for(lambda: runner.stats.rows["alerts"] == 101, "every alert to land", runner)
    finally:
        failing.clear()
        runner.stop_event.set()
        thread.join(30)
    assert count(client, "SELECT count() FROM ct_idle_outage.alerts") == 101
    assert count(client, "SELECT uniqExact(alert_id) FROM ct_idle_outage.alerts") == 101
    assert runner.stats.healthy is True
