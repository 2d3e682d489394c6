"""Run the whole pipeline for a replay: broker (embedded or given), worker, sink, producer."""

from __future__ import annotations

import contextlib
import logging
import os
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from types import TracebackType

from confluent_kafka import Consumer, KafkaException, TopicPartition

from civicflow.embedded import create_topics, embedded_broker, ensure_var_dir, spawn, stop_process
from civicflow.progress import Reading, ReplayProgress
from civicflow.settings import Settings
from producers.base import ImportTally, Reject
from producers.ingest import EventTimeImport, feed_rows
from producers.kafka import EventProducer
from schemas.errors import BrokerUnavailable, CivicflowError, ConfigError
from schemas.event import EncodedEvent, Event, event_time_order
from schemas.policy import load_policy
from schemas.topics import EVENT_TOPICS, INVALID_TOPIC
from sinks.clickhouse import TABLE_FOR_TOPIC, ClickHouseSink, connect
from sinks.metrics import SinkMetrics
from sinks.migrate import migrate
from sinks.notifier import Notifier, notifier_thread
from sinks.runner import SINK_GROUP, SinkRunner
from streams.calendar import WorkingDayCalendar

Progress = Callable[[str], None]

# the worker's consumer group (the Faust app id of streams/app.py), read for how far it is:
# tests/unit/test_replay_progress.py holds it to the worker's own name
WORKER_GROUP = "civicflow-worker"
PROGRESS_SECONDS = 10.0  # a progress line this often
READING_SECONDS = 2.0  # offsets read from Kafka this often
CHECK_EVERY_EVENTS = 1000  # while producing, liveness and progress checked this often


@dataclass
class ReplayResult:
    tally: ImportTally
    event_count: int  # events produced: each event id once
    as_of: datetime
    run_id: str
    seconds: float
    rows: dict[str, int] = field(default_factory=dict)


def read_feeds(files: list[tuple[str, Path]], caller_key: bytes = b"civicflow-dev-key-change-me"
               ) -> tuple[list[Event], list[Reject], ImportTally]:
    """Every event of small inputs as models, in `occurred_at` order, with one set of every id
    seen: the replay's input as the replay of before read it, all in memory (tests and
    benchmarks use it as the reference; `replay` streams instead)."""
    tally = ImportTally()
    events: list[Event] = []
    rejects: list[Reject] = []
    seen: set[str] = set()
    for _, _, items in feed_rows(files, caller_key):
        if items and isinstance(items[0], Reject):
            rejects.extend(r for r in items if isinstance(r, Reject))
        events.extend(tally.add(items, seen))
    events.sort(key=event_time_order)
    return events, rejects, tally


def last_lines(path: Path, count: int = 3) -> str:
    """The log's last non-empty lines, on one line."""
    try:
        with open(path, "rb") as handle:
            handle.seek(max(0, handle.seek(0, os.SEEK_END) - 64 * 1024))
            text = handle.read().decode("utf-8", "replace")
    except OSError:
        return "no log"
    lines = [line.strip()[-300:] for line in text.splitlines() if line.strip()]
    return " | ".join(lines[-count:]) if lines else "no log"


@contextlib.contextmanager
def broker_for(settings: Settings) -> Iterator[str]:
    if settings.bootstrap:
        create_topics(settings.bootstrap, settings.partitions)
        yield settings.bootstrap
    else:
        with embedded_broker(settings.var_dir, settings.partitions, settings.broker_start_timeout,
                             validate_events=settings.broker_validate_events) as bootstrap:
            yield bootstrap


