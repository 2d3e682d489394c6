"""`civicflow sink` as its own process under real faults: SIGKILLed in the middle of a batch after
earlier batches were committed, and a ClickHouse over HTTP that answers 503, then times out
(once after doing the insert), then recovers. Each ends with every row written exactly once:
raw rows (merges stopped) and FINAL."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
import urllib.request
from datetime import timedelta

import orjson
import pytest
from confluent_kafka import Consumer, TopicPartition

from civicflow.embedded import embedded_broker, free_port, stop_process
from producers.kafka import EventProducer
from sinks.clickhouse import ClickHouseSink, connect
from sinks.migrate import migrate
from sinks.runner import RECOVERY_TIMEOUT, SINK_GROUP
from tests.accounting import freeze_merges, query_other_process
from tests.conftest import cn, ev
from tests.fake_clickhouse import FakeClickHouse

pytestmark = pytest.mark.integration
TOPIC_OF_TABLE = {"events": "events.grid", "cases": "cases.snapshots", "alerts": "alerts.sla"}
LAST_COMMIT = "civicflow_sink_last_success_timestamp_seconds"


def scrape(port: int) -> dict[str, float]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as response:
            text = response.read().decode()
    except OSError:
        return {}
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            out[name] = float(value)
    return out


def snapshot(i: int) -> bytes:
    return orjson.dumps({"case_id": f"grid:jn-grid:K{i}", "source": "grid", "system": "jn-grid",
                         "category": "G07.01", "urgency": "normal", "status": "created",
                         "created_at": cn(2026, 10, 12, 9).isoformat(), "reopen_count": 0,
                         "escalation_level": 0, "cycle": 0, "version": 1})


def alert(i: int) -> bytes:
    at = cn(2026, 10, 13, 9).isoformat()
    return orjson.dumps({"alert_id": f"grid:jn-grid:K{i}:respond:0:yellow",
                         "case_id": f"grid:jn-grid:K{i}", "source": "grid", "category": "G07.01",
                         "milestone": "respond", "cycle": 0, "level": "yellow", "due_at": at,
                         "fires_at": at, "emitted_at": at, "retracted": False})


def produce_rows(bootstrap: str, first: int, count: int) -> None:
    """`count` records on each of events.grid, cases.snapshots and alerts.sla: a batch of the
    sink then writes three tables, one after the other."""
    producer = EventProducer(bootstrap)
    for i in range(first, first + count):
        case = f"grid:jn-grid:K{i}"
        producer.send_event(ev(f"k{i}", "created", cn(2026, 10, 12, 9) + timedelta(seconds=i),
                               case=case))
        producer.send("cases.snapshots", case.encode(), snapshot(i))
        producer.send("alerts.sla", case.encode(), alert(i))
    producer.flush()
    del producer


def committed(bootstrap: str) -> dict[str, int]:
    """The sink's committed offsets, summed per topic."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": SINK_GROUP})
    try:
        tps = [TopicPartition(t, p) for t in TOPIC_OF_TABLE.values() for p in range(2)]
        out = dict.fromkeys(TOPIC_OF_TABLE.values(), 0)
        for tp in consumer.committed(tps, timeout=10):
            out[tp.topic] += max(0, tp.offset)
        return out
    finally:
        consumer.close()


# `civicflow sink` itself, with its commit held at the n-th batch: the process writes a file and
# sleeps after ClickHouse accepted that batch and before its offsets are committed, so the test
# kills it exactly there (a random kill lands in that window only now and then)
HOLD_COMMIT = """
import os, pathlib, sys, time
from sinks import runner
commit, calls = runner.SinkRunner._commit, []
def held(self, batch):
    calls.append(1)
    if len(calls) == int(os.environ["HOLD_AT"]):
        pathlib.Path(os.environ["HOLD_FILE"]).write_text(repr(batch.offsets))
        time.sleep(3600)
    commit(self, batch)
runner.SinkRunner._commit = held
from civicflow.cli import main
raise SystemExit(main(["sink"]))
"""


