"""The Faust worker: a thin shell that feeds raw record batches to `CaseProcessor`.

Outputs (snapshots, alerts, dead letters, forwarded control records) and the case-state writes
go through a confluent-kafka producer that is flushed before the batch is acknowledged, so
offsets are committed only after everything the batch caused is on the broker (at-least-once;
every output is idempotent downstream). Case state is a Faust table whose changelog partition
is the case's own input partition; the shell writes the changelog itself (Faust's own producer
cannot keep up with one write per touched case) and Faust recovers the table from it.

Nothing a record holds stops the worker: the processor turns a record it cannot handle into a
dead letter. An error that is not about one record (the broker refusing outputs for good, a
bug) ends the worker process with a non-zero exit, so a supervisor restarts it and the batch
is processed again: never a live process with a dead agent.
"""

from __future__ import annotations

import logging
import os
import sys
import time
import traceback
from collections.abc import Iterator, MutableMapping
from datetime import UTC, datetime, timedelta
from typing import Any

import faust
import orjson
from prometheus_client import CollectorRegistry, start_http_server

from civicflow.settings import Settings
from producers.kafka import EventProducer
from schemas.errors import BrokerUnavailable
from schemas.policy import load_policy
from schemas.topics import (
    ALERTS_TOPIC,
    CONTROL_HEADER,
    CONTROL_KEY,
    EVENT_TOPICS,
    INVALID_TOPIC,
    SNAPSHOTS_TOPIC,
    is_control,
)
from streams import faust_fixes
from streams.calendar import WorkingDayCalendar
from streams.metrics import WorkerMetrics
from streams.processor import CaseProcessor, Mode, Output, Record, tune_gc
from streams.shell import WorkerShell, futile_seeks, stalled_recovery

log = logging.getLogger("civicflow.worker")
APP_ID = "civicflow-worker"
# a table recovery with records left that received none for this long is nudged (sought again)
RECOVERY_STALL_SECONDS = 15.0
RECOVERY_CHECK_SECONDS = 5.0
# seeks in a row to the same offset before the worker gives up (exit 70, restarted)
RECOVERY_MAX_NUDGES = 4
# a partition whose committed offset stays unacknowledged (while later ones are) this long is
# sought back to it: Faust skipped that record (faust_fixes), so it is read again
HELD_BACK_SECONDS = 10.0
CHANGELOG_END_KEY = b"\x00end"
EXIT_WORKER_FAILED = 70
LIVE_CACHED_CASES = 20_000
REPLAY_CACHED_CASES = 100_000


class TableStore(MutableMapping[str, bytes]):
    """The processor's store view of the Faust table's local data (str keys, bytes values).
    It looks the table's store up on every access: Faust may swap it on a rebalance."""

    def __init__(self, table: Any) -> None:
        self._table = table

    @property
    def _data(self) -> Any:
        return self._table.data

    def __getitem__(self, key: str) -> bytes:
        return self._data[key.encode()]

    def get(self, key: str, default: Any = None) -> Any:
        return self._data.get(key.encode(), default)

    def __setitem__(self, key: str, value: bytes) -> None:
        self._data[key.encode()] = value

    def __delitem__(self, key: str) -> None:
        del self._data[key.encode()]

    def __iter__(self) -> Iterator[str]:
        for key in list(self._data.keys()):
            yield key.decode() if isinstance(key, bytes) else str(key)

    def __len__(self) -> int:
        return len(self._data)


