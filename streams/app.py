"""The Faust worker: a thin shell that feeds raw record batches to `CaseProcessor`.

Outputs (snapshots, alerts, dead letters, forwarded control records) go through a
confluent-kafka producer that is flushed before the batch is acknowledged, so offsets are
committed only after everything the batch caused is on the broker (at-least-once; every
output is idempotent downstream). Case state is a Faust table whose changelog partition is
set explicitly from the case's own input partition.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterator, MutableMapping
from typing import Any

import faust

from civicflow.settings import Settings
from producers.kafka import EventProducer
from schemas.topics import EVENT_TOPICS, is_control
from streams.processor import Mode, Output, Record
from streams.worker_common import build_processor, report_clock, send_output

log = logging.getLogger("civicflow.worker")
APP_ID = "civicflow-worker"


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

    def __setitem__(self, key: str, value: bytes) -> None:
        self._data[key.encode()] = value

    def __delitem__(self, key: str) -> None:
        del self._data[key.encode()]

    def __iter__(self) -> Iterator[str]:
        for key in list(self._data.keys()):
            yield key.decode() if isinstance(key, bytes) else str(key)

    def __len__(self) -> int:
        return len(self._data)


def build_app(settings: Settings, mode: Mode) -> faust.App:
    bootstrap = settings.bootstrap
    assert bootstrap, "the worker needs a broker"
    app = faust.App(
        APP_ID,
        broker=f"kafka://{bootstrap}",
        store="memory://",
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
        stream_buffer_maxsize=65_536,
        broker_max_poll_records=20_000,
    )
    events = app.topic(*EVENT_TOPICS.values(), key_type=bytes, value_type=bytes,
                       key_serializer="raw", value_serializer="raw")
    table = app.Table("cases", partitions=settings.partitions, key_type=bytes, value_type=bytes)
    processor, metrics = build_processor(settings, mode, TableStore(table))
    positions: dict[tuple[str, int], int] = {}

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
    producer = EventProducer(bootstrap)
    known: set[tuple[str, int]] = set()

    def ensure_rebuilt() -> None:
        if app.in_recovery:
            return
        assigned = {
            (tp.topic, tp.partition)
            for tp in app.assignor.assigned_actives()
            if tp.topic in EVENT_TOPICS.values()
        }
        if assigned != known:
            count = processor.rebuild(assigned)
            known.clear()
            known.update(assigned)
            processor.touched.clear()
            log.info("deadline heaps rebuilt: %d cases on %d partitions", count, len(assigned))

    # case state goes to the table's changelog through the same fast producer (Faust's own
    # producer cannot keep up with one write per touched case); Faust recovers from it
    changelog = table.changelog_topic.get_topic_name()

    def send(out: Output) -> None:
        send_output(producer, out, processor, changelog)

    @app.agent(events)
    async def process(stream: faust.StreamT) -> None:
        async for batch in stream.take_events(  # type: ignore[attr-defined]
                settings.worker_batch, within=settings.worker_batch_seconds):
            # not waiting here for a rebalance to end: that stalled a restarted worker in CI
            ensure_rebuilt()
            records = [
                Record(
                    e.message.topic,
                    e.message.partition,
                    e.message.key,
                    e.message.value,
                    is_control(e.message.key, e.message.headers),
                )
                for e in batch
            ]
            for e in batch:
                positions[(e.message.topic, e.message.partition)] = e.message.offset + 1
            started = time.perf_counter()
            out = processor.process(records)
            processed = time.perf_counter()
            send(out)
            metrics.batch_seconds.observe(time.perf_counter() - started)
            report_clock(processor, metrics)
            metrics.batch_records.observe(len(records))
            report_lag()
            log.info("batch %d records: process %.3fs, send %.3fs", len(records),
                     processed - started, time.perf_counter() - processed)

    last_clock_report = [0.0]

    @app.timer(0.5)
    async def tick() -> None:
        if app.rebalancing or app.in_recovery:
            return
        ensure_rebuilt()
        if mode is Mode.LIVE:
            out = processor.tick()
            now = time.monotonic()
            if now - last_clock_report[0] >= settings.clock_report_seconds:
                out.controls.extend(processor.clock_markers())
                last_clock_report[0] = now
            send(out)
            report_clock(processor, metrics)
        report_lag()

    return app


def run_worker(settings: Settings, mode: Mode) -> None:
    app = build_app(settings, mode)
    worker = faust.Worker(app, loglevel=os.environ.get("CIVICFLOW_WORKER_LOGLEVEL", "WARNING"), quiet=True)
    worker.execute_from_commandline()