def start_sink(bootstrap: str, dsn: str, db: str, port: int, log_path, hold: tuple[int, str] | None
               = None, **extra: str) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CIVICFLOW_")}
    env.update({"CIVICFLOW_BOOTSTRAP": bootstrap, "CIVICFLOW_CLICKHOUSE": dsn,
                "CIVICFLOW_DATABASE": db, "CIVICFLOW_METRICS_PORT": str(port),
                "CIVICFLOW_PARTITIONS": "2", **extra})
    command = [sys.executable, "-m", "civicflow", "sink"]
    if hold is not None:
        env.update({"HOLD_AT": str(hold[0]), "HOLD_FILE": hold[1]})
        command = [sys.executable, "-c", HOLD_COMMIT]
    with open(log_path, "ab") as log:
        return subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL)


def wait_for(condition, timeout: float, what: str, poll: float = 0.05) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(poll)


def test_sink_killed_mid_batch_writes_every_row_once(tmp_path):
    """SIGKILL while the sink works through a backlog in batches of three tables, after earlier
    batches were committed: twice at a random moment, then once exactly between its second
    batch's insert and that batch's commit (rows in ClickHouse the committed offsets do not
    cover). Restarted each time; at the end every table holds each record once, raw and FINAL."""
    dsn = f"chdb://{tmp_path / 'clickhouse'}"
    db = "it_sink_kill"
    rows = 0
    rng = random.Random(13)
    with embedded_broker(tmp_path, 2) as bootstrap:
        produce_rows(bootstrap, 0, 2000)
        rows = 2000
        # migrations and stopped merges before the sink starts: raw counts show every copy
        code = ("import sys; from sinks.clickhouse import connect; from sinks.migrate import migrate;"
                "from tests.accounting import freeze_merges; c = connect(sys.argv[1]);"
                "migrate(c, sys.argv[2]); freeze_merges(c, sys.argv[2])")
        subprocess.run([sys.executable, "-c", code, dsn, db], check=True, timeout=120)
        # small batches and a short random wait: on an idle machine the sink writes a 20,000-row
        # backlog in well under a second, so a longer wait mostly kills a sink with nothing to do
        extra = {"CIVICFLOW_SINK_BATCH_ROWS": "2000", "CIVICFLOW_SINK_BATCH_SECONDS": "0.05"}
        doubt: dict[str, int] = {}
        for attempt in range(3):
            produce_rows(bootstrap, rows, 20_000)
            rows += 20_000
            port = free_port()
            held = tmp_path / f"held-{attempt}"
            # the second commit: a sink that starts by recovering an unfinished batch commits
            # it first, then everything it read meanwhile as one batch, so a later commit may
            # never come (CI waited 120 s for a 4th)
            hold = (2, str(held)) if attempt == 2 else None
            sink = start_sink(bootstrap, dsn, db, port, tmp_path / "sink.log", hold, **extra)
            if hold is None:
                # earlier batches committed (the sink sets its last-success gauge right after a
                # commit), then a random moment in the middle of the backlog
                wait_for(lambda port=port, sink=sink: scrape(port).get(LAST_COMMIT, 0.0) > 0
                         or sink.poll() is not None, 120, "a first committed batch", poll=0.01)
                time.sleep(rng.uniform(0.0, 0.2))
            else:
                # a sink that starts by recovering an unfinished batch may wait for it up to
                # RECOVERY_TIMEOUT before its first commit
                wait_for(lambda held=held, sink=sink: held.exists() or sink.poll() is not None,
                         RECOVERY_TIMEOUT + 60, f"the sink to hold the commit of its batch {hold[0]}")
            assert sink.poll() is None, (tmp_path / "sink.log").read_text()[-2000:]
            sink.send_signal(signal.SIGKILL)
            sink.wait(10)
            offsets = committed(bootstrap)
            raw = dict(query_other_process(dsn, " UNION ALL ".join(
                f"SELECT '{table}', count() FROM {db}.{table}" for table in TOPIC_OF_TABLE)))
            doubt = {t: raw[t] - offsets[TOPIC_OF_TABLE[t]] for t in TOPIC_OF_TABLE
                     if raw[t] > offsets[TOPIC_OF_TABLE[t]]}
            print(f"kill {attempt + 1}{' (held)' if hold else ''}: committed {offsets}, "
                  f"in ClickHouse {raw}, written and not committed {doubt or 'none'}")
            assert all(raw[t] >= offsets[TOPIC_OF_TABLE[t]] for t in TOPIC_OF_TABLE), \
                "committed offsets ahead of the rows in ClickHouse: rows lost"
        assert doubt, "the held batch was written, yet the committed offsets cover every row"
        port = free_port()
        sink = start_sink(bootstrap, dsn, db, port, tmp_path / "sink.log", **extra)
        try:
            wait_for(lambda: min(committed(bootstrap).values()) >= rows or sink.poll() is not None,
                     180, "the restarted sink to catch up", poll=0.5)
        finally:
            stop_process(sink)
    counts = query_other_process(dsn, " UNION ALL ".join(
        f"SELECT '{t}', count(), uniqExact({key}), (SELECT count() FROM {db}.{t} FINAL) "
        f"FROM {db}.{t}" for t, key in (("events", "event_id"), ("cases", "case_id"),
                                         ("alerts", "alert_id"))))
    assert sorted(map(tuple, counts)) == [("alerts", rows, rows, rows), ("cases", rows, rows, rows),
                                          ("events", rows, rows, rows)]
    log = (tmp_path / "sink.log").read_text()
    assert "written but not committed" in log and "Traceback" not in log


