"""12345 CSV: adapter + producer rows/s, next to a raw confluent-kafka produce of the same
pre-serialized event bytes (same broker, same run)."""

from __future__ import annotations

import tempfile
from pathlib import Path

from confluent_kafka import Producer

from bench.common import Result, timed
from civicflow.embedded import embedded_broker
from producers.base import ImportTally
from producers.hotline12345 import Hotline12345Adapter
from producers.ingest import ingest_files
from producers.kafka import producer_config
from producers.simulator import hotline_csv, simulate_hotline


def run(days: int = 20) -> list[Result]:
    rows = simulate_hotline(days=days, cases_per_day=200, districts=5)
    data = hotline_csv(rows, "gbk")
    tally, seen, events = ImportTally(), set(), []
    for _, items in Hotline12345Adapter(b"k").parse_rows(data, "bench"):
        events.extend(tally.add(items, seen))
    payloads = [(e.case_id.encode(), e.to_json()) for e in events]
    with tempfile.TemporaryDirectory() as tmp, embedded_broker(Path(tmp), 4) as bootstrap:
        path = Path(tmp) / "h.csv"
        path.write_bytes(data)

        def raw() -> None:
            producer = Producer(producer_config(bootstrap))
            for key, value in payloads:
                while True:
                    try:
                        producer.produce("events.hotline", value, key)
                        break
                    except BufferError:
                        producer.poll(0.05)
                producer.poll(0)
            producer.flush(60)

        raw_seconds = timed(raw)
        ours_seconds = timed(lambda: ingest_files([("12345", path)], bootstrap, b"k",
                                                  lambda *_: None))
    return [
        Result("ingest 12345 CSV (adapter + producer)", "rows/s", len(rows) / ours_seconds,
               "raw produce of the same events", len(rows) / raw_seconds, ">= 50,000 rows/s"),
    ]