class OutputSender:
    """Puts one call's outputs and state writes on the broker, and returns only once the broker
    acknowledged all of them. A delivery that failed raises: the batch is then not acknowledged."""

    def __init__(self, producer: EventProducer, changelog: str) -> None:
        self.producer = producer
        self.changelog = changelog

    def send(self, out: Output) -> None:
        producer = self.producer
        failed_before = producer.failed
        for partition, key, value in out.snapshots:
            producer.send(SNAPSHOTS_TOPIC, key, value, partition=partition)
        for partition, key, value in out.alerts:
            producer.send(ALERTS_TOPIC, key, value, partition=partition)
        for key, value in out.rejects:
            producer.send(INVALID_TOPIC, key, value)
        for topic, partition, payload in out.controls:
            forwarded = orjson.dumps({**orjson.loads(payload), "from": topic})
            for target in (SNAPSHOTS_TOPIC, ALERTS_TOPIC):
                producer.send(target, CONTROL_KEY, forwarded, partition=partition,
                              headers=[(CONTROL_HEADER, b"1")])
        written = set()
        for partition, key, value in out.state_writes:
            producer.send(self.changelog, key, value, partition=partition)
            written.add(partition)
        producer.flush(30)  # raises when anything is still undelivered
        if written:
            # Tansu (the embedded broker) reports a partition's end as the first offset of its
            # last record batch + 1, so a reader that stops at that end - Faust's table recovery
            # does - misses the rest of the last batch: state lost after a restart. A one-record
            # batch after the writes (a tombstone of a key no case has) makes the end the true one.
            for partition in written:
                producer.send(self.changelog, CHANGELOG_END_KEY, None, partition=partition)
            producer.flush(30)
        if producer.failed > failed_before:
            raise BrokerUnavailable(
                f"{producer.failed - failed_before} worker outputs failed ({dict(producer.errors)}); "
                "not acknowledging the batch")


def offset_ranges(batch: Any) -> str:
    """Each partition's first and last offset in a batch, for the INFO log."""
    ranges: dict[tuple[str, int], list[int]] = {}
    for event in batch:
        message = event.message
        seen = ranges.setdefault((message.topic, message.partition), [message.offset, message.offset])
        seen[1] = message.offset
    return ", ".join(f"{topic.removeprefix('events.')}/{partition} {first}-{last}"
                     for (topic, partition), (first, last) in sorted(ranges.items()))


def build_processor(settings: Settings, mode: Mode, store: MutableMapping[str, bytes]
                    ) -> tuple[CaseProcessor, WorkerMetrics]:
    """The case processor with its metrics (served on the metrics port when one is set)."""
    registry = CollectorRegistry()
    calendar = WorkingDayCalendar.from_override_file(settings.holiday_file)
    calendar.prepare(datetime.now(UTC).date() + timedelta(days=400))  # clock: start-up, not the first batch
    metrics = WorkerMetrics(registry, calendar=calendar)
    if settings.metrics_port:
        start_http_server(settings.metrics_port, addr=settings.metrics_host, registry=registry)
    processor = CaseProcessor(
        load_policy(settings.policy),
        calendar,
        store,
        mode=mode,
        allowed_lateness=timedelta(seconds=settings.allowed_lateness_seconds),
        wall_clock=lambda: datetime.now(UTC),  # clock: the live worker's one wall-clock read
        observer=metrics,
        archive_after=timedelta(days=settings.case_archive_days),
        working_set=settings.worker_cached_cases or (
            LIVE_CACHED_CASES if mode is Mode.LIVE else REPLAY_CACHED_CASES),
    )
    return processor, metrics


def fail(reason: str) -> None:
    """End the worker process: a supervisor (or `civicflow replay`) sees the exit code."""
    log.critical("the worker stops: %s", reason)
    sys.stderr.write(f"civicflow worker: {reason}\n")
    sys.stderr.flush()
    logging.shutdown()
    os._exit(EXIT_WORKER_FAILED)


