"""Sink rows/s into chDB next to a direct clickhouse-connect insert of the same rows, and the
三率 query over 10 M cases next to a plain scan of the same table (same run, same chDB)."""

from __future__ import annotations

import atexit
import shutil
import tempfile
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path

from clickhouse_connect.driver.client import Client
from confluent_kafka import Producer

from bench.common import Result, best_of
from civicflow.embedded import embedded_broker
from producers.kafka import producer_config
from schemas import Event
from sinks.clickhouse import ClickHouseSink, connect
from sinks.maintenance import optimize
from sinks.migrate import migrate
from sinks.runner import SinkRunner


@cache
def bench_client() -> Client:
    """One chDB for every benchmark of the process (chDB allows one data path per process),
    removed at exit."""
    folder = tempfile.mkdtemp(prefix="civicflow-bench-")
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    return connect(f"chdb://{Path(folder) / 'ch'}")


def run_sink(rows: int = 600_000, batch_rows: int = 200_000) -> list[Result]:
    start = datetime(2026, 10, 1, tzinfo=UTC)
    payloads = [
        Event(event_id=f"e{i}", case_id=f"grid:jn-grid:{i // 5}", source="grid", system="jn-grid",
              type="created", occurred_at=start + timedelta(seconds=i), district="370102",
              street="370102001", category="G07.01", unit=f"U{i % 40}").to_json()
        for i in range(rows)
    ]
    client = bench_client()
    with tempfile.TemporaryDirectory() as tmp:
        migrate(client, "direct")
        migrate(client, "viasink")
        direct = ClickHouseSink(client, "direct")
        began = time.perf_counter()
        for i in range(0, rows, batch_rows):
            direct.insert_json("events", payloads[i:i + batch_rows])
        direct_rate = rows / (time.perf_counter() - began)

        with embedded_broker(Path(tmp), 4) as bootstrap:
            producer = Producer(producer_config(bootstrap))
            for i, value in enumerate(payloads):
                while True:
                    try:
                        producer.produce("events.grid", value, str(i // 5).encode())
                        break
                    except BufferError:
                        producer.poll(0.05)
            producer.flush(120)
            del producer
            runner = SinkRunner(bootstrap, ClickHouseSink(client, "viasink"),
                                batch_rows=batch_rows)
            thread = threading.Thread(target=runner.run, daemon=True)
            began = time.perf_counter()
            thread.start()
            while runner.stats.rows.get("events", 0) < rows and thread.is_alive():
                time.sleep(0.02)
            if runner.stats.rows.get("events", 0) < rows:
                raise RuntimeError(f"the sink runner stopped after {runner.stats.rows.get('events', 0):,} "
                                   f"of {rows:,} rows: {runner.error!r}")
            sink_rate = rows / (time.perf_counter() - began)
            runner.stop_event.set()
            thread.join(30)

    return [Result(f"sink (Kafka -> batches of {batch_rows:,} -> chDB, {rows:,} events)", "rows/s",
                   sink_rate, "direct clickhouse-connect insert of the same rows, same batches",
                   direct_rate,
                   ">= 100,000 rows/s and >= 0.5 of direct")]


RATES = ("SELECT district, sum(responded_on_time) / sum(respond_due_count), "
         "sum(resolved_on_time) / sum(resolve_due_count), sum(satisfied) / sum(surveyed) "
         "FROM big.{view} GROUP BY district")


def run_rates(cases: int = 10_000_000) -> list[Result]:
    """三率 per district over a year of cases, as inserted and after `civicflow db optimize`."""
    client = bench_client()
    migrate(client, "big")
    client.command(
        f"INSERT INTO big.cases (case_id, source, system, district, street, category, urgency, "
        f"unit, status, created_at, responded_at, resolved_at, respond_due, resolve_due, "
        f"satisfaction, reopen_count, escalation_level, cycle, version) "
        f"SELECT concat('grid:jn-grid:', toString(number)), 'grid', 'jn-grid', "
        f"toString(370102 + number % 5), toString(370102001 + number % 15), "
        f"concat('G0', toString(1 + number % 8), '.01'), 'normal', concat('U', toString(number % 60)), "
        f"'closed', toDateTime64('2026-01-01 00:00:00', 3, 'UTC') + number % 31536000 AS created_at, "
        f"created_at + 3600, created_at + 86400 + number % 100000, created_at + 86400, "
        f"created_at + 172800, if(number % 7 = 0, 'unsatisfied', 'satisfied'), 0, 0, 0, 1 "
        f"FROM numbers({cases})")
    client.command("INSERT INTO big.pipeline_clock VALUES ('main', '2027-01-01 00:00:00', 1)")

    def query(sql: str) -> Callable[[], object]:
        return lambda: client.query(sql).result_rows

    scan = ("SELECT district, count(), countIf(resolved_at <= resolve_due) FROM big.cases "
            "GROUP BY district")
    parts = client.query("SELECT count() FROM system.parts WHERE database = 'big' "
                         "AND table = 'cases' AND active").result_rows[0][0]
    fresh = best_of({"units": query(RATES.format(view="unit_rates_daily")), "scan": query(scan)})
    began = time.perf_counter()
    optimize(client, "big", lambda _m: None, tables=("cases",))
    optimize_seconds = time.perf_counter() - began
    merged = best_of({"units": query(RATES.format(view="unit_rates_daily")),
                      "districts": query(RATES.format(view="district_rates_daily")),
                      "scan": query(scan)})
    scan_name = "plain scan of cases without FINAL"
    return [
        Result(f"三率 per district over {cases:,} cases via unit_rates_daily, as inserted ({parts} parts): "
               f"{fresh['units']:.2f} s", "queries/s", 1 / fresh["units"],
               f"{scan_name} ({fresh['scan']:.2f} s)", 1 / fresh["scan"], "< 1 s"),
        Result(f"same after `db optimize` ({optimize_seconds:.0f} s), via unit_rates_daily: "
               f"{merged['units']:.2f} s", "queries/s", 1 / merged["units"],
               f"{scan_name} ({merged['scan']:.2f} s)", 1 / merged["scan"], "< 1 s"),
        Result(f"same, via district_rates_daily: {merged['districts']:.2f} s", "queries/s",
               1 / merged["districts"], f"{scan_name} ({merged['scan']:.2f} s)", 1 / merged["scan"],
               "< 1 s"),
    ]


def run() -> list[Result]:
    return run_sink() + run_rates()
