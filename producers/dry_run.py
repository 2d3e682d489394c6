"""`civicflow validate`: a district's files through their adapters, without Kafka or ClickHouse.

What an import would do with every record, in bounded memory whatever the input size: counters,
the first few examples of each reject reason, the time span, and how many new cases carry a
category the catalog lacks or no area code. Duplicates (records all of whose events an earlier
record already had, the rule of ImportTally) are found by sorting (event id, record) pairs in
runs on disk, so that not even the set of event ids has to fit in memory.
"""

from __future__ import annotations

import hashlib
import heapq
import shutil
import tempfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from types import TracebackType

from producers.base import Adapter, Reject, RowResult
from schemas.enums import EventType
from schemas.errors import ConfigError
from schemas.event import Event

EXAMPLES_PER_REASON = 5
MAX_REASONS = 100  # distinct (format, reason) groups kept apart; the rest are counted together
OTHER_REASONS = "other reasons"
DEFAULT_RUN_SIZE = 250_000  # ~15 MB of keys in memory before a run goes to disk

_ID_BYTES, _RECORD_BYTES, _COUNT_BYTES = 12, 5, 2


def file_rows(adapter: Adapter, path: Path, now: datetime | None) -> Iterator[RowResult]:
    """One file through its adapter, read as a stream (record by record, never whole): the one
    place that knows how an adapter reads a file. `now` bounds event times as an import would."""
    try:
        stream = open(path, "rb")  # noqa: SIM115 - closed below, after the last record
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from exc
    with stream:
        yield from adapter.parse_rows(stream, str(path), now)


def _id_key(event_id: str) -> bytes:
    if len(event_id) == 2 * _ID_BYTES:
        try:
            return bytes.fromhex(event_id)  # make_event_id's ids are 12-byte hex digests
        except ValueError:
            pass
    return hashlib.blake2b(event_id.encode(), digest_size=_ID_BYTES).digest()


class _ExternalSort:
    """Fixed-size byte keys in any order in, sorted out; runs beyond `run_size` go to disk."""

    def __init__(self, width: int, run_size: int, folder: Callable[[], Path]) -> None:
        self.width = width
        self.run_size = run_size
        self._folder = folder
        self._current: list[bytes] = []
        self._runs: list[Path] = []

    def add(self, key: bytes) -> None:
        self._current.append(key)
        if len(self._current) >= self.run_size:
            self._spill()

    def _spill(self) -> None:
        self._current.sort()
        path = self._folder() / f"run-{id(self)}-{len(self._runs):05d}"
        with open(path, "wb") as handle:
            handle.write(b"".join(self._current))
        self._runs.append(path)
        self._current = []

    def _read(self, path: Path) -> Iterator[bytes]:
        with open(path, "rb") as handle:
            while chunk := handle.read(self.width * 4096):
                for start in range(0, len(chunk), self.width):
                    yield chunk[start:start + self.width]

    def sorted(self) -> Iterator[bytes]:
        self._current.sort()
        if not self._runs:
            return iter(self._current)
        return heapq.merge(*(self._read(path) for path in self._runs), iter(self._current))


class DuplicateFinder:
    """`add` each accepted record's event ids with its number (increasing), then `count` once."""

    def __init__(self, run_size: int = DEFAULT_RUN_SIZE, directory: Path | None = None) -> None:
        self._directory = directory
        self._temp: Path | None = None
        self._pairs = _ExternalSort(_ID_BYTES + _RECORD_BYTES + _COUNT_BYTES, run_size, self._folder)
        self._run_size = run_size

    def _folder(self) -> Path:
        if self._temp is None:
            self._temp = Path(tempfile.mkdtemp(prefix="civicflow-validate-", dir=self._directory))
        return self._temp

    def __enter__(self) -> DuplicateFinder:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        if self._temp is not None:
            shutil.rmtree(self._temp, ignore_errors=True)
            self._temp = None

    def add(self, record: int, event_ids: Sequence[str]) -> None:
        tail = record.to_bytes(_RECORD_BYTES, "big") + min(len(event_ids), 65535).to_bytes(
            _COUNT_BYTES, "big")
        for event_id in event_ids:
            self._pairs.add(_id_key(event_id) + tail)

    def count(self) -> tuple[int, int]:
        """(duplicate records, distinct events)."""
        repeats = _ExternalSort(_RECORD_BYTES + _COUNT_BYTES, self._run_size, self._folder)
        distinct = 0
        previous = b""
        for key in self._pairs.sorted():
            event_id = key[:_ID_BYTES]
            if event_id == previous:
                repeats.add(key[_ID_BYTES:])  # an earlier record had this event
            else:
                distinct += 1
                previous = event_id
        duplicates = 0
        current, seen = b"", 0
        for key in repeats.sorted():
            if key != current:
                current, seen = key, 0
            seen += 1
            if seen == int.from_bytes(key[_RECORD_BYTES:], "big"):
                duplicates += 1  # every event of the record was had before
        return duplicates, distinct


