"""What both worker engines (Faust and confluent-kafka) share: the processor they build from
settings, and how a batch's outputs and state writes reach Kafka."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import orjson
from prometheus_client import CollectorRegistry, start_http_server

from civicflow.settings import Settings
from producers.kafka import EventProducer
from schemas.errors import BrokerUnavailable
from schemas.policy import load_policy
from schemas.topics import ALERTS_TOPIC, CONTROL_HEADER, CONTROL_KEY, INVALID_TOPIC, SNAPSHOTS_TOPIC
from streams.calendar import WorkingDayCalendar
from streams.metrics import WorkerMetrics
from streams.processor import CaseProcessor, CaseStore, Mode, Output


def build_processor(settings: Settings, mode: Mode, store: CaseStore
                    ) -> tuple[CaseProcessor, WorkerMetrics]:
    """The case processor with its metrics (served on the metrics port when one is set)."""
    registry = CollectorRegistry()
    metrics = WorkerMetrics(registry)
    if settings.metrics_port:
        start_http_server(settings.metrics_port, addr=settings.metrics_host, registry=registry)
    processor = CaseProcessor(
        load_policy(settings.policy),
        WorkingDayCalendar.from_override_file(settings.holiday_file),
        store,
        mode=mode,
        allowed_lateness=timedelta(seconds=settings.allowed_lateness_seconds),
        wall_clock=lambda: datetime.now(UTC),  # clock: the live worker's one wall-clock read
        observer=metrics,
    )
    return processor, metrics


CHANGELOG_END_KEY = b"\x00end"


def send_output(producer: EventProducer, out: Output, processor: CaseProcessor,
                changelog: str) -> None:
    """Snapshots, alerts, dead letters, forwarded control records and the case-state writes of
    one batch; returns only once the broker acknowledged all of them (offsets come after).
    A delivery that failed raises: the batch is then not acknowledged, and is processed again."""
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
    written = set(processor.touched.values())
    for store_key, partition in processor.touched.items():
        producer.send(changelog, store_key.encode(), processor.store[store_key], partition=partition)
    processor.touched.clear()
    producer.flush(30)  # raises when anything is still undelivered
    if written:
        # Tansu (the embedded broker) reports a partition's end as the first offset of its last
        # record batch + 1, so a reader that stops at that end - Faust's table recovery does -
        # misses the rest of the last batch: state lost after a restart. A one-record batch
        # after the writes (a tombstone of a key no case has) makes the reported end the true one.
        for partition in written:
            producer.send(changelog, CHANGELOG_END_KEY, None, partition=partition)
        producer.flush(30)
    if producer.failed > failed_before:
        raise BrokerUnavailable(
            f"{producer.failed - failed_before} worker outputs failed ({dict(producer.errors)}); "
            "not acknowledging the batch")


def report_clock(processor: CaseProcessor, metrics: WorkerMetrics) -> None:
    if processor.partitions:
        metrics.clock.set(max(p.clock for p in processor.partitions.values()).timestamp())
