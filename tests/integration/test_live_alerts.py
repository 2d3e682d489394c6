"""Live mode through the real worker: alerts fire on the wall clock at their exact instants and
land in ClickHouse (how fast they land is measured in bench/bench_worker.py, not asserted here)."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest

from civicflow.pipeline import broker_for, sink_thread, worker_process
from civicflow.settings import Settings
from producers.kafka import EventProducer
from schemas import Event
from sinks.clickhouse import ClickHouseSink, connect
from sinks.migrate import migrate
from tests.conftest import policy_text

pytestmark = pytest.mark.integration
# a property policy measured in seconds: respond 0.1 min = 6 s, so yellow at 4.8 s, red at 6 s
FAST_POLICY = policy_text("""
[property.urgent]
respond = "0.1m"
resolve = "10m"
feedback = "1wd"
""")


def test_live_alerts_fire_at_their_instants_on_the_wall_clock(tmp_path, chdb_var):
    policy = tmp_path / "fast.toml"
    policy.write_text(FAST_POLICY)
    db = "it_live"
    settings = Settings(var_dir=chdb_var, partitions=2, database=db, policy=policy,
                        clock_report_seconds=1.0)
    sink = ClickHouseSink(connect(settings.clickhouse_dsn()), db)
    migrate(sink.client, db)
    with broker_for(settings) as bootstrap, \
            sink_thread(settings, bootstrap, sink, live=True) as runner, \
            worker_process(settings, bootstrap, "live"):
        producer = EventProducer(bootstrap)
        # warm-up: wait until the worker has joined and reports its clock
        warm = Event(event_id="w", case_id="property:wuye:WARM", source="property", system="wuye",
                     type="created", occurred_at=datetime.now(UTC) - timedelta(days=30),
                     urgency="normal")
        producer.send_event(warm)
        producer.flush()
        deadline = time.monotonic() + 90
        while runner.landed("live") == 0 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert runner.landed("live") > 0, "the live worker never reported its clock"
        created = datetime.now(UTC)
        producer.send_event(Event(event_id="c", case_id="property:wuye:LIVE", source="property",
                                  system="wuye", type="created", occurred_at=created,
                                  urgency="urgent"))
        producer.flush()
        del producer
        deadline = time.monotonic() + 30
        rows: list = []
        while time.monotonic() < deadline and len(rows) < 2:
            time.sleep(0.5)
            rows = sink.client.query(
                f"SELECT level, fires_at, emitted_at, landed_at FROM {db}.alerts FINAL "
                "WHERE case_id = 'property:wuye:LIVE' ORDER BY fires_at").result_rows
    assert [r[0] for r in rows[:2]] == ["yellow", "red"]
    for level, fires_at, emitted_at, landed_at in rows[:2]:
        expected = created + timedelta(seconds=4.8 if level == "yellow" else 6)
        assert abs(fires_at.replace(tzinfo=UTC) - expected) < timedelta(milliseconds=2)
        # never before its instant (the wall clock had passed it), landed after it was sent
        assert fires_at <= emitted_at <= landed_at
