"""The embedded broker (Tansu with its schema registry) refuses non-canonical records on events.*.

What Tansu does, as found by running it: a `TOPIC.json` in the registry whose `properties.value`
is a JSON Schema makes the broker parse and validate every record value produced to TOPIC; a
record that is not JSON or does not match fails with INVALID_RECORD, and so does every other
record of its batch. Topics without a file take anything.
"""

from __future__ import annotations

import io
import time
import zlib
from pathlib import Path

import orjson
import pytest
from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition

from civicflow.embedded import embedded_broker
from producers.grid import GridAdapter
from producers.ingest import ingest_files
from producers.kafka import EventProducer
from schemas.event import Event

pytestmark = pytest.mark.component
GOOD_LINE = {"事件ID": "E1", "工单编号": "WG1", "事件类型": "上报", "发生时间": "2026-10-03 09:15:00",
             "网格编码": "370102001001003", "事项小类": "垃圾堆放"}


@pytest.fixture(scope="module")
def broker(tmp_path_factory):
    with embedded_broker(tmp_path_factory.mktemp("validating"), 2, validate_events=True) as bootstrap:
        yield bootstrap


def canonical(event_id: str) -> Event:
    (event,) = GridAdapter().parse(io.BytesIO(orjson.dumps({**GOOD_LINE, "事件ID": event_id})), "t")
    assert isinstance(event, Event)
    return event


def produce(bootstrap: str, records: list[tuple[str, bytes, bytes]], partition: int = 0,
            linger_ms: int = 0) -> list[KafkaError | None]:
    """Each record's delivery outcome (None: stored). Not idempotent: see the README on why a
    refused record breaks an idempotent producer's sequence on Tansu."""
    outcomes: dict[int, KafkaError | None] = {}
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": linger_ms,
                         "enable.idempotence": False, "message.timeout.ms": 15000})
    for index, (topic, key, value) in enumerate(records):
        producer.produce(topic, value, key, partition=partition,
                         on_delivery=lambda err, _msg, index=index: outcomes.__setitem__(index, err))
        if not linger_ms:
            producer.flush(20)
    producer.flush(20)
    return [outcomes[index] for index in range(len(records))]


def read_all(bootstrap: str, topic: str, partitions: int = 2) -> list[bytes]:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"read-{time.monotonic()}",
                         "enable.auto.commit": False, "enable.partition.eof": True})
    consumer.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
    values, ended = [], set()
    deadline = time.monotonic() + 20
    while len(ended) < partitions and time.monotonic() < deadline:
        for message in consumer.consume(100, 0.5):
            if message.error() is None:
                values.append(message.value())
            elif message.error().code() == KafkaError._PARTITION_EOF:
                ended.add(message.partition())
    consumer.close()
    return values


def test_canonical_events_pass_and_bad_records_get_an_error(broker):
    good = canonical("E-good").to_json()
    control = orjson.dumps({"run": "r1", "clock": "2026-10-04T00:00:00+08:00", "final": True})
    bad_type = orjson.dumps({**orjson.loads(good), "type": "flew", "event_id": "bad-type"})
    with_phone = orjson.dumps({**orjson.loads(canonical("E-phone").to_json()), "phone": "13800138000"})
    naive_time = orjson.dumps({**orjson.loads(canonical("E-naive").to_json()),
                               "occurred_at": "2026-10-03T09:15:00"})
    outcomes = produce(broker, [
        ("events.grid", b"grid:jn-grid:WG1", good),
        ("events.grid", b"\x00control", control),
        ("events.grid", b"grid:jn-grid:WG1", bad_type),
        ("events.grid", b"grid:jn-grid:WG1", with_phone),
        ("events.grid", b"grid:jn-grid:WG1", naive_time),
        ("events.grid", b"grid:jn-grid:WG1", b"not json at all"),
        ("events.invalid", b"grid", b"a dead letter is not checked"),
    ])
    assert outcomes[0] is None and outcomes[1] is None and outcomes[6] is None
    for refused in outcomes[2:6]:
        assert refused is not None and refused.code() == KafkaError.INVALID_RECORD, refused
    stored = read_all(broker, "events.grid")
    assert stored == [good, control]


def test_a_refused_record_takes_its_whole_batch_with_it(broker):
    first, second = canonical("E-batch-1").to_json(), canonical("E-batch-2").to_json()
    bad = orjson.dumps({"event_id": "only this"})
    outcomes = produce(broker, [("events.hotline", b"k", first), ("events.hotline", b"k", bad),
                                ("events.hotline", b"k", second)], partition=1, linger_ms=1000)
    assert [o.code() if o else None for o in outcomes] == [KafkaError.INVALID_RECORD] * 3
    assert read_all(broker, "events.hotline") == []


def test_civicflow_ingest_passes_the_broker_check(broker, tmp_path: Path):
    lines = [orjson.dumps({**GOOD_LINE, "事件ID": f"E{n}", "工单编号": f"WG{n % 7}"}) for n in range(200)]
    feed = tmp_path / "grid.jsonl"
    feed.write_bytes(b"\n".join(lines) + b"\n")
    tally, failed = ingest_files([("jn-grid", feed)], broker, b"k", lambda *_: None)
    assert (tally.read, tally.produced, failed) == (200, 200, 0)
    ids = {orjson.loads(value)["event_id"] for value in read_all(broker, "events.grid")
           if orjson.loads(value).get("system") == "jn-grid"}
    assert {canonical(f"E{n}").event_id for n in range(200)} <= ids


def test_events_are_partitioned_as_the_asyncapi_document_says(broker):
    """CRC32 of the key modulo the partition count (librdkafka's consistent_random): what a
    producer of another make must do to put a case's events where civicflow puts them."""
    producer = EventProducer(broker)
    keys = [f"property:wuye:WY{n}" for n in range(40)]
    for key in keys:
        producer.send("events.property", key.encode(), canonical(f"P-{key}").to_json())
    assert producer.flush(20) == 0
    consumer = Consumer({"bootstrap.servers": broker, "group.id": "partitions",
                         "enable.auto.commit": False, "enable.partition.eof": True})
    consumer.assign([TopicPartition("events.property", p, 0) for p in range(2)])
    placed, ended = {}, set()
    deadline = time.monotonic() + 20
    while len(ended) < 2 and time.monotonic() < deadline:
        for message in consumer.consume(100, 0.5):
            if message.error() is None:
                placed[message.key().decode()] = message.partition()
            elif message.error().code() == KafkaError._PARTITION_EOF:
                ended.add(message.partition())
    consumer.close()
    assert placed == {key: zlib.crc32(key.encode()) % 2 for key in keys}
