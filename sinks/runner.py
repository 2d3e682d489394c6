"""The sink process loop: consume, batch, insert, and only then commit offsets.

Partitions are assigned directly (no consumer-group join) with the committed offsets of the
sink's group id, so a restarted sink resumes where the last accepted batch ended.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime

import orjson
from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition
from prometheus_client import CollectorRegistry

from producers.kafka import producer_config, readable
from schemas.errors import SinkUnavailable
from schemas.topics import INVALID_TOPIC, is_control
from sinks.clickhouse import (
    TABLE_FOR_TOPIC,
    ClickHouseSink,
    FlushResult,
    SinkDataError,
    table_for,
    with_retry,
)
from sinks.metrics import SinkMetrics

log = logging.getLogger("civicflow.sink")
SINK_GROUP = "civicflow-sink"
CONSUME_MAX = 10_000


@dataclass(frozen=True, slots=True)
class Marker:
    """A control record seen by the sink: it lands after every row before it."""

    run_id: str
    topic: str
    from_topic: str
    partition: int
    clock: str | None


@dataclass(frozen=True, slots=True)
class Batch:
    """What one write carries: rows per table, the offsets they end at, the markers after them."""

    rows: dict[str, list[bytes]]
    offsets: dict[tuple[str, int], int]
    markers: list[Marker]


@dataclass(frozen=True, slots=True)
class InFlight:
    batch: Batch
    future: Future[FlushResult]


@dataclass
class SinkStats:
    rows: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    batches: int = 0
    failures: int = 0
    dead_lettered: int = 0
    last_success: float = 0.0
    healthy: bool = True


class SinkRunner:
    def __init__(self, bootstrap: str, sink: ClickHouseSink, *, batch_rows: int = 200_000,
                 batch_seconds: float = 0.5, backlog_seconds: float = 5.0,
                 group_id: str = SINK_GROUP, metrics: SinkMetrics | None = None) -> None:
        self.sink = sink
        self.metrics = metrics or SinkMetrics(CollectorRegistry())
        self.batch_rows = batch_rows
        self.batch_seconds = batch_seconds
        self.backlog_seconds = backlog_seconds
        self.consumer = Consumer({
            "bootstrap.servers": bootstrap,
            "group.id": group_id,
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "fetch.max.bytes": 64 * 1024 * 1024,
        })
        self.stats = SinkStats()
        self._offsets: dict[tuple[str, int], int] = {}
        self._markers: list[Marker] = []
        self._landed: dict[str, set[tuple[str, str, int]]] = defaultdict(set)
        self._lock = threading.Lock()
        self.stop_event = threading.Event()
        self.error: BaseException | None = None
        self.bootstrap = bootstrap
        # test hook: runs after ClickHouse accepted a batch and before offsets are committed
        self.before_commit: Callable[[], None] | None = None

    def assign(self) -> None:
        metadata = self.consumer.list_topics(timeout=10)
        wanted = [
            TopicPartition(topic, partition)
            for topic in TABLE_FOR_TOPIC
            if topic in metadata.topics
            for partition in metadata.topics[topic].partitions
        ]
        committed = self.consumer.committed(wanted, timeout=10)
        self.consumer.assign([
            TopicPartition(tp.topic, tp.partition, tp.offset if tp.offset >= 0 else OFFSET_BEGINNING)
            for tp in committed
        ])

    def landed(self, run_id: str) -> int:
        with self._lock:
            return len(self._landed.get(run_id, ()))

    def run(self) -> None:
        """Consume into a batch while the previous batch is written (one writer thread; chDB and
        the HTTP client release the GIL), then commit each batch after ClickHouse accepted it."""
        in_flight: InFlight | None = None
        try:
            self.assign()
            with ThreadPoolExecutor(1, thread_name_prefix="civicflow-sink-writer") as writer:
                last_flush = time.monotonic()
                while not self.stop_event.is_set():
                    messages = self.consumer.consume(CONSUME_MAX, timeout=0.1)
                    for topic, partition, message in readable(messages, self._offsets):
                        value = message.value() or b""
                        if is_control(message.key(), message.headers()):
                            self._note_marker(topic, partition, value)
                            in_flight = self._hand_off(writer, in_flight)
                            last_flush = time.monotonic()
                            continue
                        self.sink.add(table_for(topic, value), value)
                    # caught up (a short read): close the batch after batch_seconds, for
                    # latency; behind (full reads): fill it up to batch_rows, for throughput
                    elapsed = time.monotonic() - last_flush
                    behind = len(messages) == CONSUME_MAX and elapsed < self.backlog_seconds
                    due = elapsed >= self.batch_seconds and not behind
                    if self.sink.pending >= self.batch_rows or (due and self._offsets):
                        in_flight = self._hand_off(writer, in_flight)
                        last_flush = time.monotonic()
                    elif due and in_flight is not None and in_flight.future.done():
                        self._complete(in_flight)  # an idle stream still gets its commit
                        in_flight = None
                in_flight = self._hand_off(writer, in_flight)
                if in_flight is not None:
                    self._complete(in_flight)
        except Exception as exc:  # the owner (CLI or test) reads it from `error`
            self.error = exc
            log.error("sink stopped: %s", exc)
        finally:
            self.consumer.close()

    def _take_batch(self) -> Batch | None:
        if not self._offsets:
            return None
        batch = Batch(self.sink.take_pending(), dict(self._offsets), self._markers)
        self._offsets.clear()
        self._markers = []
        return batch

    def _hand_off(self, writer: ThreadPoolExecutor, in_flight: InFlight | None) -> InFlight | None:
        """Finish the batch in flight (its commit included), then start writing the next."""
        batch = self._take_batch()
        if in_flight is not None:
            self._complete(in_flight)
        if batch is None:
            return None
        return InFlight(batch, writer.submit(self._write, batch))

    def _note_marker(self, topic: str, partition: int, value: bytes) -> None:
        payload = orjson.loads(value)
        self._markers.append(Marker(str(payload.get("run", "")), topic,
                                    str(payload.get("from", topic)), partition,
                                    payload.get("clock")))

    def _on_retry(self, exc: Exception, delay: float) -> None:
        self.stats.healthy = False
        self.stats.failures += 1
        self.metrics.failures.inc()
        self.metrics.healthy.set(0)
        log.warning("%s; retrying in %.1fs", exc, delay)

    def _write(self, batch: Batch) -> FlushResult:
        """The writer thread: rows, then the batch's markers and clock (never commits)."""
        started = time.perf_counter()
        written: dict[str, int] = {}
        try:
            with_retry(lambda: self.sink.write(batch.rows, written), self._on_retry)
        except SinkDataError:
            self._write_row_by_row(batch.rows, written)
        if batch.markers:
            rows = [orjson.dumps({"run_id": m.run_id, "topic": m.topic, "from_topic": m.from_topic,
                                  "partition": m.partition, "clock": m.clock}) for m in batch.markers]
            with_retry(lambda: self.sink.insert_json("control_markers", rows), self._on_retry)
            clocks = [datetime.fromisoformat(m.clock) for m in batch.markers if m.clock]
            if clocks:
                clock_row = orjson.dumps({"name": "main", "clock": max(clocks).isoformat(),
                                          "version": time.time_ns()})
                with_retry(lambda: self.sink.insert_json("pipeline_clock", [clock_row]),
                           self._on_retry)
        return FlushResult(written, time.perf_counter() - started)

    def _complete(self, in_flight: InFlight) -> None:
        """Wait for a batch's write (re-raising its failure), then commit its offsets."""
        result = in_flight.future.result()
        for table, count in result.rows.items():
            self.stats.rows[table] += count
            self.metrics.rows.labels(table).inc(count)
        self.metrics.batch_rows.observe(sum(result.rows.values()))
        self.metrics.insert_seconds.observe(result.seconds)
        if self.before_commit is not None:
            self.before_commit()
        batch = in_flight.batch
        self.consumer.commit(
            offsets=[TopicPartition(t, p, o) for (t, p), o in batch.offsets.items()],
            asynchronous=False,
        )
        with self._lock:
            for m in batch.markers:
                self._landed[m.run_id].add((m.topic, m.from_topic, m.partition))
        self.stats.batches += 1
        self.stats.healthy = True
        self.stats.last_success = time.time()  # clock: wall time for the ops gauge
        self.metrics.healthy.set(1)
        self.metrics.last_success.set(self.stats.last_success)

    def _write_row_by_row(self, pending: dict[str, list[bytes]], written: dict[str, int]) -> None:
        """A batch ClickHouse refused: write the tables not yet written row by row; each refused
        row goes to the dead-letter topic with ClickHouse's reason (and so to `rejects`)."""
        dead_letter = Producer(producer_config(self.bootstrap))
        for table, rows in pending.items():
            if table in written:
                continue
            written[table] = 0
            for row in rows:
                try:
                    self.sink.insert_json(table, [row])
                    written[table] += 1
                except SinkDataError as exc:
                    self.stats.dead_lettered += 1
                    self.metrics.dead_lettered.inc()
                    reason = f"clickhouse refused the row for {table}: {str(exc)[:400]}"
                    reject = orjson.dumps({"format": "sink", "source": table, "file": table,
                                           "line": 0, "reason": reason,
                                           "raw": row.decode("utf-8", "replace")})
                    if table == "rejects":  # never loop a refused dead letter back to Kafka
                        log.error("dropping a dead letter ClickHouse refused: %s", reason)
                        continue
                    dead_letter.produce(INVALID_TOPIC, reject, b"sink")
        if dead_letter.flush(30):
            raise SinkUnavailable("dead-letter topic unreachable; not committing the batch")
