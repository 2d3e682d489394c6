"""An alternative worker engine on confluent-kafka alone (`--engine kafka`, or
`CIVICFLOW_WORKER_ENGINE=kafka`).

Same `CaseProcessor`, same outputs and control records as the Faust worker; the difference is
the transport. Faust's per-message stream caps a worker at ~3,300 events/s on this machine
(bench/bench_faust.py); librdkafka hands over whole batches. Case state is kept in a dict and
written to a compacted changelog topic, restored for the partitions this worker is assigned;
offsets are committed only after every output and state write of a batch was acknowledged.
"""

from __future__ import annotations

import logging
import threading
import time

from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

from civicflow.embedded import create_topics
from civicflow.settings import Settings
from producers.kafka import EventProducer, readable
from schemas.topics import EVENT_TOPICS, is_control
from streams.processor import Mode, Output, Record
from streams.worker_common import build_processor, report_clock, send_output

log = logging.getLogger("civicflow.kafka_worker")
GROUP = "civicflow-worker-kafka"
CHANGELOG = f"{GROUP}-cases-changelog"


class KafkaWorker:
    def __init__(self, settings: Settings, mode: Mode) -> None:
        assert settings.bootstrap, "the worker needs a broker"
        self.settings = settings
        self.mode = mode
        self.bootstrap = settings.bootstrap
        self.store: dict[str, bytes] = {}
        self.processor, self.metrics = build_processor(settings, mode, self.store)
        self.producer = EventProducer(self.bootstrap)
        self.consumer = Consumer({
            "bootstrap.servers": self.bootstrap,
            "group.id": GROUP,
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "session.timeout.ms": int(settings.worker_session_timeout * 1000),
            "max.poll.interval.ms": 300_000,
            "fetch.max.bytes": 64 * 1024 * 1024,
            "log_level": 4,
        })
        self.assigned: set[tuple[str, int]] = set()
        self.offsets: dict[tuple[str, int], int] = {}
        self.stop = threading.Event()

    # ---- state ---------------------------------------------------------------------------

    def restore(self, partitions: set[int]) -> int:
        """Read the changelog partitions of newly assigned event partitions into the store."""
        reader = Consumer({"bootstrap.servers": self.bootstrap, "group.id": f"{GROUP}-restore",
                           "enable.auto.commit": False, "log_level": 4})
        restored = 0
        for partition in sorted(partitions):
            low, high = reader.get_watermark_offsets(TopicPartition(CHANGELOG, partition), timeout=10)
            if high <= low:
                continue
            reader.assign([TopicPartition(CHANGELOG, partition, OFFSET_BEGINNING)])
            position = low
            while position < high:
                for message in reader.consume(10_000, 1.0):
                    if message.error() is not None:
                        continue
                    position = max(position, int(message.offset() or 0) + 1)
                    key = (message.key() or b"").decode()
                    value = message.value()
                    if value is None:
                        self.store.pop(key, None)
                    else:
                        self.store[key] = value
                        restored += 1
        reader.close()
        return restored

    def on_assign(self, _consumer: Consumer, partitions: list[TopicPartition]) -> None:
        new = {(tp.topic, tp.partition) for tp in partitions} - self.assigned
        self.assigned |= new
        known = {p for _, p in self.assigned - new}
        restored = self.restore({p for _, p in new} - known)
        count = self.processor.rebuild(self.assigned)
        self.processor.touched.clear()
        log.info("assigned %s: %d state records restored, %d cases scheduled", sorted(new),
                 restored, count)

    def on_revoke(self, _consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self.commit()
        self.assigned -= {(tp.topic, tp.partition) for tp in partitions}

    # ---- processing ----------------------------------------------------------------------

    def send(self, out: Output) -> None:
        send_output(self.producer, out, self.processor, CHANGELOG)

    def commit(self) -> None:
        if self.offsets:
            self.consumer.commit(offsets=[TopicPartition(t, p, o) for (t, p), o in self.offsets.items()],
                                 asynchronous=False)
            self.offsets.clear()

    def run(self) -> None:
        create_topics(self.bootstrap, self.settings.partitions, compacted=(CHANGELOG,))
        self.consumer.subscribe(list(EVENT_TOPICS.values()), on_assign=self.on_assign,
                                on_revoke=self.on_revoke)
        last_tick = time.monotonic()
        try:
            while not self.stop.is_set():
                messages = self.consumer.consume(self.settings.worker_batch,
                                                 self.settings.worker_batch_seconds)
                records = [
                    Record(topic, partition, message.key(), message.value() or b"",
                           is_control(message.key()))
                    for topic, partition, message in readable(messages, self.offsets)
                ]
                started = time.perf_counter()
                out = self.processor.process(records) if records else Output()
                if self.mode is Mode.LIVE and time.monotonic() - last_tick >= 0.5:
                    out.extend(self.processor.tick())
                    last_tick = time.monotonic()
                if records or out.alerts or out.snapshots:
                    self.send(out)
                    self.commit()
                    self.metrics.batch_seconds.observe(time.perf_counter() - started)
                    self.metrics.batch_records.observe(len(records))
                report_clock(self.processor, self.metrics)
        finally:
            self.consumer.close()


def run_kafka_worker(settings: Settings, mode: Mode) -> None:
    worker = KafkaWorker(settings, mode)
    try:
        worker.run()
    except KeyboardInterrupt:
        worker.stop.set()