@contextlib.contextmanager
def worker_process(settings: Settings, bootstrap: str, mode: str) -> Iterator[subprocess.Popen[bytes]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CIVICFLOW_")}
    env.update(settings.model_copy(update={"bootstrap": bootstrap}).as_env())
    log_path = settings.var_dir / "worker.log"
    with open(log_path, "ab") as log_file:
        proc = spawn([sys.executable, "-m", "civicflow", "worker", "--mode", mode],
                     env=env, stdout=log_file, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        try:
            yield proc
        finally:
            stop_process(proc, grace=10.0)


def sink_runner(settings: Settings, bootstrap: str, sink: ClickHouseSink, *, live: bool,
                metrics: SinkMetrics | None = None) -> SinkRunner:
    """The sink with its batching for the mode: live writes a batch as soon as it has caught
    up (latency), a replay gathers big batches (throughput)."""
    return SinkRunner(
        bootstrap, sink, batch_rows=settings.sink_batch_rows,
        batch_seconds=settings.sink_batch_seconds, idle_flush=live,
        linger_seconds=settings.sink_linger_seconds or (0.02 if live else 0.1),
        fetch_wait_ms=settings.sink_fetch_wait_ms if settings.sink_fetch_wait_ms is not None
        else (50 if live else 500),
        metrics=metrics, retry_max_seconds=settings.sink_retry_max_seconds)


@contextlib.contextmanager
def sink_thread(settings: Settings, bootstrap: str, sink: ClickHouseSink,
                live: bool = False) -> Iterator[SinkRunner]:
    """The sink on a thread of this process (batching for a replay unless `live`); what it
    logs also goes to var/sink.log."""
    handler = logging.FileHandler(settings.var_dir / "sink.log", encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    sink_log = logging.getLogger("civicflow.sink")
    sink_log.addHandler(handler)
    runner = sink_runner(settings, bootstrap, sink, live=live)
    thread = threading.Thread(target=runner.run, name="civicflow-sink", daemon=True)
    thread.start()
    try:
        yield runner
    finally:
        runner.stop_event.set()
        thread.join(30)
        sink_log.removeHandler(handler)
        handler.close()


class RejectSpool:
    """Dead letters met while reading, kept on disk until the broker is up."""

    def __init__(self, directory: Path) -> None:
        handle, name = tempfile.mkstemp(prefix="civicflow-rejects-", suffix=".jsonl", dir=directory)
        self.path = Path(name)
        self._file = os.fdopen(handle, "wb")
        self.count = 0

    def __enter__(self) -> RejectSpool:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self._file.close()
        self.path.unlink(missing_ok=True)

    def add(self, reject: Reject) -> None:
        # the key (a source name) has no space; the JSON value has no raw newline
        self._file.write(reject.source.value.encode() + b" " + reject.to_json() + b"\n")
        self.count += 1

    def send(self, producer: EventProducer) -> None:
        self._file.flush()
        with open(self.path, "rb") as handle:
            for line in handle:
                key, value = line.rstrip(b"\n").split(b" ", 1)
                producer.send(INVALID_TOPIC, key, value)


class PipelineWatch:
    """How far the worker and the sink are (their committed offsets against the topics' ends,
    the sink's row counts), a progress line now and then, a dead worker or sink noticed at
    once, and a replay that stopped moving for `stall_timeout` failed, naming the stage."""

    def __init__(self, settings: Settings, bootstrap: str, worker: subprocess.Popen[bytes],
                 runner: SinkRunner, progress: Progress, stall_timeout: float,
                 notifier: Notifier | None = None) -> None:
        self.worker = worker
        self.runner = runner
        self.notifier = notifier
        self.progress = progress
        self.stall_timeout = stall_timeout
        self.worker_log = settings.var_dir / "worker.log"
        self.sink_log = settings.var_dir / "sink.log"
        partitions = range(settings.partitions)
        self.event_partitions = [TopicPartition(t, p) for t in EVENT_TOPICS.values() for p in partitions]
        self.sink_partitions = [TopicPartition(t, p) for t in TABLE_FOR_TOPIC for p in partitions]
        config = {"bootstrap.servers": bootstrap, "enable.auto.commit": False, "log_level": 4}
        # never subscribed: these only read the groups' committed offsets
        self._worker_group = Consumer({**config, "group.id": WORKER_GROUP})
        self._sink_group = Consumer({**config, "group.id": SINK_GROUP})
        self._backlog = 0
        self._done_before = 0
        self.tracker = ReplayProgress(0, stall_timeout)
        self._last_reading = self._last_line = 0.0

    def close(self) -> None:
        self._worker_group.close()
        self._sink_group.close()

    def start(self, events: int, markers: int) -> None:
        """Before producing: what the worker had acknowledged and had waiting already (a broker
        given with --bootstrap may hold earlier data) is the baseline."""
        try:
            ends = self._ends(self.event_partitions)
            done = self._committed(self._worker_group, self.event_partitions)
        except KafkaException as exc:
            raise BrokerUnavailable(f"the broker does not answer for the topics' offsets: {exc}") from exc
        self._done_before = sum(done.values())
        self._backlog = sum(ends.values()) - self._done_before
        self.tracker = ReplayProgress(self._backlog + events + markers, self.stall_timeout)
        self._last_line = now = time.monotonic()
        self.tracker.add(Reading(now, 0, 0, self._backlog, 0, {}))

    def check_alive(self) -> None:
        if self.runner.error is not None:
            raise CivicflowError(f"the sink stopped: {self.runner.error} (log: {self.sink_log})")
        if self.notifier is not None and self.notifier.error is not None:
            raise CivicflowError(f"the notifier stopped: {self.notifier.error}")
        if self.worker.poll() is not None:
            raise CivicflowError(f"the worker exited (code {self.worker.returncode}): "
                                 f"{last_lines(self.worker_log)} (full log: {self.worker_log})")

    def tick(self, produced: int) -> None:
        """Cheap enough to call often: reads offsets every READING_SECONDS at most."""
        self.check_alive()
        now = time.monotonic()
        if now - self._last_reading < READING_SECONDS:
            return
        self._last_reading = now
        try:
            self.tracker.add(self._reading(now, produced))
            unread = ""
        except KafkaException as exc:  # nothing read moves nothing: the stall clock runs on
            unread = f"; the broker did not answer for the offsets: {exc}"
        if now - self._last_line >= PROGRESS_SECONDS:
            self._last_line = now
            self.progress(self.tracker.line())
        stage = self.tracker.stalled_stage(now)
        reading = self.tracker.latest
        if stage is None or reading is None:
            return
        still = f"{self.tracker.still_for(now):.0f}s"
        if stage == "worker":
            raise CivicflowError(
                f"replay stalled: the worker has not moved for {still} ({reading.worker_waiting:,} "
                f"records waiting for it{unread}): {last_lines(self.worker_log)} "
                f"(full log: {self.worker_log}); if it is only slow, raise --stall-timeout")
        raise CivicflowError(
            f"replay stalled: the sink has not landed anything for {still} ({reading.sink_waiting:,} "
            f"records waiting for it{unread}): {last_lines(self.sink_log)} "
            f"(full log: {self.sink_log}); if ClickHouse is only slow, raise --stall-timeout")

    def _reading(self, now: float, produced: int) -> Reading:
        event_ends = self._ends(self.event_partitions)
        sink_ends = self._ends(self.sink_partitions)
        done = self._committed(self._worker_group, self.event_partitions)
        sunk = self._committed(self._sink_group, self.sink_partitions)
        return Reading(
            at=now, produced=produced,
            processed=sum(done.values()) - self._done_before,
            worker_waiting=sum(max(0, end - done[tp]) for tp, end in event_ends.items()),
            sink_waiting=sum(max(0, end - sunk[tp]) for tp, end in sink_ends.items()),
            landed=dict(self.runner.stats.rows))

    def _ends(self, partitions: list[TopicPartition]) -> dict[tuple[str, int], int]:
        ends = {}
        for tp in partitions:
            _, high = self._worker_group.get_watermark_offsets(tp, timeout=5, cached=False)
            ends[(tp.topic, tp.partition)] = max(0, high)
        return ends

    @staticmethod
    def _committed(group: Consumer, partitions: list[TopicPartition]) -> dict[tuple[str, int], int]:
        return {(tp.topic, tp.partition): max(0, tp.offset)
                for tp in group.committed(partitions, timeout=5)}


def replay(settings: Settings, files: list[tuple[str, Path]], as_of: datetime | None,
           progress: Progress, stall_timeout: float | None = None,
           on_event: Callable[[EncodedEvent], None] | None = None, alertmanager: str | None = None
           ) -> tuple[ReplayResult, ClickHouseSink]:
    """Feed files through broker -> worker -> sink -> ClickHouse in event time; return when
    every event, snapshot and alert has landed (and, given `alertmanager`, was notified).
    Streams: the input is read into sorted runs on disk (under the var dir), then merged into
    the producer, all feeds together in event time. Runs as long as something moves; fails
    when nothing did for `stall_timeout` (default: the setting). `on_event` sees every event
    produced, in order."""
    started = time.monotonic()
    ensure_var_dir(settings.var_dir)
    # fail fast, before anything starts, on a policy or holiday file the worker would refuse
    load_policy(settings.policy)
    WorkingDayCalendar.from_override_file(settings.holiday_file)
    if as_of is not None and as_of.tzinfo is None:
        raise ConfigError("--as-of needs a UTC offset, e.g. 2026-10-20T08:00:00+08:00")
    stall = settings.stall_timeout_seconds if stall_timeout is None else stall_timeout
    caller_key = settings.caller_hash_key.get_secret_value().encode()
    with EventTimeImport(files, caller_key, settings.sort_run_events, settings.var_dir) as feed, \
            RejectSpool(settings.var_dir) as rejects:
        read_report = [time.monotonic()]

        def on_read(stage: str, records: int, _total: int | None, rejected: int) -> None:
            if time.monotonic() - read_report[0] >= PROGRESS_SECONDS:
                read_report[0] = time.monotonic()
                progress(f"{stage}: {records:,} records read, {rejected:,} rejected")

        feed.read(rejects.add, on_read)
        feed.settle()
        progress(feed.tally.line())
        if not feed.count:
            raise ConfigError("no events in the input: nothing to replay (see the rejects above)")
        if feed.sorter.spilled_runs:
            progress(f"sorted {feed.count:,} events in {feed.sorter.spilled_runs} runs on disk")
        sink = ClickHouseSink(connect(settings.clickhouse_dsn()), settings.database)
        applied = migrate(sink.client, settings.database)
        if applied:
            progress(f"migrations applied: {', '.join(applied)}")
        run_id = uuid.uuid4().hex[:12]
        topics = sorted(EVENT_TOPICS[source] for source in feed.sources)
        with broker_for(settings) as bootstrap:
            progress(f"broker ready at {bootstrap}")
            notifying: contextlib.AbstractContextManager[Notifier | None] = (
                contextlib.nullcontext() if alertmanager is None else notifier_thread(
                    bootstrap, alertmanager, resend_seconds=settings.notify_resend_seconds,
                    ttl_seconds=settings.notify_alert_ttl_seconds))
            with worker_process(settings, bootstrap, "replay") as worker, \
                    sink_thread(settings, bootstrap, sink) as runner, notifying as notifier:
                watch = PipelineWatch(settings, bootstrap, worker, runner, progress, stall, notifier)
                try:
                    clock = _produce_and_wait(settings, feed, rejects, bootstrap, watch, run_id,
                                               topics, as_of, on_event, progress)
                finally:
                    watch.close()
                rows = dict(runner.stats.rows)
    return ReplayResult(feed.tally, feed.count, clock, run_id, time.monotonic() - started, rows), sink


def _produce_and_wait(settings: Settings, feed: EventTimeImport, rejects: RejectSpool,
                      bootstrap: str, watch: PipelineWatch, run_id: str, topics: list[str],
                      as_of: datetime | None, on_event: Callable[[EncodedEvent], None] | None,
                      progress: Progress) -> datetime:
    """The merge into the producer, the end-of-input markers, then the wait until they have
    landed; returns the clock the replay ends at."""
    watch.start(feed.count, len(topics) * settings.partitions)
    producer = EventProducer(bootstrap, settings.delivery_timeout_seconds)
    rejects.send(producer)
    produced = 0
    for event in feed.in_order():
        producer.send_encoded(event)
        if on_event is not None:
            on_event(event)
        produced += 1
        if produced % CHECK_EVERY_EVENTS == 0:
            watch.tick(produced)
    clock = as_of or feed.latest
    assert clock is not None  # there was at least one event
    for topic in topics:
        producer.send_control(topic, range(settings.partitions),
                              {"run": run_id, "clock": clock.isoformat(), "final": True})
    failed = producer.flush()
    del producer  # librdkafka would keep reconnecting to the stopped broker otherwise
    if failed:
        raise BrokerUnavailable(f"{failed} events could not be delivered to the broker")
    progress(f"produced {produced:,} events and {rejects.count:,} rejects; waiting for the "
             "worker and the sink")
    expected = 3 * len(topics) * settings.partitions
    notified = 0 if watch.notifier is None else len(topics) * settings.partitions
    while watch.runner.landed(run_id) < expected or (
            watch.notifier is not None and watch.notifier.landed(run_id) < notified):
        watch.tick(produced)
        time.sleep(0.1)
    return clock
