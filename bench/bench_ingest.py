"""12345 CSV: adapter + producer rows/s, next to a raw confluent-kafka produce of the same
pre-serialized event bytes, and next to the same import through one pydantic model per event
(same broker, same run)."""

from __future__ import annotations

import io
import tempfile
from pathlib import Path

from confluent_kafka import Producer

from bench.common import Result, best_of
from civicflow.embedded import embedded_broker
from producers.base import ImportTally
from producers.hotline12345 import Hotline12345Adapter
from producers.ingest import ingest_files
from producers.kafka import EventProducer, producer_config
from producers.simulator import hotline_csv, simulate_hotline
from schemas.event import event_time_order


def run(days: int = 20) -> list[Result]:
    rows = simulate_hotline(days=days, cases_per_day=200, districts=5)
    data = hotline_csv(rows, "gbk")
    adapter = Hotline12345Adapter(b"k")
    seen: set[str] = set()
    tally, events = ImportTally(), []
    for _, items in adapter.encode_rows(io.BytesIO(data), "bench"):
        events.extend(tally.add(items, seen))
    payloads = [(e.case_id.encode(), e.payload) for e in events]
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

        def through_models() -> None:
            """The import as it was before the wire-form path: a validated model per event."""
            model_seen: set[str] = set()
            producer, model_tally, model_events = EventProducer(bootstrap), ImportTally(), []
            with open(path, "rb") as stream:
                for _, items in adapter.parse_rows(stream, str(path)):
                    model_events.extend(model_tally.add(items, model_seen))
            model_events.sort(key=event_time_order)
            for event in model_events:
                producer.send_event(event)
            producer.flush(60)

        def ours() -> None:
            tally, failed = ingest_files([("12345", path)], bootstrap, b"k", lambda *_: None)
            if failed or tally.events != len(events):
                raise RuntimeError(f"ingest lost events: {failed} not delivered, {tally.events:,} "
                                   f"of {len(events):,} produced")

        seconds = best_of({"raw": raw, "models": through_models, "ours": ours})
    rate = {name: len(rows) / s for name, s in seconds.items()}
    return [
        Result(f"ingest 12345 CSV, adapter + producer ({len(rows):,} rows -> {len(events):,} events)",
               "rows/s", rate["ours"], "raw produce of the same event bytes", rate["raw"],
               ">= 50,000 rows/s"),
        Result("ingest 12345 CSV, wire-form path", "rows/s", rate["ours"],
               "the same import with a pydantic model per event", rate["models"], "-"),
    ]
