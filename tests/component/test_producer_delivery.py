"""Delivery accounting of the producer: reports come only for failures, so a message that
cannot be delivered must still be counted."""

from __future__ import annotations

from datetime import timedelta

from producers.kafka import EventProducer
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
