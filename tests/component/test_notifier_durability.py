"""The notifier against a real broker (Tansu) and an Alertmanager stand-in that can refuse or
be down: offsets move only after Alertmanager accepted, bad records become dead letters with
their reason, and the saved active set is read back to its true end."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime

import orjson
import pytest
from confluent_kafka import Consumer, TopicPartition

from civicflow.embedded import create_topics, embedded_broker
from producers.kafka import EventProducer
from schemas.topics import ALERTS_TOPIC, INVALID_TOPIC
from sinks.notifier import (
    ACTIVE_TOPIC,
    AlertmanagerRefused,
    AlertmanagerUnavailable,
    Notifier,
)
from tests.alert_records import end, fire

pytestmark = pytest.mark.component
T0 = datetime(2026, 10, 3, 16, 0, tzinfo=UTC)


class FakeAlertmanager:
    def __init__(self) -> None:
        self.down = False
        self.received: list[dict] = []
        self.refuse_case: str | None = None

    def post(self, alerts: list[dict]) -> None:
        if self.down:
            raise AlertmanagerUnavailable("connection refused")
        if any(a["labels"]["case_id"] == self.refuse_case for a in alerts):
            raise AlertmanagerRefused("Alertmanager refused the alerts (400): bad label")
        self.received.extend(alerts)

    def last(self, case_id: str) -> dict | None:
        found = [a for a in self.received if a["labels"]["case_id"] == case_id]
        return found[-1] if found else None


@pytest.fixture(scope="module")
def broker(tmp_path_factory):
    with embedded_broker(tmp_path_factory.mktemp("notifybroker"), 2) as bootstrap:
        create_topics(bootstrap, 2, compacted=(ACTIVE_TOPIC,))
        yield bootstrap


def produce(bootstrap: str, *records: bytes | object, key: bytes = b"k") -> None:
    producer = EventProducer(bootstrap)
    for record in records:
        value = record if isinstance(record, bytes) else record.to_json()  # type: ignore[attr-defined]
        producer.send(ALERTS_TOPIC, key, value, partition=0)
    producer.flush()
    del producer


def committed(bootstrap: str, group: str) -> int:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group})
    try:
        (tp,) = consumer.committed([TopicPartition(ALERTS_TOPIC, 0)], timeout=10)
        return tp.offset
    finally:
        consumer.close()


def wait(condition, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)


def test_offsets_wait_for_alertmanager_and_bad_records_are_dead_letters(broker):
    alertmanager = FakeAlertmanager()
    group, topic = "g-notify-durable", "notify.active.durable"
    notifier = Notifier(broker, alertmanager, group_id=group, active_topic=topic)  # type: ignore[arg-type]
    red = fire("grid:jn-grid:R", "red", T0)
    refused = fire("grid:jn-grid:X", "red", T0)
    alertmanager.refuse_case = "grid:jn-grid:X"
    produce(broker, b"not an alert", red, refused)
    thread = threading.Thread(target=notifier.run, daemon=True)
    thread.start()
    try:
        wait(lambda: alertmanager.last("grid:jn-grid:R") is not None)
        # the three records are offsets 0..2 of the fresh partition (Tansu's reported end offset
        # would say 1: the first offset of its last batch + 1)
        wait(lambda: committed(broker, group) == 3)
        assert notifier.health()[0] == 200
        # Alertmanager down: the end is held, its offset not committed, health says why
        alertmanager.down = True
        before = committed(broker, group)
        produce(broker, end(red, T0.replace(hour=18)))
        wait(lambda: notifier.health()[0] == 503)
        time.sleep(1.5)
        assert committed(broker, group) == before
        assert notifier.health()[1]["status"] == "alertmanager unreachable"
        alertmanager.down = False
        wait(lambda: alertmanager.last("grid:jn-grid:R")["endsAt"] == "2026-10-03T18:00:00+00:00")
        wait(lambda: committed(broker, group) == before + 1)
    finally:
        notifier.stop_event.set()
        thread.join(20)
    assert notifier.error is None
    assert alertmanager.last("grid:jn-grid:X") is None
    reasons = dead_letters(broker)
    assert any(r.startswith("alerts.sla record is no alert") for r in reasons), reasons
    assert any("refused the alerts (400)" in r for r in reasons), reasons


def dead_letters(bootstrap: str) -> list[str]:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "probe-dl",
                         "auto.offset.reset": "earliest"})
    partitions = consumer.list_topics(INVALID_TOPIC, timeout=10).topics[INVALID_TOPIC].partitions
    consumer.assign([TopicPartition(INVALID_TOPIC, p, 0) for p in partitions])
    reasons: list[str] = []
    deadline = time.monotonic() + 10
    while len(reasons) < 2 and time.monotonic() < deadline:
        for message in consumer.consume(100, timeout=0.2):
            if message.error() is None:
                reasons.append(orjson.loads(message.value())["reason"])
    consumer.close()
    return reasons


def test_the_active_set_is_read_back_to_its_true_end(broker):
    """Fifty saved alerts written as one record batch: the restore sees every one, whatever end
    offset the broker reports (Tansu reports the first offset of the last batch + 1)."""
    topic = "notify.active.restore"
    saved = [fire(f"grid:jn-grid:S{i}", "yellow", T0) for i in range(50)]
    producer = EventProducer(broker)
    for alert in saved:
        producer.send(topic, alert.alert_id.encode(), alert.to_json(), partition=0)
    ended = saved[7]
    producer.send(topic, ended.alert_id.encode(), None, partition=0)  # ended: a tombstone
    producer.flush()
    del producer
    notifier = Notifier(broker, FakeAlertmanager(), active_topic=topic)  # type: ignore[arg-type]
    notifier.ensure_active_topic()
    assert notifier.restore() == 49
    assert set(notifier.active.active) == {a.alert_id for a in saved} - {ended.alert_id}
