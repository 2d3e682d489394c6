"""What the case processor reports as it works (`Observer`), and the figures it reports: the
interface the worker's metrics implement, apart from the processor (which may be compiled:
an interpreted class cannot subclass a compiled one)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from schemas.enums import Milestone

if TYPE_CHECKING:
    from streams.processor import CaseFacts


@dataclass
class BatchStats:
    """What one call did, for the metrics (counted here, reported once per call)."""

    events: Counter[tuple[str, str]] = field(default_factory=Counter)  # source, type
    duplicates: Counter[str] = field(default_factory=Counter)
    late: Counter[str] = field(default_factory=Counter)
    rejects: Counter[str] = field(default_factory=Counter)
    # source, milestone, level, kind
    alerts: Counter[tuple[str, str, str, str]] = field(default_factory=Counter)
    alert_delays: list[float] = field(default_factory=list)
    met: list[tuple[str, str, Milestone, float]] = field(default_factory=list)
    returns: Counter[tuple[str, str | None]] = field(default_factory=Counter)  # source, district
    archived: Counter[str] = field(default_factory=Counter)  # source
    cached_cases: int = 0  # decoded in the working set after the call

    def __bool__(self) -> bool:
        return bool(self.events or self.duplicates or self.late or self.rejects or self.alerts
                    or self.met or self.returns or self.archived)


class Observer:
    """What the processor reports as it works; the worker's metrics implement it."""

    def batch(self, stats: BatchStats) -> None: ...
    def case(self, case_id: str, facts: CaseFacts | None) -> None: ...
