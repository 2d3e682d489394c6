"""Events in event-time order, however many, each event id once: sorted runs spill to temporary
files and are merged back, so a year of exports does not have to fit in memory at once.

De-duplication keeps the first occurrence of an event id in input order, as one in-memory pass
with a set of every id seen would, without that set: ids are de-duplicated within a run as it
fills, and across runs by a merge of the runs' ids (each run also spills its ids sorted by id).
Same id does not mean same time (a later 12345 snapshot repeats an order's ids with the
corrected times), so the cross-run duplicates cannot simply meet in the time merge. What
grows with the input is one bit per event and one per record: which ones are kept.
"""

from __future__ import annotations

import heapq
import shutil
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime
from itertools import groupby
from operator import itemgetter
from pathlib import Path
from types import TracebackType
from typing import Any

import orjson

from schemas.enums import Source
from schemas.event import EncodedEvent

# an event waiting in a run takes ~1.2 KB of memory (its bytes, ids, time, sort key, id set)
DEFAULT_RUN_SIZE = 100_000

# (timestamp, event id, sequence number, record number, event): sorts in event-time order and,
# within one key, in input order
_Entry = tuple[float, str, int, int, EncodedEvent]


def compact(event: EncodedEvent) -> EncodedEvent:
    """The event with its payload in a bytes object of its own size: orjson's `dumps` returns
    bytes that keep their 4 KiB buffer (orjson 3.13), 10x the ~400 bytes of a payload, and a
    run holds its events until it spills."""
    return event._replace(payload=bytes(memoryview(event.payload)))


