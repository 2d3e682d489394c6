"""What the case processor reports as it works (`Observer`), and the figures it reports: the
interface the worker's metrics implement, apart from the processor (which may be compiled:
an interpreted class cannot subclass a compiled one)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, TypeVar

from schemas.enums import Milestone

if TYPE_CHECKING:
    from streams.processor import CaseFacts

K = TypeVar("K")


class Tally(dict[K, int]):
    """A count per key, 0 for a key not counted yet. Not `Counter`: a class that defines
    `__delitem__`, as `Counter` does, takes CPython's generic slot for every `tally[key] = n`
    too (a method call with an argument tuple), and the worker counts twice per event."""

    def __missing__(self, key: K) -> int:
        return 0


@dataclass
class BatchStats:
    """What one call did, for the metrics (counted here, reported once per call)."""

    events: Tally[tuple[str, str]] = field(default_factory=Tally)  # source, type
    duplicates: Tally[str] = field(default_factory=Tally)
    late: Tally[str] = field(default_factory=Tally)
    rejects: Tally[str] = field(default_factory=Tally)
    # source, milestone, level, kind
    alerts: Tally[tuple[str, str, str, str]] = field(default_factory=Tally)
    alert_delays: list[float] = field(default_factory=list)
    met: list[tuple[str, str, Milestone, float]] = field(default_factory=list)
    returns: Tally[tuple[str, str | None]] = field(default_factory=Tally)  # source, district
    archived: Tally[str] = field(default_factory=Tally)  # source
    cached_cases: int = 0  # decoded in the working set after the call

    def __bool__(self) -> bool:
        return bool(self.events or self.duplicates or self.late or self.rejects or self.alerts
                    or self.met or self.returns or self.archived)


class Observer:
    """What the processor reports as it works; the worker's metrics implement it."""

    def batch(self, stats: BatchStats) -> None: ...
    def case(self, case_id: str, facts: CaseFacts | None) -> None: ...
