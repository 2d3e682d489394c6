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


def test_several_feeds_go_out_together_in_event_time_each_id_once(tmp_path):
    """Two 12345 exports of the same orders (the later one repeats their ids, some with other
    times) and a grid feed in one run: every event id once, with its first import's time; all
    three files' events produced together in event-time order, across topics (the producer
    stamps each message as it is sent)."""
    from datetime import timedelta

    from producers.registry import adapter_for
    from producers.simulator import simulate_grid, write_lines
    from schemas.event import EncodedEvent
    from streams.calendar import CHINA_TZ

    start = datetime(2026, 10, 5, tzinfo=CHINA_TZ)
    first, later, grid = tmp_path / "orders-1.csv", tmp_path / "orders-2.csv", tmp_path / "grid.jsonl"
    common = {"seed": 4, "start": start.date(), "days": 6, "cases_per_day": 20, "districts": 2}
    first.write_bytes(hotline_csv(simulate_hotline(snapshot_at=start + timedelta(days=3), **common), "gbk"))
    later.write_bytes(hotline_csv(simulate_hotline(**common), "gbk"))
    write_lines(str(grid), simulate_grid(seed=4, start=start.date(), days=6, cases_per_day=15, districts=2))
    files = [("12345", first), ("12345", later), ("jn-grid", grid)]

    expected: dict[str, datetime] = {}  # the first time each id was read, in file order
    changed = 0
    for format_name, path in files:
        with open(path, "rb") as stream:
            rows = list(adapter_for(format_name, b"k").encode_rows(stream, str(path)))
        for _, items in rows:
            for item in items:
                if isinstance(item, EncodedEvent):
                    if item.event_id in expected and expected[item.event_id] != item.occurred_at:
                        changed += 1
                    expected.setdefault(item.event_id, item.occurred_at)
    assert changed > 5, "the later export should repeat some ids with other times"

    with embedded_broker(tmp_path, 2) as bootstrap:
        tally, failed = ingest_files(files, bootstrap, b"k", lambda *_: None, sort_run_size=300,
                                     spill_dir=tmp_path)
        assert failed == 0 and tally.events == len(expected) and tally.balanced
        sent = _read_all(bootstrap, ["events.hotline", "events.grid"], 2)
    assert {event_id: at for at, event_id, _, _ in sent} == expected
    assert len(sent) == len(expected)
    in_event_time = sorted(sent)
    stamps = [stamp for _, _, stamp, _ in in_event_time]
    assert stamps == sorted(stamps), "a later event was sent before an earlier one"
    assert {topic for *_, (topic, _) in sent} == {"events.hotline", "events.grid"}


def _read_all(bootstrap: str, topics: list[str], partitions: int
              ) -> list[tuple[datetime, str, int, tuple[str, int]]]:
    """(occurred_at, event_id, producer timestamp, (topic, partition)) of every event; checks
    each partition is in event-time order by offset."""
    reader = Consumer({"bootstrap.servers": bootstrap, "group.id": "check",
                       "enable.partition.eof": True, "log_level": 4})
    reader.assign([TopicPartition(t, p, 0) for t in topics for p in range(partitions)])
    sent, ended = [], set()
    last: dict[tuple[str, int], tuple[datetime, str]] = {}
    while len(ended) < len(topics) * partitions:
        message = reader.poll(10)
        assert message is not None, "events missing from Kafka"
        where = (message.topic(), message.partition())
        if message.error():
            assert message.error().code() == KafkaError._PARTITION_EOF
            ended.add(where)
            continue
        event = orjson.loads(message.value())
        key = (datetime.fromisoformat(event["occurred_at"]), event["event_id"])
        assert where not in last or last[where] <= key, f"{where} out of event-time order"
        last[where] = key
        sent.append((*key, message.timestamp()[1], where))
    reader.close()
    return sent
