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
from datetime import UTC, datetime, timedelta
from typing import Any

import faust
import orjson
from confluent_kafka import Producer
from prometheus_client import CollectorRegistry, start_http_server

from civicflow.settings import Settings
from producers.kafka import producer_config
from schemas.policy import load_policy
from schemas.topics import (
    ALERTS_TOPIC,
    CONTROL_HEADER,
    CONTROL_KEY,
    EVENT_TOPICS,
    INVALID_TOPIC,
    SNAPSHOTS_TOPIC,
)
from streams.calendar import WorkingDayCalendar
from streams.metrics import WorkerMetrics
from streams.processor import CaseProcessor, Mode, Output, Record

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


def _is_control(headers: Any, key: bytes | None) -> bool:
    if key == CONTROL_KEY:
        return True
    if not headers:
        return False
    items = headers.items() if isinstance(headers, dict) else headers
    return any(name == CONTROL_HEADER for name, _ in items)


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
    registry = CollectorRegistry()
    metrics = WorkerMetrics(registry)
    if settings.metrics_port:
        start_http_server(settings.metrics_port, addr=settings.metrics_host, registry=registry)
    processor = CaseProcessor(
        load_policy(settings.policy),
        WorkingDayCalendar.from_override_file(settings.holiday_file),
        TableStore(table),
        mode=mode,
        allowed_lateness=timedelta(seconds=settings.allowed_lateness_seconds),
        wall_clock=lambda: datetime.now(UTC),  # clock: the live worker's one wall-clock read
        observer=metrics,
    )
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
    producer = Producer(producer_config(bootstrap))
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

    def send(out: Output) -> None:
        for partition, key, value in out.snapshots:
            producer.produce(SNAPSHOTS_TOPIC, value, key, partition=partition)
        for partition, key, value in out.alerts:
            producer.produce(ALERTS_TOPIC, value, key, partition=partition)
        for key, value in out.rejects:
            producer.produce(INVALID_TOPIC, value, key)
        for topic, partition, payload in out.controls:
            forwarded = orjson.dumps({**orjson.loads(payload), "from": topic})
            for target in (SNAPSHOTS_TOPIC, ALERTS_TOPIC):
                producer.produce(target, forwarded, CONTROL_KEY, partition=partition,
                                 headers=[(CONTROL_HEADER, b"1")])
        # case state goes to the table's changelog through the same fast producer (Faust's own
        # producer cannot keep up with one write per touched case); Faust recovers from it
        changelog = table.changelog_topic.get_topic_name()
        for store_key, partition in processor.touched.items():
            producer.produce(changelog, processor.store[store_key], store_key.encode(),
                             partition=partition)
        processor.touched.clear()
        remaining = producer.flush(30)
        if remaining:
            raise RuntimeError(f"{remaining} worker outputs undelivered; not acknowledging")

    @app.agent(events)
    async def process(stream: faust.StreamT) -> None:
        async for batch in stream.take_events(  # type: ignore[attr-defined]
                settings.worker_batch,
                                              within=settings.worker_batch_seconds):
            ensure_rebuilt()
            records = [
                Record(
                    e.message.topic,
                    e.message.partition,
                    e.message.key,
                    e.message.value,
                    _is_control(e.message.headers, e.message.key),
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
            if processor.partitions:
                metrics.clock.set(max(p.clock for p in processor.partitions.values()).timestamp())
            metrics.batch_records.observe(len(records))
            report_lag()
            log.info("batch %d records: process %.3fs, send %.3fs", len(records),
                     processed - started, time.perf_counter() - processed)

    last_clock_report = [0.0]

    @app.timer(0.5)
    async def tick() -> None:
        ensure_rebuilt()
        if mode is Mode.LIVE:
            out = processor.tick()
            now = time.monotonic()
            if now - last_clock_report[0] >= settings.clock_report_seconds:
                out.controls.extend(processor.clock_markers())
                last_clock_report[0] = now
            send(out)
            if processor.partitions:
                metrics.clock.set(max(p.clock for p in processor.partitions.values()).timestamp())
        report_lag()

    return app


def run_worker(settings: Settings, mode: Mode) -> None:
    app = build_app(settings, mode)
    worker = faust.Worker(app, loglevel=os.environ.get("CIVICFLOW_WORKER_LOGLEVEL", "WARNING"), quiet=True)
    worker.execute_from_commandline()
