"""End records of alerts.sla land in `alert_ends` and leave the `alerts` row as fired; the
`active_alerts` view (督办) lists what is active — through the real sink loop, Tansu and chDB."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta

import pytest

from civicflow.embedded import embedded_broker
from producers.kafka import EventProducer
from schemas.topics import ALERTS_TOPIC
from sinks.clickhouse import ClickHouseSink, connect, table_for
from sinks.migrate import migrate
from sinks.runner import SinkRunner
from tests.alert_records import end, fire, retract

pytestmark = pytest.mark.component
T0 = datetime(2026, 10, 3, 16, 0, tzinfo=UTC)


def test_ends_do_not_overwrite_what_fired(tmp_path, chdb_var):
    client = connect(f"chdb://{(chdb_var / 'clickhouse').resolve()}")
    client.command("DROP DATABASE IF EXISTS ct_alert_ends")
    migrate(client, "ct_alert_ends")
    sink = ClickHouseSink(client, "ct_alert_ends")
    red_a = fire("grid:jn-grid:A", "red", T0, due_at=T0)
    yellow_b = fire("grid:jn-grid:B", "yellow", T0, due_at=T0 + timedelta(hours=9))
    red_c = fire("grid:jn-grid:C", "red", T0)
    red_d = fire("grid:jn-grid:D", "red", T0)
    red_e = fire("grid:jn-grid:E", "red", T0)
    records = [
        red_a, end(red_a, T0 + timedelta(hours=2)),  # met two hours late
        yellow_b,  # still active
        red_c, retract(red_c, T0 + timedelta(minutes=5)),  # a late event proved it wrong
        red_d, end(red_d, T0, "cancelled", emitted_at=T0),  # ended by the same replay clock
        red_e, end(red_e, T0 + timedelta(hours=1), "restarted"),
        red_e.model_copy(update={"emitted_at": T0 + timedelta(hours=3)}),  # fired again later
        end(red_a, T0 + timedelta(hours=2)),  # delivered twice
    ]
    with embedded_broker(tmp_path, 2) as bootstrap:
        producer = EventProducer(bootstrap)
        for record in records:
            producer.send(ALERTS_TOPIC, record.case_id.encode(), record.to_json())
        producer.flush()
        del producer
        runner = SinkRunner(bootstrap, sink, batch_rows=3, group_id="g-alert-ends")
        thread = threading.Thread(target=runner.run, daemon=True)
        thread.start()
        deadline = time.monotonic() + 60
        while sum(runner.stats.rows.values()) < len(records) and time.monotonic() < deadline:
            time.sleep(0.1)
        runner.stop_event.set()
        thread.join(20)
    assert runner.error is None
    assert dict(runner.stats.rows) == {"alerts": 7, "alert_ends": 4}
    rows = client.query("SELECT case_id, level, fires_at, retracted FROM ct_alert_ends.alerts FINAL "
                        "ORDER BY case_id").result_rows
    naive = T0.replace(tzinfo=None)
    assert rows == [("grid:jn-grid:A", "red", naive, False), ("grid:jn-grid:B", "yellow", naive, False),
                    ("grid:jn-grid:C", "red", naive, True), ("grid:jn-grid:D", "red", naive, False),
                    ("grid:jn-grid:E", "red", naive, False)]
    ends = client.query("SELECT case_id, end_reason, ended_at, unit, district FROM "
                        "ct_alert_ends.alert_ends FINAL ORDER BY case_id").result_rows
    assert ends == [("grid:jn-grid:A", "met", naive + timedelta(hours=2), "370102001-wg", "370102"),
                    ("grid:jn-grid:D", "cancelled", naive, "370102001-wg", "370102"),
                    ("grid:jn-grid:E", "restarted", naive + timedelta(hours=1), "370102001-wg", "370102")]
    active = client.query("SELECT case_id, level FROM ct_alert_ends.active_alerts ORDER BY case_id").result_rows
    assert active == [("grid:jn-grid:B", "yellow"), ("grid:jn-grid:E", "red")]


def test_routing_by_end_reason():
    red = fire("grid:jn-grid:A", "red", T0)
    assert table_for(ALERTS_TOPIC, red.to_json()) == "alerts"
    assert table_for(ALERTS_TOPIC, retract(red, T0).to_json()) == "alerts"
    assert table_for(ALERTS_TOPIC, end(red, T0).to_json()) == "alert_ends"
    # a category text quoting the key is escaped inside its string: no false end
    tricky = red.model_copy(update={"category": 'other:"end_reason":"met"'})
    assert table_for(ALERTS_TOPIC, tricky.to_json()) == "alerts"
    assert table_for("events.grid", b'{"end_reason":"met"}') == "events"
