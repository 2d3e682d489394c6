"""End-to-end replay (broker -> Faust worker -> sink -> chDB) events/s, next to a raw
confluent-kafka consumer reading the same events from the same broker."""

from __future__ import annotations

import tempfile
import time
from datetime import date
from pathlib import Path

from confluent_kafka import Consumer, TopicPartition

from bench.bench_faust import bare_faust_rate
from bench.common import Result
from civicflow.embedded import embedded_broker
from civicflow.pipeline import read_feeds, replay
from civicflow.settings import Settings
from producers.kafka import EventProducer
from producers.simulator import simulate_grid, write_lines
from schemas.policy import load_policy
from streams.calendar import WorkingDayCalendar
from streams.processor import CaseProcessor, Mode, Record


def run(days: int = 14) -> list[Result]:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "grid.jsonl"
        write_lines(str(path), simulate_grid(seed=5, start=date(2026, 10, 12), days=days,
                                             cases_per_day=150, districts=4))
        events, _, _ = read_feeds([("jn-grid", path)])
        records = [Record("events.grid", hash(e.case_id) % 4, e.case_id.encode(), e.to_json())
                   for e in events]

        # the pure worker logic alone, no Kafka
        store: dict[str, bytes] = {}
        processor = CaseProcessor(load_policy(), WorkingDayCalendar(), store, mode=Mode.REPLAY)
        start = time.perf_counter()
        for i in range(0, len(records), 10_000):
            processor.process(records[i:i + 10_000])
        pure_rate = len(records) / (time.perf_counter() - start)
        case_bytes = [len(v) for k, v in store.items() if not k.startswith("\x00")]
        bytes_per_case = sum(case_bytes) / len(case_bytes)

        with embedded_broker(Path(tmp), 4) as bootstrap:
            producer = EventProducer(bootstrap)
            for event in events:
                producer.send_event(event)
            producer.flush()
            del producer
            consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "bench"})
            consumer.assign([TopicPartition("events.grid", p, 0) for p in range(4)])
            start, seen = time.perf_counter(), 0
            while seen < len(events):
                seen += len(consumer.consume(10_000, 1.0))
            raw_rate = len(events) / (time.perf_counter() - start)
            consumer.close()

        settings = Settings(var_dir=Path(tmp) / "var", partitions=4)
        start = time.perf_counter()
        result, _ = replay(settings, [("jn-grid", path)], None, lambda _m: None, timeout=900)
        e2e_rate = len(events) / (time.perf_counter() - start)
        kafka_settings = Settings(var_dir=Path(tmp) / "var", partitions=4, database="bench_kafka",
                                  worker_engine="kafka")
        start = time.perf_counter()
        replay(kafka_settings, [("jn-grid", path)], None, lambda _m: None, timeout=900)
        kafka_rate = len(events) / (time.perf_counter() - start)
        startup = "includes broker start, worker start and group join (~8 s)"
    faust_rate = bare_faust_rate()
    return [
        Result(f"worker state per case (stored bytes, {len(case_bytes):,} cases)", "bytes",
               bytes_per_case, "the 1 KiB target", 1024, "<= 1,024 bytes per open case"),
        Result("case processor alone (pure, no Kafka)", "events/s", pure_rate,
               "raw confluent-kafka consume", raw_rate, ">= 10,000 events/s end to end"),
        Result(f"end-to-end replay of {len(events):,} events ({startup})", "events/s", e2e_rate,
               "raw confluent-kafka consume", raw_rate, ">= 10,000 events/s"),
        Result(f"end-to-end replay of {len(events):,} events", "events/s", e2e_rate,
               "a bare Faust agent doing nothing (take_events)", faust_rate, ">= 10,000 events/s"),
        Result(f"end-to-end replay, --engine kafka ({startup})", "events/s", kafka_rate,
               "the same replay on the Faust worker", e2e_rate, ">= 10,000 events/s"),
    ]
