"""Live response figures as pure formulas over the worker's cases (no Prometheus here).

`CaseIndex` keeps one small row per case (bounded labels only: source, district, urgency) and
aggregates them into the gauges ops watch: open and overdue cases, and today's 响应率 and
按期办结率 per district (a milestone counts once met or due before the clock, as in §8).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import date, datetime

from schemas.enums import AlertLevel, CaseStatus, Milestone
from streams.calendar import CHINA_TZ
from streams.cases import CaseState

OVERDUE_LEVELS = frozenset({AlertLevel.RED, AlertLevel.ESCALATION1, AlertLevel.ESCALATION2,
                            AlertLevel.ESCALATION3})


@dataclass(frozen=True, slots=True)
class CaseRow:
    source: str
    district: str
    urgency: str
    created_day: date
    open: bool
    overdue: bool
    respond_due: bool  # met, or due before the clock
    respond_on_time: bool
    resolve_due: bool
    resolve_on_time: bool


def case_row(state: CaseState, clock: datetime) -> CaseRow | None:
    """The case's contribution to the live figures; None for cancelled cases (never counted)."""
    if state.status is CaseStatus.CANCELLED:
        return None
    is_open = state.status is not CaseStatus.CLOSED
    overdue = is_open and any(
        p.level in OVERDUE_LEVELS and _unmet(state, p.milestone, p.cycle) for p in state.fired(clock))
    flags = []
    for milestone in (Milestone.RESPOND, Milestone.RESOLVE):
        mc = state.clock(milestone)
        due = state.dues.get(milestone)
        if mc is None or due is None:
            flags += [False, False]
            continue
        met = mc.met_at is not None
        flags += [met or due < clock, met and mc.met_at <= due]  # type: ignore[operator]
    return CaseRow(state.source.value, state.district or "unknown", state.urgency.value,
                   state.created_at.astimezone(CHINA_TZ).date(), is_open, overdue, *flags)


def _unmet(state: CaseState, milestone: Milestone, cycle: int) -> bool:
    """Whether the milestone of this alert is still running and unmet (not an old cycle)."""
    current = state.clock(milestone)
    return current is not None and current.cycle == cycle and current.met_at is None


class CaseIndex:
    """One row per case, replaced on every evaluation; aggregates on demand (per scrape)."""

    def __init__(self) -> None:
        self.rows: dict[str, CaseRow] = {}
        self.clock: datetime | None = None

    def update(self, case_id: str, state: CaseState, clock: datetime) -> None:
        row = case_row(state, clock)
        if row is None:
            self.rows.pop(case_id, None)
        else:
            self.rows[case_id] = row
        if self.clock is None or clock > self.clock:
            self.clock = clock

    def open_and_overdue(self) -> tuple[Counter[tuple[str, str]], Counter[tuple[str, str]]]:
        open_cases: Counter[tuple[str, str]] = Counter()
        overdue: Counter[tuple[str, str]] = Counter()
        for row in self.rows.values():
            if row.open:
                open_cases[(row.source, row.district)] += 1
                if row.overdue:
                    overdue[(row.source, row.district)] += 1
        return open_cases, overdue

    def rates_for_day(self, day: date | None = None) -> dict[str, tuple[float | None, float | None]]:
        """District -> (响应率, 按期办结率) of the cases created on `day` (default: the clock's
        day in Asia/Shanghai); None where nothing was due yet."""
        if day is None:
            if self.clock is None:
                return {}
            day = self.clock.astimezone(CHINA_TZ).date()
        sums: dict[str, list[int]] = {}
        for row in self.rows.values():
            if row.created_day != day:
                continue
            s = sums.setdefault(row.district, [0, 0, 0, 0])
            s[0] += row.respond_due
            s[1] += row.respond_on_time
            s[2] += row.resolve_due
            s[3] += row.resolve_on_time
        return {d: (s[1] / s[0] if s[0] else None, s[3] / s[2] if s[2] else None)
                for d, s in sums.items()}
