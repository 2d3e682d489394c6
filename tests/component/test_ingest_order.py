"""`ingest` of an export bigger than one sort run: every event reaches Kafka once, each
partition in event-time order, and the runs on disk are gone afterwards."""

from __future__ import annotations

from datetime import datetime

import orjson
import pytest
from confluent_kafka import Consumer, KafkaError, TopicPartition

from civicflow.embedded import embedded_broker
from producers.ingest import ingest_files
from producers.simulator import hotline_csv, simulate_hotline

pytestmark = pytest.mark.component


def test_spilled_import_sends_each_event_once_in_event_time_order(tmp_path):
    export = tmp_path / "h.csv"
    export.write_bytes(hotline_csv(simulate_hotline(days=3, cases_per_day=30, districts=2), "gbk"))
    spill = tmp_path / "spill"
    spill.mkdir()
    with embedded_broker(tmp_path, 2) as bootstrap:
        stages: list[str] = []
        tally, failed = ingest_files([("12345", export)], bootstrap, b"k",
                                     lambda stage, *_: stages.append(stage),
                                     sort_run_size=50, spill_dir=spill)
        assert failed == 0 and tally.events > 150
        assert any(stage.startswith("merging") for stage in stages)
        reader = Consumer({"bootstrap.servers": bootstrap, "group.id": "check",
                           "enable.partition.eof": True, "log_level": 4})
        reader.assign([TopicPartition("events.hotline", p, 0) for p in range(2)])
        by_partition: dict[int, list[tuple[datetime, str]]] = {0: [], 1: []}
        ended = set()
        while len(ended) < 2:
            message = reader.poll(10)
            assert message is not None, "events missing from Kafka"
            if message.error():
                assert message.error().code() == KafkaError._PARTITION_EOF
                ended.add(message.partition())
                continue
            event = orjson.loads(message.value())
            by_partition[message.partition()].append(
                (datetime.fromisoformat(event["occurred_at"]), event["event_id"]))
        reader.close()
    sent = [e for events in by_partition.values() for e in events]
    assert len(sent) == len({event_id for _, event_id in sent}) == tally.events
    for events in by_partition.values():
        assert events == sorted(events)
    assert list(spill.iterdir()) == []
