"""Live response figures as pure formulas over the worker's cases (no Prometheus here).

`CaseIndex` keeps one small row per case (`CaseFacts`: bounded labels only — source, district,
urgency) and aggregates them into the gauges ops watch: open, overdue and suspended cases, and
today's 响应率 and 按期办结率 per district (a milestone counts once met or due before the
clock, as in DESIGN §8).
"""

from __future__ import annotations

from collections import Counter
from datetime import date

from streams.calendar import day_index
from streams.processor import CaseFacts

_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()


class CaseIndex:
    """One row per case, replaced on every evaluation; aggregates on demand (per scrape)."""

    def __init__(self) -> None:
        self.rows: dict[str, CaseFacts] = {}
        self.clock_us: int | None = None

    def update(self, case_id: str, facts: CaseFacts | None, clock_us: int | None = None) -> None:
        if facts is None:
            self.rows.pop(case_id, None)
        else:
            self.rows[case_id] = facts
        if clock_us is not None:
            self.update_clock(clock_us)

    def update_clock(self, clock_us: int) -> None:
        if self.clock_us is None or clock_us > self.clock_us:
            self.clock_us = clock_us

    def open_overdue_suspended(self) -> tuple[Counter[tuple[str, str]], Counter[tuple[str, str]],
                                              Counter[tuple[str, str]]]:
        open_cases: Counter[tuple[str, str]] = Counter()
        overdue: Counter[tuple[str, str]] = Counter()
        suspended: Counter[tuple[str, str]] = Counter()
        for row in self.rows.values():
            if row.open:
                key = (row.source, row.district)
                open_cases[key] += 1
                overdue[key] += row.overdue
                suspended[key] += row.suspended
        return open_cases, overdue, suspended

    def rates_for_day(self, day: date | None = None) -> dict[str, tuple[float | None, float | None]]:
        """District -> (响应率, 按期办结率) of the cases created on `day` (default: the clock's
        day in Asia/Shanghai); None where nothing was due yet."""
        if day is None:
            if self.clock_us is None:
                return {}
            wanted = day_index(self.clock_us)
        else:
            wanted = day.toordinal() - _EPOCH_ORDINAL
        sums: dict[str, list[int]] = {}
        for row in self.rows.values():
            if day_index(row.created_us) != wanted:
                continue
            s = sums.setdefault(row.district, [0, 0, 0, 0])
            s[0] += row.respond_due
            s[1] += row.respond_on_time
            s[2] += row.resolve_due
            s[3] += row.resolve_on_time
        return {d: (s[1] / s[0] if s[0] else None, s[3] / s[2] if s[2] else None)
                for d, s in sums.items()}
