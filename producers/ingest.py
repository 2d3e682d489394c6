"""Feed files -> adapters -> Kafka: all of one run's events in `occurred_at` order (several
feeds merged), each event id once, rejects to the dead-letter topic, and the accounting of
every record. `ingest` and `replay` share this path."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import BinaryIO, Literal, overload

from prometheus_client import CollectorRegistry

from producers.base import Adapter, EncodedRow, ImportTally, Reject, RowResult
from producers.event_sort import DEFAULT_RUN_SIZE, EventSorter
from producers.kafka import UNREPORTED, EventProducer
from producers.metrics import IngestMetrics
from producers.registry import adapter_for
from schemas.enums import Source
from schemas.errors import ConfigError
from schemas.event import EncodedEvent, Event
from schemas.topics import EVENT_TOPICS, INVALID_TOPIC

# stage, records done, records in all (None while reading), rejects so far
OnProgress = Callable[[str, int, int | None, int], None]

PROGRESS_EVERY = 5000


@overload
def rows_from_file(adapter: Adapter, path: Path, now: datetime, wire: Literal[True] = ...
                   ) -> Iterator[EncodedRow]:
    ...


@overload
def rows_from_file(adapter: Adapter, path: Path, now: datetime, wire: Literal[False]
                   ) -> Iterator[RowResult]:
    ...


def rows_from_file(adapter: Adapter, path: Path, now: datetime, wire: bool = True
                   ) -> Iterator[EncodedRow] | Iterator[RowResult]:
    """The one place a file meets its adapter, read as a stream: per record, its line and its
    events (in wire form, or as models with `wire=False`) or its reject. Events later than
    `now` (+ the adapters' tolerance) are refused: the import's clock."""
    with open_input(path) as stream:
        if wire:
            yield from adapter.encode_rows(stream, str(path), now)
        else:
            yield from adapter.parse_rows(stream, str(path), now)


def import_clock(now: datetime | None) -> datetime:
    """The instant an import judges event times against (an event later than it, plus the
    tolerance, is refused): the caller's, else the wall clock."""
    return now if now is not None else datetime.now(UTC)  # clock: the one edge that reads it


def feed_rows(files: list[tuple[str, Path]], caller_key: bytes, now: datetime | None = None
              ) -> Iterator[tuple[str, Path, Sequence[Event | Reject]]]:
    """Every record of every file through its adapter, as models: (format, file, its items)."""
    now = import_clock(now)
    for format_name, path in files:
        adapter = adapter_for(format_name, caller_key)
        for _, items in rows_from_file(adapter, path, now, wire=False):
            yield format_name, path, items


def encoded_rows(files: list[tuple[str, Path]], caller_key: bytes, now: datetime | None = None
                 ) -> Iterator[tuple[str, Path, Sequence[EncodedEvent | Reject]]]:
    """`feed_rows` with the events in wire form (no model per event)."""
    now = import_clock(now)
    for format_name, path in files:
        adapter = adapter_for(format_name, caller_key)
        for _, items in rows_from_file(adapter, path, now):
            yield format_name, path, items


def open_input(path: Path) -> BinaryIO:
    try:
        return open(path, "rb")  # noqa: SIM115 - the caller closes it
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from exc


@dataclass
class FeedFile:
    """One input of a run with its own accounting; its records and events are contiguous
    ranges of the sorter's record and sequence numbers."""

    format_name: str
    path: Path
    tally: ImportTally = field(default_factory=ImportTally)
    first_record: int = 0
    records: int = 0  # records that made events (not rejected)
    first_event: int = 0
    events: int = 0  # events handed to the sorter


class EventTimeImport:
    """Files -> adapters -> sorted runs on disk -> one merge in event time.

    `read` passes every file through its adapter (rejects to `on_reject` as they come), then
    `settle` decides the duplicates (the tallies are complete after it), then `in_order`
    yields each event once, all files together in (occurred_at, event_id) order; `latest` is
    the last event's time once it ran out. Bounded memory: one sort run (`run_size` events),
    plus a bit per event and per record. Unknown formats fail when it is built."""

    def __init__(self, files: Sequence[tuple[str, Path]], caller_key: bytes,
                 run_size: int = DEFAULT_RUN_SIZE, spill_dir: Path | None = None,
                 tally: ImportTally | None = None, now: datetime | None = None) -> None:
        self.adapters = {name: adapter_for(name, caller_key) for name, _ in files}
        self.files = [FeedFile(name, path) for name, path in files]
        self.sorter = EventSorter(run_size, spill_dir)
        self.sources: set[Source] = set()
        self.latest: datetime | None = None
        # the whole run's accounting, kept up to date as records are read (a caller's tally
        # shows how far an import got if it stops): produced and duplicates after `settle`
        self.tally = tally if tally is not None else ImportTally()
        # events later than the wall clock (+ tolerance) are refused: the import's clock
        self.now = import_clock(now)

    def __enter__(self) -> EventTimeImport:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self.sorter.close()

    @property
    def count(self) -> int:
        """Events `in_order` yields (after `settle`)."""
        return self.sorter.count

    def read(self, on_reject: Callable[[Reject], None], on_progress: OnProgress) -> None:
        sorter = self.sorter
        read = rejected = 0
        for feed in self.files:
            feed.first_record, feed.first_event = sorter.records, sorter.added
            tally = feed.tally
            for _, items in rows_from_file(self.adapters[feed.format_name], feed.path, self.now):
                refused = bool(items) and isinstance(items[0], Reject)
                # counted in straight-line code (no call, no loop): CPython raises a Ctrl-C only
                # at a call or a backward jump, so an interrupted import's accounting holds each
                # record whole (its read with its reject), never one half of it
                tally.read += 1
                self.tally.read += 1
                read += 1
                if refused:
                    tally.rejected += 1
                    self.tally.rejected += 1
                    rejected += 1
                    for reject in items:
                        assert isinstance(reject, Reject)
                        for counts in (tally, self.tally):
                            counts.reject_reasons[reject.reason_code] += 1
                        on_reject(reject)
                else:
                    events = [item for item in items if isinstance(item, EncodedEvent)]
                    sorter.add_record(events)
                    self.sources.update(event.source for event in events)
                if read % PROGRESS_EVERY == 0:
                    on_progress(f"reading {feed.path.name}", read, None, rejected)
            feed.records = sorter.records - feed.first_record
            feed.events = sorter.added - feed.first_event

    def settle(self) -> None:
        """Decide which events are duplicates; completes every file's tally."""
        self.sorter.settle()
        for feed in self.files:
            tally = feed.tally
            tally.produced = self.sorter.kept_records(feed.first_record,
                                                      feed.first_record + feed.records)
            tally.duplicates = tally.read - tally.rejected - tally.produced
            tally.events = self.sorter.kept_events(feed.first_event, feed.first_event + feed.events)
        self.tally.produced = sum(feed.tally.produced for feed in self.files)
        self.tally.duplicates = sum(feed.tally.duplicates for feed in self.files)
        self.tally.events = sum(feed.tally.events for feed in self.files)

    def in_order(self) -> Iterator[EncodedEvent]:
        self.settle()
        for event in self.sorter.in_order():
            self.latest = event.occurred_at
            yield event


def ingest_files(files: list[tuple[str, Path]], bootstrap: str, caller_key: bytes,
                 on_progress: OnProgress, delivery_timeout: float = 30.0,
                 metrics: IngestMetrics | None = None, sort_run_size: int = DEFAULT_RUN_SIZE,
                 spill_dir: Path | None = None, tally: ImportTally | None = None
                 ) -> tuple[ImportTally, int]:
    """Returns the tally and the number of events Kafka did not acknowledge. All the files'
    events go out together in event-time order (a snapshot row's are not in file order);
    more than `sort_run_size` of them are sorted in runs on disk (under `spill_dir`). Pass
    `tally` to keep the accounting of an import that stops on an error or an interrupt."""
    metrics = metrics or IngestMetrics(CollectorRegistry())
    producer = EventProducer(bootstrap, delivery_timeout)
    with EventTimeImport(files, caller_key, sort_run_size, spill_dir, tally) as feed:
        def send_reject(reject: Reject) -> None:
            producer.send_reject(reject)
            metrics.rejects.labels(reject.format, reject.reason_code).inc()

        feed.read(send_reject, on_progress)
        feed.settle()
        for file in feed.files:
            records = metrics.records
            records.labels(file.format_name, "rejected").inc(file.tally.rejected)
            records.labels(file.format_name, "produced").inc(file.tally.produced)
            records.labels(file.format_name, "duplicate").inc(file.tally.duplicates)
        rejected = feed.tally.rejected
        if feed.sorter.spilled_runs:
            on_progress(f"merging {feed.sorter.spilled_runs} sorted runs", 0, feed.count, rejected)
        for index, event in enumerate(feed.in_order(), 1):
            producer.send_encoded(event)
            if index % PROGRESS_EVERY == 0:
                on_progress("sending", index, feed.count, rejected)
        on_progress("sent", feed.count, feed.count, rejected)
        failed = producer.flush(delivery_timeout + 30)
        feed.tally.undelivered_events = sum(producer.failed_on(topic) for topic in EVENT_TOPICS.values())
        feed.tally.undelivered_rejects = producer.failed_on(INVALID_TOPIC)
        feed.tally.undelivered_unknown = producer.failed_on(UNREPORTED)
        return feed.tally, failed