def build_app(settings: Settings, mode: Mode) -> faust.App:
    faust_fixes.install()
    bootstrap = settings.bootstrap
    assert bootstrap, "the worker needs a broker"
    app = faust.App(
        APP_ID,
        broker=f"kafka://{bootstrap}",
        store="memory://",
        datadir=str((settings.var_dir / "faust").resolve()),
        topic_partitions=settings.partitions,
        topic_allow_declare=True,
        consumer_auto_offset_reset="earliest",
        key_serializer="raw",
        value_serializer="raw",
        web_enabled=False,
        broker_commit_every=10_000,
        broker_commit_interval=1.0,
        stream_wait_empty=False,
        table_cleanup_interval=3600.0,
        # Tansu holds a join for the whole rebalance timeout: keep it short so a worker
        # (re)joins in seconds, not half a minute
        broker_rebalance_timeout=settings.worker_rebalance_timeout,
        broker_session_timeout=settings.worker_session_timeout,
        broker_heartbeat_interval=1.0,
        # big batches: state is written once per case per batch, so fewer batches, less work
        stream_buffer_maxsize=max(65_536, 2 * (settings.worker_batch or 50_000)),
        broker_max_poll_records=20_000,
        table_standby_replicas=settings.worker_standby_replicas,
    )
    live = mode is Mode.LIVE
    batch_size = settings.worker_batch or (10_000 if live else 50_000)
    batch_seconds = settings.worker_batch_seconds or (0.2 if live else 2.0)
    # live: an alert fires at the first tick after its instant
    tick_seconds = settings.worker_tick_seconds or (0.1 if live else 0.5)
    events = app.topic(*EVENT_TOPICS.values(), key_type=bytes, value_type=bytes,
                       key_serializer="raw", value_serializer="raw")
    table = app.Table("cases", partitions=settings.partitions, key_type=bytes, value_type=bytes)
    processor, metrics = build_processor(settings, mode, TableStore(table))
    positions: dict[tuple[str, int], int] = {}
    sender = OutputSender(EventProducer(bootstrap), table.changelog_topic.get_topic_name())

    def event_partitions(tps: Any) -> set[tuple[str, int]]:
        return {(tp.topic, tp.partition) for tp in tps if tp.topic in EVENT_TOPICS.values()}

    shell = WorkerShell(processor, sender.send,
                        assigned=lambda: event_partitions(app.assignor.assigned_actives()),
                        owned=lambda: event_partitions(app.consumer.assignment()))

    @table.on_recover
    async def table_recovered() -> None:
        shell.recovered()

    def report_lag() -> None:
        lag: dict[str, int] = dict.fromkeys(EVENT_TOPICS.values(), 0)
        for tp in app.assignor.assigned_actives():
            if tp.topic not in lag:
                continue
            highwater = app.consumer.highwater(tp)
            if highwater is not None and highwater >= 0:
                lag[tp.topic] += max(0, highwater - positions.get((tp.topic, tp.partition), 0))
        for topic, value in lag.items():
            metrics.lag.labels(topic).set(value)

    def report_clock() -> None:
        clock = processor.clock()
        if clock is not None:
            metrics.set_clock(clock)

    def ensure_rebuilt() -> None:
        started = time.monotonic()
        rebuilt = shell.ensure_rebuilt(app.in_recovery)
        if rebuilt is not None:
            log.info("deadline heaps rebuilt: %d cases on %d partitions in %.1fs", *rebuilt,
                     time.monotonic() - started)

    @app.agent(events)
    async def process(stream: faust.StreamT) -> None:
        try:
            async for batch in stream.take_events(  # type: ignore[attr-defined]
                    batch_size, within=batch_seconds):
                # not waiting here for a rebalance to end: that stalled a restarted worker in CI
                ensure_rebuilt()
                records = []
                for e in batch:
                    message = e.message
                    records.append(Record(message.topic, message.partition, message.key,
                                          message.value, is_control(message.key, message.headers)))
                    positions[(message.topic, message.partition)] = message.offset + 1
                started = time.perf_counter()
                left = shell.process(records)
                if left:
                    for index in left:
                        # never counted as acknowledged (take_events acks every event it gave):
                        # Faust skips a message already marked acked
                        batch[index].message.acked = True
                    log.info("batch: %d records of partitions no longer assigned left to their "
                             "new owner", len(left))
                metrics.batch_seconds.observe(time.perf_counter() - started)
                metrics.batch_records.observe(len(records))
                report_clock()
                report_lag()
                if log.isEnabledFor(logging.INFO):
                    log.info("batch %d records (%s): processed and sent in %.3fs", len(records),
                             offset_ranges(batch), time.perf_counter() - started)
        except Exception as exc:  # noqa: BLE001 - anything here means the batch cannot complete
            log.error("batch failed:\n%s", traceback.format_exc())
            fail(f"{type(exc).__name__}: {exc}")

    sought_to: dict[Any, int] = {}  # the recovery's stalled partitions: last seek, and how
    futile: dict[Any, int] = {}  # many in a row went to that same offset

    @app.timer(RECOVERY_CHECK_SECONDS)
    async def recovery_watchdog() -> None:
        """A recovery that stopped receiving records is sought to where it is again (which
        resets Faust's read offset for the partition) and the partition resumed."""
        if not app.in_recovery:
            futile.clear()
            sought_to.clear()
            return
        recovery = app.tables.recovery  # type: ignore[attr-defined]
        started = recovery._recovery_started_at
        if started is None:
            return
        tps = stalled_recovery(recovery.active_remaining(), recovery._active_events_received_at,
                               started, time.monotonic(), RECOVERY_STALL_SECONDS)
        if not tps:
            return
        offsets = {tp: max(0, recovery.active_offsets[tp] + 1) for tp in tps}
        stuck = futile_seeks(offsets, sought_to, futile, RECOVERY_MAX_NUDGES)
        if stuck:
            fail(f"table recovery of {stuck} received nothing after {RECOVERY_MAX_NUDGES} seeks: "
                 "restart the worker (a supervisor does); if it happens again, check the "
                 "broker's changelog partitions")
        log.warning("table recovery received nothing for %.0fs from %s: seeking them again to %s",
                    RECOVERY_STALL_SECONDS, sorted(tps), sorted(offsets.values()))
        try:
            await app.consumer.seek_wait(offsets)
            app.consumer.resume_partitions(tps)
        except Exception as exc:  # noqa: BLE001 - a rebalance took them away: tried again later
            log.warning("seeking the recovery of %s failed (%r): tried again in %.0fs",
                        sorted(tps), exc, RECOVERY_CHECK_SECONDS)
            return
        for tp in tps:  # counted from now: the next nudge comes only if this one did not help
            recovery._active_events_received_at[tp] = time.monotonic()

    held_since: dict[Any, float] = {}

    async def reread_held_back() -> None:
        consumer = app.consumer
        committed_offsets = consumer._committed_offset  # type: ignore[attr-defined]
        heads = {}
        unknown = []
        for tp in app.assignor.assigned_actives():
            if tp.topic not in EVENT_TOPICS.values():
                continue
            acked = consumer._acked.get(tp)  # type: ignore[attr-defined]
            if not acked:
                continue
            committed = committed_offsets.get(tp)
            if committed is None:
                unknown.append(tp)  # never committed: its commits wait for its first offset
            elif (committed not in consumer._acked_index.get(tp, ())  # type: ignore[attr-defined]
                  and faust_fixes.head_missing(acked, committed)):  # min() only when held
                heads[tp] = (committed, min(acked))
        due = faust_fixes.held_back(heads, held_since, time.monotonic(), HELD_BACK_SECONDS)
        if not unknown and not due:
            return
        try:
            earliest = await consumer.earliest_offsets(*unknown, *due)
        except Exception as exc:  # noqa: BLE001 - asked again at the next tick
            log.warning("earliest offsets of %s not read (%r): asked again", unknown + due, exc)
            return
        if app.rebalancing:
            return
        lifted = set(faust_fixes.lift_heads(committed_offsets, earliest))
        for tp in due:
            committed, lowest = heads[tp]
            held_since.pop(tp, None)
            if tp in lifted:
                log.warning("%s/%d: offsets %d-%d are no longer on the broker; committing from %d",
                            tp.topic, tp.partition, committed, earliest[tp] - 1, earliest[tp])
                continue
            log.warning("%s/%d: offsets %d-%d were skipped by Faust while partitions moved; "
                        "reading them again", tp.topic, tp.partition, committed, lowest - 1)
            await consumer.seek(tp, committed)

    last_clock_report = [0.0]

    @app.timer(tick_seconds)
    async def tick() -> None:
        if app.rebalancing or app.in_recovery:
            return
        try:
            ensure_rebuilt()
            await reread_held_back()
            if mode is Mode.LIVE:
                out = processor.tick()
                now = time.monotonic()
                if now - last_clock_report[0] >= settings.clock_report_seconds:
                    out.controls.extend(processor.clock_markers())
                    last_clock_report[0] = now
                sender.send(out)
                report_clock()
            report_lag()
        except Exception as exc:  # noqa: BLE001 - as in the agent
            log.error("tick failed:\n%s", traceback.format_exc())
            fail(f"{type(exc).__name__}: {exc}")

    return app


def run_worker(settings: Settings, mode: Mode) -> None:
    tune_gc()
    app = build_app(settings, mode)
    worker = faust.Worker(app, loglevel=os.environ.get("CIVICFLOW_WORKER_LOGLEVEL", "WARNING"), quiet=True)
    worker.execute_from_commandline()
