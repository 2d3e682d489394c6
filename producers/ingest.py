"""Feed files -> adapters -> Kafka: each input's events in `occurred_at` order, rejects to the
dead-letter topic, and the accounting of every record."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO, TypeVar

from prometheus_client import CollectorRegistry

from producers.base import Adapter, ImportTally, Reject
from producers.event_sort import DEFAULT_RUN_SIZE, EventSorter
from producers.kafka import EventProducer
from producers.metrics import IngestMetrics
from producers.registry import adapter_for
from schemas.errors import ConfigError
from schemas.event import EncodedEvent, Event

# stage, records done, records in all (None while reading), rejects so far
OnProgress = Callable[[str, int, int | None, int], None]


Item = TypeVar("Item", Event | Reject, EncodedEvent | Reject)
RowsOf = Callable[[Adapter, BinaryIO, str, datetime], Iterator[tuple[int, Sequence[Item]]]]


def _file_rows(files: list[tuple[str, Path]], caller_key: bytes, rows_of: RowsOf[Item],
               now: datetime | None) -> Iterator[tuple[str, Path, Sequence[Item]]]:
    # events later than the wall clock (+ tolerance) are refused: the import's clock
    now = now or datetime.now(UTC)
    for format_name, path in files:
        adapter = adapter_for(format_name, caller_key)
        with open_input(path) as stream:
            for _, items in rows_of(adapter, stream, str(path), now):
                yield format_name, path, items


def feed_rows(files: list[tuple[str, Path]], caller_key: bytes, now: datetime | None = None
              ) -> Iterator[tuple[str, Path, Sequence[Event | Reject]]]:
    """Every record of every file through its adapter: (format, file, the record's items)."""
    return _file_rows(files, caller_key,
                      lambda adapter, stream, file, at: adapter.parse_rows(stream, file, at), now)


def encoded_rows(files: list[tuple[str, Path]], caller_key: bytes, now: datetime | None = None
                 ) -> Iterator[tuple[str, Path, Sequence[EncodedEvent | Reject]]]:
    """`feed_rows` with the events in wire form (no model per event): what ingest sends."""
    return _file_rows(files, caller_key,
                      lambda adapter, stream, file, at: adapter.encode_rows(stream, file, at), now)


def open_input(path: Path) -> BinaryIO:
    try:
        return open(path, "rb")  # noqa: SIM115 - the caller closes it
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from exc


def ingest_files(files: list[tuple[str, Path]], bootstrap: str, caller_key: bytes,
                 on_progress: OnProgress, delivery_timeout: float = 30.0,
                 metrics: IngestMetrics | None = None, sort_run_size: int = DEFAULT_RUN_SIZE,
                 spill_dir: Path | None = None, tally: ImportTally | None = None
                 ) -> tuple[ImportTally, int]:
    """Returns the tally and the number of events Kafka did not acknowledge. Each input's
    events go out in event-time order (a snapshot row's are not in file order); more than
    `sort_run_size` of them are sorted in runs on disk (under `spill_dir`). Pass `tally` to
    keep the accounting of an import that stops on an error or an interrupt."""
    metrics = metrics or IngestMetrics(CollectorRegistry())
    tally = tally if tally is not None else ImportTally()
    producer = EventProducer(bootstrap, delivery_timeout)
    seen: set[str] = set()
    for format_name, path in files:
        outcomes = {outcome: metrics.records.labels(format_name, outcome)
                    for outcome in ("rejected", "produced", "duplicate")}
        with EventSorter(sort_run_size, spill_dir) as sorter:
            for _, _, items in encoded_rows([(format_name, path)], caller_key):
                rejects = [item for item in items if isinstance(item, Reject)]
                for reject in rejects:
                    producer.send_reject(reject)
                    metrics.rejects.labels(format_name, reject.reason_code).inc()
                new = tally.add(items, seen)
                for event in new:
                    sorter.add(event)
                outcomes["rejected" if rejects else "produced" if new else "duplicate"].inc()
                if tally.read % 5000 == 0:
                    on_progress(f"reading {path.name}", tally.read, None, tally.rejected)
            if sorter.spilled_runs:
                on_progress(f"merging {sorter.spilled_runs + 1} sorted runs of {path.name}",
                            0, sorter.count, tally.rejected)
            for index, event in enumerate(sorter.in_order(), 1):
                producer.send_encoded(event)
                if index % 5000 == 0:
                    on_progress(f"sending {path.name}", index, sorter.count, tally.rejected)
            on_progress(f"sent {path.name}", sorter.count, sorter.count, tally.rejected)
    return tally, producer.flush(delivery_timeout + 30)