@dataclass
class ReasonGroup:
    count: int = 0
    examples: list[tuple[str, int, str]] = field(default_factory=list)  # file, line, reason


@dataclass(frozen=True)
class FeedReport:
    read: int
    accepted: int
    rejected: int
    duplicates: int
    events: int  # distinct events the accepted records make
    reasons: dict[tuple[str, str], ReasonGroup]  # (format, reason code) -> group
    first: datetime | None
    last: datetime | None
    created: int  # `created` events read: the new cases
    unknown_category: int
    no_area: int

    @property
    def reject_rate(self) -> float:
        return self.rejected / self.read if self.read else 0.0

    def accounting_line(self) -> str:
        return (f"records read {self.read} = accepted {self.accepted} + rejected {self.rejected} "
                f"+ duplicates skipped {self.duplicates} ({self.events} events)")


class FeedCheck:
    """Accumulates what validate reports, one record at a time."""

    def __init__(self, run_size: int = DEFAULT_RUN_SIZE, spill_dir: Path | None = None) -> None:
        self.duplicates = DuplicateFinder(run_size, spill_dir)
        self.read = 0
        self.rejected = 0
        self.reasons: dict[tuple[str, str], ReasonGroup] = {}
        self.first: datetime | None = None
        self.last: datetime | None = None
        self._first_at, self._last_at = float("inf"), float("-inf")
        self.created = 0
        self.unknown_category = 0
        self.no_area = 0
        self.empty = 0  # records that made no event and no reject: ImportTally counts them skipped

    def __enter__(self) -> FeedCheck:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self.duplicates.__exit__(kind, error, trace)

    def add(self, format_name: str, items: Sequence[Event | Reject]) -> None:
        self.read += 1
        if items and isinstance(items[0], Reject):  # a record is its events or its rejects
            self.rejected += 1
            for reject in items:
                if isinstance(reject, Reject):
                    self._reject(format_name, reject)
            return
        if not items:
            self.empty += 1
            return
        ids = []
        for event in items:
            if not isinstance(event, Event):
                continue
            ids.append(event.event_id)
            # POSIX seconds: comparing aware datetimes of different zones costs 10x
            at = event.occurred_at.timestamp()
            if at < self._first_at:
                self._first_at, self.first = at, event.occurred_at
            if at > self._last_at:
                self._last_at, self.last = at, event.occurred_at
            if event.type is EventType.CREATED:
                self.created += 1
                self.unknown_category += event.category.startswith("other:")
                self.no_area += event.district is None
        self.duplicates.add(self.read, ids)

    def _reject(self, format_name: str, reject: Reject) -> None:
        key = (format_name, reject.reason_code)
        if key not in self.reasons and len(self.reasons) >= MAX_REASONS:
            key = (format_name, OTHER_REASONS)
        group = self.reasons.setdefault(key, ReasonGroup())
        group.count += 1
        if len(group.examples) < EXAMPLES_PER_REASON:
            group.examples.append((reject.file, reject.line, reject.reason))

    def report(self) -> FeedReport:
        duplicates, events = self.duplicates.count()
        duplicates += self.empty
        return FeedReport(
            read=self.read, accepted=self.read - self.rejected - duplicates, rejected=self.rejected,
            duplicates=duplicates, events=events, reasons=dict(self.reasons), first=self.first,
            last=self.last, created=self.created, unknown_category=self.unknown_category,
            no_area=self.no_area)


# (format, file, records read so far in this file, rejects so far)
OnProgress = Callable[[str, Path, int, int], None]


def check_files(files: Iterable[tuple[str, Path]], adapter_of: Callable[[str], Adapter],
                on_progress: OnProgress, now: datetime | None = None, spill_dir: Path | None = None,
                run_size: int = DEFAULT_RUN_SIZE, every: int = 2000) -> FeedReport:
    """Every record of every (format, file) through its adapter; the report of them all. With
    `now` (the wall clock, as ingest passes it), events later than it are rejected too."""
    with FeedCheck(run_size, spill_dir) as check:
        for format_name, path in files:
            adapter = adapter_of(format_name)
            records = 0
            on_progress(format_name, path, 0, check.rejected)
            for _, items in file_rows(adapter, path, now):
                check.add(format_name, items)
                records += 1
                if records % every == 0:
                    on_progress(format_name, path, records, check.rejected)
            on_progress(format_name, path, records, check.rejected)
        return check.report()
