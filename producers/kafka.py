"""The confluent-kafka producer: idempotent, acks=all, compressed; delivery errors counted."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable, Iterator

import orjson
from confluent_kafka import KafkaError, KafkaException, Message, Producer

from producers.base import Reject
from schemas.errors import BrokerUnavailable, CivicflowError
from schemas.event import EncodedEvent, Event
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
        # what waits for the broker is bounded in bytes too (the default is 1 GB): a replay
        # producing faster than the broker takes it must not grow with its input
        "queue.buffering.max.kbytes": 32 * 1024,
        "log_level": 4,  # librdkafka info lines (idle disconnects) are noise for a person
    }


# how many produce() calls between two poll(0)s: delivery reports only come for failures
# (`delivery.report.only.error`), so polling each message would only cost time
POLL_EVERY = 1000


class EventProducer:
    """Sends canonical events to `events.<source>` keyed by case id, rejects to the dead letter.

    librdkafka reports only failed deliveries (a Python callback per delivered message halved
    the produce rate): a message is delivered when `flush` returns with nothing undelivered
    and no failure was reported for it."""

    def __init__(self, bootstrap: str, delivery_timeout: float = 30.0) -> None:
        config = producer_config(bootstrap, delivery_timeout)
        config.update({"delivery.report.only.error": True, "on_delivery": self._on_delivery})
        self._producer = Producer(config)
        self._unpolled = 0
        self.failed = 0
        self.errors: Counter[str] = Counter()

    def _on_delivery(self, err: KafkaError | None, _msg: object) -> None:
        if err is not None:
            self.failed += 1
            self.errors[err.str()] += 1

    def send(self, topic: str, key: bytes, value: bytes | None, partition: int | None = None,
             headers: list[tuple[str, bytes]] | None = None) -> None:
        extra: dict[str, object] = {}
        if partition is not None:
            extra["partition"] = partition
        if headers:
            extra["headers"] = headers
        while True:
            try:
                self._producer.produce(topic, value, key, **extra)  # type: ignore[arg-type]
                break
            except BufferError:
                self._producer.poll(0.05)
            except KafkaException as exc:  # e.g. MSG_SIZE_TOO_LARGE: refused before sending
                raise CivicflowError(f"Kafka refused a message for {topic}: {exc.args[0].str()}; "
                                     "nothing after it was sent") from exc
        self._unpolled += 1
        if self._unpolled >= POLL_EVERY:
            self._unpolled = 0
            self._producer.poll(0)

    def send_event(self, event: Event) -> None:
        self.send(EVENT_TOPICS[event.source], event.case_id.encode(), event.to_json())

    def send_encoded(self, event: EncodedEvent) -> None:
        self.send(EVENT_TOPICS[event.source], event.case_id.encode(), event.payload)

    def send_reject(self, reject: Reject) -> None:
        self.send(INVALID_TOPIC, reject.source.value.encode(), reject.to_json())

    def send_control(self, topic: str, partitions: Iterable[int], payload: dict[str, object]) -> None:
        """An in-band control record on every given partition, after the data already sent."""
        value = orjson.dumps(payload)
        for partition in partitions:
            self.send(topic, CONTROL_KEY, value, partition=partition,
                          headers=[(CONTROL_HEADER, b"1")])

    def flush(self, timeout: float = 120.0) -> int:
        """Wait for every delivery; returns the number of messages not delivered."""
        remaining = self._producer.flush(timeout)
        if remaining:
            raise BrokerUnavailable(
                f"{remaining} messages still undelivered after {timeout:.0f}s: is the broker up?"
            )
        return self.failed
