"""The embedded broker restarted during an ingest. It keeps topics in memory only: what it held
is gone, and what the sink had not yet written to ClickHouse with it. Here the ingest is paused
(SIGSTOP) as soon as its first events are on the broker (most are still in the producer's queue)
and until the sink has written everything the broker acknowledged; then the broker stops, the
ingest goes on while it is down, and the broker comes back empty. The producer meets a broker that
does not know it: its accounting line must count exactly the events that did not reach Kafka
(every other one is in ClickHouse) and it exits non-zero with one line saying what to
do; running the same import again completes the data, each event once in what users read
(FINAL). At-least-once leaves its trace in the raw rows: the re-run sends every event again, so
each event the first run delivered is there twice until ClickHouse merges the parts."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from datetime import date

import pytest
from confluent_kafka import Consumer, TopicPartition

from civicflow.pipeline import sink_thread
from civicflow.settings import Settings
from producers.simulator import simulate_grid, write_lines
from sinks.clickhouse import ClickHouseSink, connect
from sinks.migrate import migrate
from tests.accounting import freeze_merges
from tests.stack import RestartableBroker, settle, wait_for_progress

pytestmark = pytest.mark.integration


def ingest(bootstrap: str, feed, var_dir) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CIVICFLOW_")}
    env.update({"CIVICFLOW_VAR_DIR": str(var_dir), "CIVICFLOW_DELIVERY_TIMEOUT_SECONDS": "10",
                "CIVICFLOW_PARTITIONS": "2"})
    return subprocess.Popen([sys.executable, "-m", "civicflow", "ingest", "--bootstrap", bootstrap,
                             "--format", "jn-grid", str(feed)], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def on_broker(probe: Consumer) -> int:
    """Events on the broker: the sum of events.grid's partition ends as Tansu reports them."""
    try:
        return sum(max(0, probe.get_watermark_offsets(TopicPartition("events.grid", p),
                                                      timeout=5)[1]) for p in range(2))
    except Exception:  # noqa: BLE001 - not there yet
        return 0


def test_broker_restarted_during_an_ingest(chdb_var, tmp_path):
    feed = tmp_path / "grid.jsonl"
    write_lines(str(feed), simulate_grid(seed=5, start=date(2026, 9, 1), days=20, cases_per_day=150,
                                         districts=3, faults=False))
    sent = sum(1 for line in feed.read_bytes().splitlines() if line.strip())
    db = "it_broker_restart"
    settings = Settings(var_dir=tmp_path, partitions=2, database=db,
                        clickhouse=f"chdb://{(chdb_var / 'clickhouse').resolve()}",
                        sink_batch_seconds=0.2)
    client = connect(settings.clickhouse_dsn())
    client.command(f"DROP DATABASE IF EXISTS {db}")
    migrate(client, db)
    freeze_merges(client, db)
    sink = ClickHouseSink(client, db)

    def distinct() -> int:
        return client.query(f"SELECT uniqExact(event_id) FROM {db}.events").result_rows[0][0]

    broker = RestartableBroker(tmp_path)
    broker.start()
    try:
        with sink_thread(settings, broker.bootstrap, sink) as runner:
            probe = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "restart-probe"})
            first = ingest(broker.bootstrap, feed, tmp_path)
            # paused at its first events on the broker (it reads and sorts the whole file before
            # it sends, then queues faster than the broker acknowledges)
            wait_for_progress(lambda: on_broker(probe) > 0, lambda: first.poll(),
                              stall_seconds=120, timeout=300, what="the first events of the import",
                              poll=0.01)
            first.send_signal(signal.SIGSTOP)
            probe.close()
            # the sink writes everything the broker acknowledged before it goes
            settle(lambda: runner.stats.rows.get("events", 0), 3)
            before = distinct()
            broker.stop()
            first.send_signal(signal.SIGCONT)
            time.sleep(1)  # the ingest meets the broker gone
            broker.start()
            out, err = first.communicate(timeout=180)
            (tmp_path / "first-ingest.err").write_text(err)
            accounting = re.search(r"not delivered to Kafka: (\d+) events, (\d+) dead letters(.*)",
                                   out)
            assert accounting is not None, out + err[-2000:]
            failed = int(accounting.group(1))
            assert (accounting.group(2), accounting.group(3)) == ("0", "")  # no rejects in this feed
            assert first.returncode == 2
            said = [line for line in err.splitlines() if line.startswith("civicflow: ")]
            assert len(said) == 1 and "ingest the same files again" in said[0], err[-2000:]
            assert "Traceback" not in err
            settle(lambda: runner.stats.rows.get("events", 0), 5)
            after_first = distinct()
            written = runner.stats.rows.get("events", 0)
            second = ingest(broker.bootstrap, feed, tmp_path)
            out2, err2 = second.communicate(timeout=300)
            assert second.returncode == 0, err2[-2000:]
            wait_for_progress(lambda: runner.stats.rows.get("events", 0) >= written + sent,
                              lambda: runner.stats.rows.get("events", 0), stall_seconds=60,
                              timeout=180, what="the re-run")
            settle(lambda: runner.stats.rows.get("events", 0), 3)  # and nothing more comes
            assert runner.error is None
        raw, unique = client.query(f"SELECT count(), uniqExact(event_id) FROM {db}.events").result_rows[0]
        final = client.query(f"SELECT count() FROM {db}.events FINAL").result_rows[0][0]
    finally:
        broker.stop()
    print(f"{sent} events; {before} in ClickHouse at the restart; first run reported {failed} not "
          f"delivered, {after_first} in ClickHouse after it; re-run: {unique} distinct, {final} "
          f"FINAL, {raw} raw ({raw - unique} copies of events sent twice)")
    assert 0 < failed < sent
    assert after_first == sent - failed  # exactly what the producer said it could not deliver
    assert unique == final == sent  # the re-run completed the data, each event once
    assert raw == sent + after_first  # the copies: the events the first run had delivered