def test_clickhouse_over_http_503_then_timeouts_then_back(chdb_var, tmp_path):
    """The sink talks HTTP to a server on 127.0.0.1 that answers 503, then does an insert and
    times out, then times out without doing anything, then recovers. The sink backs off (its
    failures counter grows, its health gauge reads 0), then catches up; the insert the server did
    while the client timed out is not written twice (same token)."""
    db = "it_http_outage"
    backend = connect(f"chdb://{(chdb_var / 'clickhouse').resolve()}")
    backend.command(f"DROP DATABASE IF EXISTS {db}")
    migrate(backend, db)
    freeze_merges(backend, db)
    sink_db = ClickHouseSink(backend, db)

    def landed(table: str = "events") -> int:
        return sink_db.client.query(f"SELECT count() FROM {db}.{table}").result_rows[0][0]

    port = free_port()
    with embedded_broker(tmp_path, 2) as bootstrap, FakeClickHouse(backend) as server:
        sink = start_sink(bootstrap, server.dsn(timeout=2), db, port, tmp_path / "sink.log",
                          CIVICFLOW_SINK_BATCH_SECONDS="0.1", CIVICFLOW_SINK_RETRY_MAX_SECONDS="1")
        try:
            produce_rows(bootstrap, 0, 200)
            wait_for(lambda: landed("alerts") == 200, 90, "the first rows", poll=0.2)
            assert scrape(port)["civicflow_sink_healthy"] == 1.0
            phases = {}
            for mode, wait_until in (("503", lambda: server.requests["503"] >= 3),
                                     ("hang_after", lambda: server.inserts["hang_after"] >= 2),
                                     ("hang", lambda: server.requests["hang"] >= 2)):
                server.set_mode(mode)
                if mode == "503":
                    produce_rows(bootstrap, 200, 300)
                wait_for(wait_until, 90, f"the sink to try during {mode}", poll=0.1)
                metrics = scrape(port)
                phases[mode] = (metrics["civicflow_sink_healthy"],
                                metrics["civicflow_sink_failures_total"])
            server.set_mode("proxy")
            wait_for(lambda: scrape(port).get("civicflow_sink_healthy") == 1.0
                     and landed("alerts") >= 500, 120, "the sink to catch up", poll=0.2)
            failures = scrape(port)["civicflow_sink_failures_total"]
        finally:
            sink.send_signal(signal.SIGTERM)
            sink.wait(30)
    print(f"health and failures at each phase: {phases}; failures in all {failures:.0f}; "
          f"requests {dict(server.requests)}, inserts {dict(server.inserts)}")
    assert phases["503"][0] == 0.0 and phases["503"][1] >= 3
    assert phases["hang_after"][0] == 0.0 and phases["hang_after"][1] > phases["503"][1]
    assert phases["hang"][0] == 0.0 and phases["hang"][1] > phases["hang_after"][1]
    for table, key in (("events", "event_id"), ("cases", "case_id"), ("alerts", "alert_id")):
        raw, distinct = backend.query(f"SELECT count(), uniqExact({key}) FROM {db}.{table}").result_rows[0]
        assert (table, raw, distinct) == (table, 500, 500)
    assert backend.query(f"SELECT count() FROM {db}.rejects").result_rows[0][0] == 0
    assert "Traceback" not in (tmp_path / "sink.log").read_text()
