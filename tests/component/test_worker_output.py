"""Worker outputs against the real embedded broker: a reader that stops at the reported end of
a changelog partition (as Faust's table recovery does) sees every state write."""

from __future__ import annotations

import pytest
from confluent_kafka import Consumer, KafkaError, TopicPartition

from civicflow.embedded import create_topics, embedded_broker
from producers.kafka import EventProducer
from streams.app import OutputSender
from streams.processor import Output

pytestmark = pytest.mark.component
CHANGELOG = "test-cases-changelog"


def read_to(bootstrap: str, partition: int, stop_at_reported_end: bool) -> dict[bytes, bytes | None]:
    reader = Consumer({"bootstrap.servers": bootstrap, "group.id": "reader",
                       "enable.partition.eof": True, "log_level": 4})
    _, end = reader.get_watermark_offsets(TopicPartition(CHANGELOG, partition), timeout=10)
    reader.assign([TopicPartition(CHANGELOG, partition, 0)])
    latest: dict[bytes, bytes | None] = {}
    while True:
        message = reader.poll(5)
        if message is None or (message.error() and message.error().code() == KafkaError._PARTITION_EOF):
            break
        if stop_at_reported_end and message.offset() >= end:
            break
        latest[message.key()] = message.value()
    reader.close()
    return latest


def test_a_reader_stopping_at_the_reported_end_sees_every_state_write(tmp_path):
    with embedded_broker(tmp_path, 2) as bootstrap:
        create_topics(bootstrap, 2, compacted=(CHANGELOG,))
        sender = OutputSender(EventProducer(bootstrap), CHANGELOG)
        for batch in range(2):  # two worker batches, 40 and 25 cases per partition
            out = Output()
            for partition, cases in ((0, 40), (1, 25)):
                for i in range(cases):
                    out.state_writes.append((partition, f"case-{partition}-{i}".encode(),
                                             f"state {batch}".encode()))
            sender.send(out)
        for partition, cases in ((0, 40), (1, 25)):
            whole = read_to(bootstrap, partition, stop_at_reported_end=False)
            recovered = read_to(bootstrap, partition, stop_at_reported_end=True)
            assert recovered == whole
            states = {k: v for k, v in recovered.items() if v is not None}
            assert len(states) == cases and set(states.values()) == {b"state 1"}
