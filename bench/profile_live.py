"""Where an alert's time goes in live mode, from its instant to its row in ClickHouse.

`python -m bench.profile_live [--replay-batching]` runs the `worker-live` benchmark with the sink
instrumented and prints, per stage, p50 / p99 of the time each yellow alert spent there:

- instant -> emitted_at: the worker's tick reaching the instant (its evaluation time);
- emitted_at -> Kafka timestamp: the produce() call after the tick's evaluation;
- Kafka timestamp -> sink received: producer linger, broker append, the sink's fetch + poll;
- received -> handed off: the sink's batch waiting to close;
- handed off -> insert of `alerts` began: the previous write, the intent row, other tables;
- insert began -> landed_at: the `alerts` insert itself (landed_at is set during it);
and per batch: rows, the time of each insert by table, the commit.
"""

from __future__ import annotations

import statistics
import sys
import threading
import time
from collections import defaultdict
from typing import Any

import orjson

import civicflow.pipeline
from bench import bench_worker
from sinks.clickhouse import ClickHouseSink
from sinks.runner import Batch, SinkRunner

RECEIVED: dict[str, float] = {}
KAFKA_TS: dict[str, float] = {}
HANDED: dict[str, float] = {}
INSERTS: list[tuple[str, float, float, int]] = []  # table, began, ended, rows
ALERT_INSERT_BEGAN: dict[str, float] = {}
BATCHES: list[dict[str, Any]] = []
LOCK = threading.Lock()


class ProfiledRunner(SinkRunner):
    def _absorb(self, messages):
        now = time.time()
        for message in messages:
            if message.error() is None and message.topic() == "alerts.sla":
                value = message.value() or b""
                if b'"level":"yellow"' in value and b'"end_reason":"' not in value:
                    alert_id = orjson.loads(value)["alert_id"]
                    RECEIVED[alert_id] = now
                    KAFKA_TS[alert_id] = message.timestamp()[1] / 1000
        super()._absorb(messages)

    def _hand_off(self, writer, in_flight):
        now = time.time()
        waiting = [a for a in RECEIVED if a not in HANDED]
        result = super()._hand_off(writer, in_flight)
        for alert_id in waiting:
            HANDED[alert_id] = now
        return result

    def _write(self, batch: Batch) -> Any:
        began = time.time()
        yellows = []
        for row in batch.rows.get("alerts", []):
            if b'"level":"yellow"' in row:
                yellows.append(orjson.loads(row)["alert_id"])
        sink = self.sink
        original = sink.insert_block

        def timed(table: str, block: bytes, token: str | None = None) -> None:
            start = time.time()
            if table == "alerts":
                for alert_id in yellows:
                    ALERT_INSERT_BEGAN[alert_id] = start
            original(table, block, token)
            INSERTS.append((table, start, time.time(), block.count(b"\n") + 1))

        sink.insert_block = timed  # type: ignore[method-assign]
        try:
            result = super()._write(batch)
        finally:
            sink.insert_block = original  # type: ignore[method-assign]
        BATCHES.append({"began": began, "ended": time.time(),
                        "rows": {t: len(r) for t, r in batch.rows.items()},
                        "markers": len(batch.markers)})
        return result

    def _commit(self, batch: Batch) -> None:
        began = time.time()
        super()._commit(batch)
        INSERTS.append(("(commit)", began, time.time(), 0))


def _quantiles(values: list[float]) -> str:
    if not values:
        return "-"
    values = sorted(values)
    p50 = statistics.median(values)
    p99 = values[min(len(values) - 1, int(0.99 * len(values)))]
    return f"p50 {p50 * 1000:7.0f} ms  p99 {p99 * 1000:7.0f} ms  mean {statistics.fmean(values) * 1000:6.0f} ms"


def main() -> None:
    civicflow.pipeline.SinkRunner = ProfiledRunner  # type: ignore[misc]
    if "--replay-batching" in sys.argv:  # the sink batches as in a replay (a timer, no idle flush)
        sink_runner = civicflow.pipeline.sink_runner

        def replay_batching(*args: Any, **kwargs: Any) -> SinkRunner:
            return sink_runner(*args, **{**kwargs, "live": False})

        civicflow.pipeline.sink_runner = replay_batching
    captured: list[tuple[str, float, float, float]] = []

    def examine(sink: ClickHouseSink) -> None:
        captured.extend(sink.client.query(
            "SELECT alert_id, toUnixTimestamp64Milli(fires_at) / 1000, "
            "toUnixTimestamp64Milli(emitted_at) / 1000, toUnixTimestamp64Milli(landed_at) / 1000 "
            f"FROM {sink.database}.alerts WHERE level = 'yellow'").result_rows)

    for result in bench_worker.live_latency(examine=examine):
        print(result.line())
    stages: dict[str, list[float]] = defaultdict(list)
    for alert_id, fires, emitted, landed in captured:
        stages["instant -> landed_at (total)"].append(landed - fires)
        stages["instant -> emitted_at (tick)"].append(emitted - fires)
        if alert_id in KAFKA_TS:
            stages["emitted_at -> Kafka timestamp (produce call)"].append(KAFKA_TS[alert_id] - emitted)
            stages["Kafka timestamp -> sink received"].append(RECEIVED[alert_id] - KAFKA_TS[alert_id])
        if alert_id in HANDED:
            stages["sink received -> batch handed off"].append(HANDED[alert_id] - RECEIVED[alert_id])
        if alert_id in ALERT_INSERT_BEGAN and alert_id in HANDED:
            stages["handed off -> alerts insert began"].append(ALERT_INSERT_BEGAN[alert_id] - HANDED[alert_id])
            stages["alerts insert began -> landed_at"].append(landed - ALERT_INSERT_BEGAN[alert_id])
    print(f"\n{len(captured):,} yellow alerts; stages:")
    for name, values in stages.items():
        print(f"  {name:48s} {_quantiles(values)}  (n={len(values):,})")
    by_table: dict[str, list[float]] = defaultdict(list)
    for table, began, ended, _ in INSERTS:
        by_table[table].append(ended - began)
    print(f"\n{len(BATCHES):,} sink batches; per insert / commit:")
    for table, values in sorted(by_table.items()):
        print(f"  {table:24s} {_quantiles(values)}  (n={len(values):,}, total {sum(values):.1f} s)")
    sizes = [sum(b["rows"].values()) for b in BATCHES]
    write = [b["ended"] - b["began"] for b in BATCHES]
    marker_only = sum(1 for b in BATCHES if not any(b["rows"].values()))
    print(f"  rows per batch: p50 {statistics.median(sizes):.0f}, max {max(sizes)}; "
          f"batches with only markers: {marker_only}; whole write {_quantiles(write)}")


if __name__ == "__main__":
    main()