class Bits:
    """A growable bit set over 0..n-1: which events / records a merge keeps."""

    def __init__(self, size: int = 0) -> None:
        self._bytes = bytearray((size + 7) // 8)

    def set(self, index: int) -> None:
        byte = index >> 3
        if byte >= len(self._bytes):
            self._bytes.extend(bytes(byte + 1 - len(self._bytes)))
        self._bytes[byte] |= 1 << (index & 7)

    def __contains__(self, index: int) -> bool:
        byte = index >> 3
        return byte < len(self._bytes) and bool(self._bytes[byte] >> (index & 7) & 1)

    def count(self, start: int, stop: int) -> int:
        """How many of start..stop-1 are set."""
        if stop <= start:
            return 0
        first, last = start >> 3, (stop - 1) >> 3
        chunk = int.from_bytes(self._bytes[first:last + 1], "little")
        chunk >>= start & 7
        return (chunk & ((1 << (stop - start)) - 1)).bit_count()


class _SpillingRuns:
    """What EventSorter and CaseGrouper share: entries held in memory up to `run_size`, then
    sorted into a run file in a temporary folder of their own, removed on close."""

    _prefix = "civicflow-runs-"

    def __init__(self, run_size: int = DEFAULT_RUN_SIZE, directory: Path | None = None) -> None:
        if run_size < 1:
            raise ValueError("run_size must be at least 1")
        self.run_size = run_size
        self._directory = directory
        self._folder: Path | None = None
        self._runs: list[Path] = []

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        if self._folder is not None:
            shutil.rmtree(self._folder, ignore_errors=True)
            self._folder = None
        self._runs.clear()

    def _next_run(self) -> Path:
        """The path of the next run file (without suffix), the folder made at the first."""
        if self._folder is None:
            self._folder = Path(tempfile.mkdtemp(prefix=self._prefix, dir=self._directory))
        return self._folder / f"run-{len(self._runs):05d}"


def _event_fields(event: EncodedEvent) -> list[str]:
    """The fields a run line keeps of an event besides its sort keys."""
    return [event.source.value, event.occurred_at.isoformat(), event.payload.decode()]


class EventSorter(_SpillingRuns):
    """`add_record` each source record's events in input order, `settle()`, then iterate
    `in_order()` once: every event id once (its first occurrence), in (occurred_at, event_id)
    order. Use as a context manager: the temporary files go when it closes."""

    _prefix = "civicflow-sort-"

    def __init__(self, run_size: int = DEFAULT_RUN_SIZE, directory: Path | None = None) -> None:
        super().__init__(run_size, directory)
        self._current: list[_Entry] = []
        self._current_ids: set[str] = set()
        self.records = 0  # records added (each a call of add_record)
        self.added = 0  # events added, each id once within its run: their sequence numbers
        self.count = 0  # events held: each id once within its run; the kept ones after settle()
        self._kept_events = Bits()
        self._kept_records = Bits()
        self._settled = False

    def __enter__(self) -> EventSorter:
        return self

    @property
    def spilled_runs(self) -> int:
        return len(self._runs)

    def add(self, event: EncodedEvent) -> None:
        """One record of one event."""
        self.add_record((event,))

    def add_record(self, events: Sequence[EncodedEvent]) -> None:
        """The events of one source record (its record number is the count of calls before)."""
        if self._settled:
            raise RuntimeError("events added after settle()")
        record = self.records
        self.records += 1
        for event in events:
            if event.event_id in self._current_ids:
                continue
            self._current_ids.add(event.event_id)
            self._current.append((event.occurred_at.timestamp(), event.event_id, self.added,
                                  record, compact(event)))
            self.added += 1
            self.count += 1
            if len(self._current) >= self.run_size:
                self._spill()

    def settle(self) -> None:
        """Decide which events are kept (the first of each id in input order). After it, `count`
        is the number of events `in_order` yields, and `kept_*` answer per range."""
        if self._settled:
            return
        self._settled = True
        if not self._runs:
            self._current.sort(key=_time_key)
            for _, _, sequence, record, _ in self._current:
                self._kept_events.set(sequence)
                self._kept_records.set(record)
            return
        if self._current:
            self._spill()
        self.count = 0
        previous = None
        for event_id, sequence, record in heapq.merge(*(_read_ids(run) for run in self._runs)):
            if event_id != previous:
                previous = event_id
                self._kept_events.set(sequence)
                self._kept_records.set(record)
                self.count += 1

    def kept_events(self, start: int, stop: int) -> int:
        """Kept events among sequence numbers start..stop-1 (after settle)."""
        return self._kept_events.count(start, stop)

    def kept_records(self, start: int, stop: int) -> int:
        """Records among start..stop-1 with at least one kept event (after settle)."""
        return self._kept_records.count(start, stop)

    def in_order(self) -> Iterator[EncodedEvent]:
        self.settle()
        if not self._runs:
            return (entry[4] for entry in self._current)
        kept = self._kept_events
        return (_event(line) for line in heapq.merge(*(_read_events(run) for run in self._runs))
                if line[2] in kept)

    def close(self) -> None:
        super().close()
        self._current.clear()
        self._current_ids.clear()

    def _spill(self) -> None:
        path = self._next_run()
        self._current.sort(key=_time_key)
        with open(path.with_suffix(".events"), "wb") as handle:
            for at, event_id, sequence, _, event in self._current:
                handle.write(orjson.dumps([at, event_id, sequence, event.case_id,
                                           *_event_fields(event)]))
                handle.write(b"\n")
        self._current.sort(key=_id_key)
        with open(path.with_suffix(".ids"), "wb") as handle:
            for _, event_id, sequence, record, _ in self._current:
                handle.write(orjson.dumps([event_id, sequence, record]))
                handle.write(b"\n")
        self._runs.append(path)
        self._current = []
        self._current_ids = set()


_time_key = itemgetter(0, 1, 2)
_id_key = itemgetter(1, 2)


def _read_lines(path: Path) -> Iterator[Any]:
    with open(path, "rb") as handle:
        for line in handle:
            yield orjson.loads(line)


def _read_events(run: Path) -> Iterator[Any]:
    return _read_lines(run.with_suffix(".events"))


def _read_ids(run: Path) -> Iterator[Any]:
    return _read_lines(run.with_suffix(".ids"))


def _event(line: list[Any]) -> EncodedEvent:
    _, event_id, _, case_id, source, at, payload = line
    return EncodedEvent(event_id, case_id, Source(source), datetime.fromisoformat(at), payload.encode())


class CaseGrouper(_SpillingRuns):
    """Events grouped by case, however many: `add` in any order, then `cases()` once yields
    each case's events (in event-time order). Runs sorted by case spill to disk like
    EventSorter's."""

    _prefix = "civicflow-cases-"

    def __init__(self, run_size: int = DEFAULT_RUN_SIZE, directory: Path | None = None) -> None:
        super().__init__(run_size, directory)
        self._current: list[tuple[str, float, str, EncodedEvent]] = []

    def __enter__(self) -> CaseGrouper:
        return self

    def add(self, event: EncodedEvent) -> None:
        self._current.append((event.case_id, event.occurred_at.timestamp(), event.event_id,
                              compact(event)))
        if len(self._current) >= self.run_size:
            self._spill()

    def cases(self) -> Iterator[list[EncodedEvent]]:
        self._current.sort(key=_case_key)
        entries: Iterable[Any] = (
            heapq.merge(*(_read_case_run(run) for run in self._runs), self._current, key=_case_key)
            if self._runs else self._current)
        for _, group in groupby(entries, key=itemgetter(0)):
            yield [entry[3] for entry in group]

    def close(self) -> None:
        super().close()
        self._current.clear()

    def _spill(self) -> None:
        path = self._next_run().with_suffix(".cases")
        self._current.sort(key=_case_key)
        with open(path, "wb") as handle:
            for case_id, at, event_id, event in self._current:
                handle.write(orjson.dumps([case_id, at, event_id, *_event_fields(event)]))
                handle.write(b"\n")
        self._runs.append(path)
        self._current = []


_case_key = itemgetter(0, 1, 2)


def _read_case_run(path: Path) -> Iterator[tuple[str, float, str, EncodedEvent]]:
    for case_id, at, event_id, source, occurred_at, payload in _read_lines(path):
        yield case_id, at, event_id, EncodedEvent(event_id, case_id, Source(source),
                                                  datetime.fromisoformat(occurred_at), payload.encode())
