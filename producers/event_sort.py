"""Events in event-time order, however many: sorted runs spill to temporary files and are
merged back, so a year of exports does not have to fit in memory at once."""

from __future__ import annotations

import heapq
import shutil
import tempfile
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from types import TracebackType

import orjson

from schemas.enums import Source
from schemas.event import EncodedEvent, event_time_order

# ~1 M events is ~0.5 GB in memory (bytes, ids, times); a run of them is ~0.4 GB on disk
DEFAULT_RUN_SIZE = 1_000_000


class EventSorter:
    """`add` events in any order, then iterate `in_order()` once. Use as a context manager:
    the temporary files go when it closes."""

    def __init__(self, run_size: int = DEFAULT_RUN_SIZE, directory: Path | None = None) -> None:
        if run_size < 1:
            raise ValueError("run_size must be at least 1")
        self.run_size = run_size
        self._directory = directory
        self._folder: Path | None = None
        self._runs: list[Path] = []
        self._current: list[EncodedEvent] = []
        self.count = 0

    def __enter__(self) -> EventSorter:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self.close()

    @property
    def spilled_runs(self) -> int:
        return len(self._runs)

    def add(self, event: EncodedEvent) -> None:
        self._current.append(event)
        self.count += 1
        if len(self._current) >= self.run_size:
            self._spill()

    def in_order(self) -> Iterator[EncodedEvent]:
        self._current.sort(key=event_time_order)
        if not self._runs:
            return iter(self._current)
        return heapq.merge(*(_read_run(path) for path in self._runs), iter(self._current),
                           key=event_time_order)

    def close(self) -> None:
        if self._folder is not None:
            shutil.rmtree(self._folder, ignore_errors=True)
            self._folder = None
        self._runs.clear()
        self._current.clear()

    def _spill(self) -> None:
        if self._folder is None:
            self._folder = Path(tempfile.mkdtemp(prefix="civicflow-sort-", dir=self._directory))
        self._current.sort(key=event_time_order)
        path = self._folder / f"run-{len(self._runs):05d}.jsonl"
        with open(path, "wb") as handle:
            for event in self._current:
                handle.write(orjson.dumps([event.occurred_at.isoformat(), event.event_id,
                                           event.case_id, event.source.value,
                                           event.payload.decode()]))
                handle.write(b"\n")
        self._runs.append(path)
        self._current = []


def _read_run(path: Path) -> Iterator[EncodedEvent]:
    with open(path, "rb") as handle:
        for line in handle:
            at, event_id, case_id, source, payload = orjson.loads(line)
            yield EncodedEvent(event_id, case_id, Source(source), datetime.fromisoformat(at),
                               payload.encode())
