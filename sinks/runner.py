"""The sink process loop: consume, batch, insert, and only then commit offsets.

Partitions are assigned directly (no consumer-group join) with the committed offsets of the
sink's group id, so a restarted sink resumes where the last accepted batch ended.

Exactly one copy in ClickHouse, even when the sink dies between an insert and its commit:
before a batch is written, its intent (the offsets it spans, its id) goes to `sink_batches`,
and every insert of the batch carries a de-duplication token made of that id. A restarted sink
whose committed offsets are where its last intent starts reads exactly that span again and
writes it under the same id: ClickHouse skips the inserts it already has.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial

import orjson
from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    KafkaException,
    Message,
    Producer,
    TopicCollection,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient
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
INTENT_TABLE = "sink_batches"
# a batch to write again after a restart whose offsets never all come back (the broker lost
# them): after this long it is written under a new id (a possible copy, never a loss)
RECOVERY_TIMEOUT = 120.0
TopicPart = tuple[str, int]
# how often the sink checks that its topics are the ones it started on (a broker that keeps
# topics in memory comes back from a restart with new, empty ones)
TOPIC_CHECK_SECONDS = 5.0
COMMIT_RETRY_SECONDS = 60.0


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
    """What one write carries: rows per table, the offsets they end at, the markers after them,
    the offsets they start at, and (after a restart) the unfinished batch it must repeat."""

    rows: dict[str, list[bytes]]
    offsets: dict[TopicPart, int]
    markers: list[Marker]
    starts: dict[TopicPart, int] = field(default_factory=dict)
    repeats: Recovery | None = None
    topic_ids: dict[str, str] = field(default_factory=dict)  # the topics the offsets belong to

    def ranges(self) -> str:
        return orjson.dumps({f"{t}/{p}": [self.starts[(t, p)], end]
                             for (t, p), end in self.offsets.items()}).decode()


def content_digest(blocks: dict[str, tuple[bytes, int]], markers: list[Marker]) -> str:
    """What a batch read again after a restart must match, byte for byte, to be written under
    its first id (sha256 runs at over 1 GB/s here and releases the GIL on big blocks)."""
    digest = hashlib.sha256()
    for table in sorted(blocks):
        block, count = blocks[table]
        digest.update(f"{table}:{count}:{len(block)}:".encode())
        digest.update(block)
    for line in sorted(f"{m.run_id}:{m.topic}:{m.from_topic}:{m.partition}:{m.clock}"
                       for m in markers):
        digest.update(line.encode())
    return digest.hexdigest()


@dataclass
class Recovery:
    """The batch a restarted sink must write again exactly as before: its id, digest and ends."""

    batch_id: str
    digest: str
    ends: dict[TopicPart, int]
    started: float = field(default_factory=time.monotonic)
    held: list[Message] = field(default_factory=list)


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
                 idle_flush: bool = False, linger_seconds: float = 0.1, fetch_wait_ms: int = 500,
                 group_id: str = SINK_GROUP, metrics: SinkMetrics | None = None,
                 retry_max_seconds: float = 30.0) -> None:
        """A batch is written once it holds `batch_rows` (the sink is behind), once a control
        record closed it, or, caught up: with `idle_flush` (live) as soon as a read finds nothing
        more queued and the previous batch is in, else (replay) `batch_seconds` after the last
        write, so inserts stay big. One read waits at most `linger_seconds` for more records;
        the broker holds a fetch that finds none for at most `fetch_wait_ms`."""
        self.sink = sink
        self.metrics = metrics or SinkMetrics(CollectorRegistry())
        self.batch_rows = batch_rows
        self.batch_seconds = batch_seconds
        self.backlog_seconds = backlog_seconds
        self.idle_flush = idle_flush
        self.linger_seconds = linger_seconds
        self.retry_max_seconds = retry_max_seconds
        self.consumer = Consumer({
            "bootstrap.servers": bootstrap,
            "group.id": group_id,
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "fetch.max.bytes": 64 * 1024 * 1024,
            "fetch.wait.max.ms": fetch_wait_ms,
        })
        self.stats = SinkStats()
        self.group_id = group_id
        self._offsets: dict[TopicPart, int] = {}
        # where the next batch starts on each partition (the end of the last one taken)
        self._positions: dict[TopicPart, int] = {}
        self._recovery: Recovery | None = None
        self._reuse: Recovery | None = None
        self._markers: list[Marker] = []
        self._close_batch = False  # a control record was read: write the batch when the writer is free
        self._landed: dict[str, set[tuple[str, str, int]]] = defaultdict(set)
        self._lock = threading.Lock()
        self.stop_event = threading.Event()
        self.error: BaseException | None = None
        self.bootstrap = bootstrap
        self._admin = AdminClient({"bootstrap.servers": bootstrap})
        self._topic_ids: dict[str, str] = {}
        self._topics_checked = 0.0
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
        for tp in committed:
            if tp.offset >= 0:
                self._positions[(tp.topic, tp.partition)] = tp.offset
            else:
                low, _ = self.consumer.get_watermark_offsets(tp, timeout=10)
                self._positions[(tp.topic, tp.partition)] = max(0, low)
        self._recovery = self._unfinished_batch()
        self._topic_ids = self._current_topic_ids({tp.topic for tp in wanted})
        self._topics_checked = time.monotonic()
        self.consumer.assign([
            TopicPartition(tp.topic, tp.partition, tp.offset if tp.offset >= 0 else OFFSET_BEGINNING)
            for tp in committed
        ])

    def _current_topic_ids(self, topics: set[str]) -> dict[str, str]:
        if not topics:
            return {}
        futures = self._admin.describe_topics(TopicCollection(sorted(topics)), request_timeout=5)
        ids = {}
        for topic, future in futures.items():
            try:
                ids[topic] = str(future.result().topic_id)
            except KafkaException as exc:  # gone or not back yet: checked again later
                log.debug("topic %s not described: %s", topic, exc)
        return ids

    def _check_topics(self) -> None:
        """Topics created anew since the sink assigned them (a memory-only broker restarted):
        read them from their start. Rows already written stay; offsets of the old topics are
        never committed on the new ones (they would skip the new records)."""
        self._topics_checked = time.monotonic()
        try:
            ids = self._current_topic_ids(set(self._topic_ids))
        except KafkaException:
            return
        renewed = {t for t, topic_id in ids.items() if topic_id != self._topic_ids.get(t)}
        if not renewed:
            return
        log.warning("topics %s were created anew (a broker that keeps topics in memory "
                    "restarted): reading them from their start", sorted(renewed))
        self._topic_ids.update(ids)
        for tp in list(self._offsets):
            if tp[0] in renewed:
                del self._offsets[tp]
        for tp in list(self._positions):
            if tp[0] in renewed:
                self._positions[tp] = 0
                self.consumer.seek(TopicPartition(tp[0], tp[1], OFFSET_BEGINNING))

    def _unfinished_batch(self) -> Recovery | None:
        """The last batch this sink's group wrote, if its offsets were never committed."""
        rows = self.sink.client.query(
            f"SELECT batch_id, ranges, digest FROM {self.sink.database}.{INTENT_TABLE} "
            "WHERE group_id = {group:String} ORDER BY version DESC LIMIT 1",
            parameters={"group": self.group_id}).result_rows
        if not rows:
            return None
        batch_id, ranges_text, digest = rows[0]
        ranges = {}
        for name, (start, end) in orjson.loads(ranges_text).items():
            topic, partition = name.rsplit("/", 1)
            ranges[(topic, int(partition))] = (start, end)
        at = {tp: self._positions.get(tp) for tp in ranges}
        if all(at[tp] == end for tp, (_, end) in ranges.items()):
            return None  # written and committed
        if all(at[tp] == start for tp, (start, _) in ranges.items()):
            log.warning("the last batch (%s) was written but not committed: reading its %d "
                        "partitions again and writing it under the same id", batch_id, len(ranges))
            return Recovery(batch_id, digest, {tp: end for tp, (_, end) in ranges.items()})
        log.warning("the last batch (%s) does not start where the committed offsets are; "
                    "writing on without it (a row may land twice, none is lost)", batch_id)
        return None

    def landed(self, run_id: str) -> int:
        with self._lock:
            return len(self._landed.get(run_id, ()))

    def run(self) -> None:
        """Consume into a batch while the previous batch is written (one writer thread; chDB and
        the HTTP client release the GIL), then commit each batch after ClickHouse accepted it.
        A batch that is due while the previous one is still being written keeps filling (up to
        `batch_rows`) instead of waiting: it is written as soon as the writer is free."""
        in_flight: InFlight | None = None
        try:
            self.assign()
            with ThreadPoolExecutor(1, thread_name_prefix="civicflow-sink-writer") as writer:
                last_flush = time.monotonic()
                while not self.stop_event.is_set():
                    if time.monotonic() - self._topics_checked > TOPIC_CHECK_SECONDS:
                        self._check_topics()
                    # while ClickHouse fails, wait for it rather than read ahead into memory
                    # what the broker keeps anyway
                    if in_flight is not None and (in_flight.future.done() or not self.stats.healthy):
                        self._complete(in_flight)
                        in_flight = None
                    messages = self.consumer.consume(CONSUME_MAX, timeout=self.linger_seconds)
                    if self._recovery is not None:
                        in_flight = self._recover(messages, writer, in_flight)
                        last_flush = time.monotonic()
                        continue
                    self._absorb(messages)
                    if not self._offsets:
                        continue
                    if self.sink.pending >= self.batch_rows:
                        in_flight = self._hand_off(writer, in_flight)  # waits for the writer
                        last_flush = time.monotonic()
                        continue
                    if in_flight is not None and not in_flight.future.done():
                        continue
                    if self._close_batch or self._caught_up(messages, time.monotonic() - last_flush):
                        in_flight = self._hand_off(writer, in_flight)
                        last_flush = time.monotonic()
                in_flight = self._hand_off(writer, in_flight)
                if in_flight is not None:
                    self._complete(in_flight)
        except Exception as exc:  # the owner (CLI or test) reads it from `error`
            self.error = exc
            log.error("sink stopped: %s", exc)
        finally:
            self.consumer.close()

    def _caught_up(self, messages: list[Message], since_flush: float) -> bool:
        """Whether the batch is due: live (idle flush), as soon as a read comes back short (the
        consumer has nothing more queued); replay, `batch_seconds` after the last write unless
        reads come back full (behind: fill the batch up to `batch_rows`, for throughput)."""
        short = len(messages) < CONSUME_MAX
        if self.idle_flush:
            return short
        behind = not short and since_flush < self.backlog_seconds
        return since_flush >= self.batch_seconds and not behind

    def _absorb(self, messages: list[Message]) -> None:
        """Add consumed records to the batch; a control record closes the batch (it lands
        after every row before it, and is written as soon as the writer is free)."""
        for topic, partition, message in readable(messages, self._offsets):
            value = message.value() or b""
            if is_control(message.key(), message.headers()):
                self._note_marker(topic, partition, value)
                self._close_batch = True
                continue
            self.sink.add(table_for(topic, value), value, topic, partition)

    def _recover(self, messages: list[Message], writer: ThreadPoolExecutor,
                 in_flight: InFlight | None) -> InFlight | None:
        """Rebuild the unfinished batch from exactly its offsets (records past them wait), write
        it under its first id once complete, then go on with the records that waited."""
        recovery = self._recovery
        assert recovery is not None
        for message in messages:
            if message.error() is not None:
                readable([message], {})  # logs it unless it is an end of partition
                continue
            tp = (str(message.topic()), int(message.partition() or 0))
            offset = int(message.offset() or 0)
            end = recovery.ends.get(tp)
            if end is None or offset >= end:
                recovery.held.append(message)
                continue
            self._offsets[tp] = offset + 1
            value = message.value() or b""
            if is_control(message.key(), message.headers()):
                self._note_marker(tp[0], tp[1], value)
            else:
                self.sink.add(table_for(tp[0], value), value, tp[0], tp[1])
        complete = all(self._offsets.get(tp, -1) >= end for tp, end in recovery.ends.items())
        if not complete and time.monotonic() - recovery.started < RECOVERY_TIMEOUT:
            return in_flight
        if not complete:
            log.warning("the unfinished batch %s did not come back whole in %.0fs: writing what "
                        "came under a new id", recovery.batch_id, RECOVERY_TIMEOUT)
        else:
            self._reuse = recovery
        self._recovery = None
        in_flight = self._hand_off(writer, in_flight)
        self._reuse = None
        self._absorb(recovery.held)
        return in_flight

    def _take_batch(self) -> Batch | None:
        if not self._offsets:
            return None
        offsets = dict(self._offsets)
        batch = Batch(self.sink.take_pending(), offsets, self._markers,
                      {tp: self._positions.get(tp, 0) for tp in offsets}, self._reuse,
                      dict(self._topic_ids))
        self._positions.update(offsets)
        self._offsets.clear()
        self._markers = []
        self._close_batch = False
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

    def _retry(self, action: Callable[[], None]) -> None:
        """Retry while ClickHouse is unavailable, however long it takes, until the sink stops."""
        with_retry(action, self._on_retry, attempts=None, max_delay=self.retry_max_seconds,
                   stopping=self.stop_event.is_set)

    def _write(self, batch: Batch) -> FlushResult:
        """The writer thread: the batch's intent, its rows, then its markers and clock (never
        commits). Every insert carries a token made of the batch id: written again, it is skipped."""
        started = time.perf_counter()
        written: dict[str, int] = {}
        blocks = {table: (b"\n".join(rows), len(rows)) for table, rows in batch.rows.items() if rows}
        digest = content_digest(blocks, batch.markers)
        token = uuid.uuid4().hex
        if batch.repeats is not None:
            if batch.repeats.digest == digest:
                token = batch.repeats.batch_id
            else:
                log.warning("the unfinished batch %s read again differs from what was written; "
                            "writing it under a new id", batch.repeats.batch_id)
        intent = orjson.dumps({"group_id": self.group_id, "batch_id": token,
                               "ranges": batch.ranges(), "digest": digest,
                               "version": time.time_ns()})
        self._retry(lambda: self.sink.insert_json(INTENT_TABLE, [intent], f"{token}:intent"))
        try:
            self._retry(lambda: self.sink.write(blocks, written, token))
        except SinkDataError:
            self._write_row_by_row(batch.rows, written, token)
        if batch.markers:
            rows = [orjson.dumps({"run_id": m.run_id, "topic": m.topic, "from_topic": m.from_topic,
                                  "partition": m.partition, "clock": m.clock}) for m in batch.markers]
            self._retry(lambda: self.sink.insert_json("control_markers", rows,
                                                      f"{token}:control_markers"))
            clocks = [datetime.fromisoformat(m.clock) for m in batch.markers if m.clock]
            if clocks:
                clock_row = orjson.dumps({"name": "main", "clock": max(clocks).isoformat(),
                                          "version": time.time_ns()})
                self._retry(lambda: self.sink.insert_json("pipeline_clock", [clock_row],
                                                          f"{token}:pipeline_clock"))
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
        self._commit(batch)
        with self._lock:
            for m in batch.markers:
                self._landed[m.run_id].add((m.topic, m.from_topic, m.partition))
        self.stats.batches += 1
        self.stats.healthy = True
        self.stats.last_success = time.time()  # clock: wall time for the ops gauge
        self.metrics.healthy.set(1)
        self.metrics.last_success.set(self.stats.last_success)

    def _commit(self, batch: Batch) -> None:
        """Commit a written batch's offsets, retrying while the broker is away; offsets of a
        topic that has been created anew since the batch was read are not committed."""
        deadline = time.monotonic() + COMMIT_RETRY_SECONDS
        delay = 0.5
        while True:
            offsets = [TopicPartition(t, p, o) for (t, p), o in batch.offsets.items()
                       if batch.topic_ids.get(t) == self._topic_ids.get(t)]
            if not offsets:
                return
            try:
                self.consumer.commit(offsets=offsets, asynchronous=False)
                return
            except KafkaException as exc:
                if time.monotonic() > deadline or self.stop_event.is_set():
                    raise
                log.warning("cannot commit offsets (%s); retrying in %.1fs", exc.args[0].str(), delay)
                time.sleep(delay)
                delay = min(delay * 2, 5.0)
                self._check_topics()

    def _write_row_by_row(self, pending: dict[str, list[bytes]], written: dict[str, int],
                          token: str) -> None:
        """A batch ClickHouse refused: write the tables not yet written row by row; each refused
        row goes to the dead-letter topic with ClickHouse's reason (and so to `rejects`)."""
        dead_letter = Producer(producer_config(self.bootstrap))
        for table, rows in pending.items():
            if table in written:
                continue
            written[table] = 0
            for index, row in enumerate(rows):
                try:
                    self._retry(partial(self.sink.insert_json, table, [row],
                                        f"{token}:{table}:{index}"))
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
