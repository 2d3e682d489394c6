"""The confluent-kafka producer: idempotent, acks=all, compressed; delivery errors counted."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable, Iterator

import orjson
from confluent_kafka import KafkaError, Message, Producer

from producers.base import Reject
from schemas.errors import BrokerUnavailable
from schemas.event import Event
from schemas.topics import CONTROL_HEADER, CONTROL_KEY, EVENT_TOPICS, INVALID_TOPIC

log = logging.getLogger(__name__)


def readable(messages: list[Message], offsets: dict[tuple[str, int], int]
             ) -> Iterator[tuple[str, int, Message]]:
    """The messages of a consume() call that carry data, as (topic, partition, message); records
    the next offset to commit per partition and logs real errors (not end-of-partition)."""
    for message in messages:
        error = message.error()
        if error is not None:
            if error.code() != KafkaError._PARTITION_EOF:
                log.warning("consume error: %s", error)
            continue
        topic, partition = str(message.topic()), int(message.partition() or 0)
        offsets[(topic, partition)] = int(message.offset() or 0) + 1
        yield topic, partition, message


def producer_config(bootstrap: str, delivery_timeout: float = 30.0) -> dict[str, object]:
    return {
        "message.timeout.ms": int(delivery_timeout * 1000),
        "bootstrap.servers": bootstrap,
        "enable.idempotence": True,
        "acks": "all",
        "compression.type": "lz4",
        "linger.ms": 20,
        "batch.num.messages": 10000,
        "queue.buffering.max.messages": 500000,
        "log_level": 4,  # librdkafka info lines (idle disconnects) are noise for a person
    }


class EventProducer:
    """Sends canonical events to `events.<source>` keyed by case id, rejects to the dead letter."""

    def __init__(self, bootstrap: str, delivery_timeout: float = 30.0) -> None:
        self._producer = Producer(producer_config(bootstrap, delivery_timeout))
        self.delivered = 0
        self.failed = 0
        self.errors: Counter[str] = Counter()

    def _on_delivery(self, err: KafkaError | None, _msg: object) -> None:
        if err is None:
            self.delivered += 1
        else:
            self.failed += 1
            self.errors[err.str()] += 1

    def _produce(self, topic: str, key: bytes, value: bytes, partition: int | None = None,
                 headers: list[tuple[str, bytes]] | None = None) -> None:
        extra: dict[str, object] = {}
        if partition is not None:
            extra["partition"] = partition
        if headers:
            extra["headers"] = headers
        while True:
            try:
                self._producer.produce(topic, value, key, on_delivery=self._on_delivery,
                                       **extra)  # type: ignore[arg-type]
                break
            except BufferError:
                self._producer.poll(0.05)
        self._producer.poll(0)

    def send_event(self, event: Event) -> None:
        self._produce(EVENT_TOPICS[event.source], event.case_id.encode(), event.to_json())

    def send_reject(self, reject: Reject) -> None:
        self._produce(INVALID_TOPIC, reject.source.value.encode(), reject.to_json())

    def send_control(self, topic: str, partitions: Iterable[int], payload: dict[str, object]) -> None:
        """An in-band control record on every given partition, after the data already sent."""
        value = orjson.dumps(payload)
        for partition in partitions:
            self._produce(topic, CONTROL_KEY, value, partition=partition,
                          headers=[(CONTROL_HEADER, b"1")])

    def flush(self, timeout: float = 120.0) -> int:
        """Wait for every delivery; returns the number of messages not delivered."""
        remaining = self._producer.flush(timeout)
        if remaining:
            raise BrokerUnavailable(
                f"{remaining} messages still undelivered after {timeout:.0f}s: is the broker up?"
            )
        return self.failed
