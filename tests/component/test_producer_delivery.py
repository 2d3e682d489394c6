"""Delivery accounting of the producer: reports come only for failures, so a message that
cannot be delivered must still be counted."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from confluent_kafka import KafkaError

from producers.kafka import FATAL_REPORT_WAIT, EventProducer
from schemas.errors import CivicflowError
from schemas.event import EncodedEvent
from tests.conftest import cn, ev


def test_undeliverable_events_are_counted_as_failed():
    producer = EventProducer("127.0.0.1:1", delivery_timeout=1.0)  # nothing listens there
    events = [EncodedEvent.of(ev(f"e{i}", "created", cn(2026, 10, 12, 9) + timedelta(minutes=i),
                                 case=f"grid:jn-grid:C{i}"))
              for i in range(1234)]  # more than one poll interval
    for event in events:
        producer.send_encoded(event)
    assert producer.flush(timeout=20) == len(events)
    assert sum(producer.errors.values()) == len(events)


def test_a_message_kafka_refuses_outright_is_one_clear_error():
    producer = EventProducer("127.0.0.1:1", delivery_timeout=1.0)
    with pytest.raises(CivicflowError, match="Kafka refused a message for events.invalid: .*too large"):
        producer.send("events.invalid", b"k", b"x" * 2_000_000)


class FailingClient:
    """A librdkafka producer in the state CI met after a broker restart: flush fails with a
    SystemError that carries no cause. `fatal_on_poll` makes the next poll report the fatal
    error to the error callback (as librdkafka may); purge reports every held message."""

    def __init__(self, producer: EventProducer, held: list[str], fatal_on_poll: bool) -> None:
        self.producer = producer
        self.held = held
        self.fatal_on_poll = fatal_on_poll

    def flush(self, timeout: float) -> int:
        raise SystemError("<built-in method flush of cimpl.Producer object> returned NULL "
                          "without setting an exception")

    def poll(self, timeout: float) -> int:
        if self.fatal_on_poll:
            self.producer._on_error(KafkaError(KafkaError._FATAL, "Unknown Producer Id", fatal=True))
        return 0

    def purge(self, in_queue: bool, in_flight: bool) -> None:
        for topic in self.held:
            self.producer._on_delivery(KafkaError(KafkaError._PURGE_QUEUE, "purged"),
                                       HeldMessage(topic))  # type: ignore[arg-type]
        self.held = []

    def __len__(self) -> int:
        return len(self.held)


class HeldMessage:
    def __init__(self, topic: str) -> None:
        self._topic = topic

    def topic(self) -> str:
        return self._topic


@pytest.mark.parametrize("fatal_on_poll", [True, False])
def test_a_client_failing_without_a_cause_counts_everything_it_held(fatal_on_poll):
    producer = EventProducer("127.0.0.1:1", delivery_timeout=1.0)
    held = ["events.grid"] * 37 + ["events.invalid"] * 5
    producer._producer = FailingClient(producer, held, fatal_on_poll)  # type: ignore[assignment]
    started = time.monotonic()
    assert producer.flush(timeout=5) == 42  # not raised: the import's accounting line is printed
    assert time.monotonic() - started < FATAL_REPORT_WAIT + 2
    assert (producer.failed_on("events.grid"), producer.failed_on("events.invalid")) == (37, 5)
    assert producer.fatal is not None
    if fatal_on_poll:
        assert "Unknown Producer Id" in producer.fatal
    else:
        assert "the Kafka client failed" in producer.fatal
    producer.send("events.grid", b"k", b"v")  # after a fatal error nothing more goes out
    assert producer.failed_on("events.grid") == 38
