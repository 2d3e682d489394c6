"""Delivery accounting of the producer: reports come only for failures, so a message that
cannot be delivered must still be counted."""

from __future__ import annotations

from datetime import timedelta

import pytest

from producers.kafka import EventProducer
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
