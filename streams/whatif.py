"""The bureau's "what if": how many cases would have been overdue under each policy."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from schemas.enums import AlertLevel, CaseStatus
from schemas.event import Event
from schemas.policy import SlaPolicy
from streams.calendar import WorkingDayCalendar
from streams.cases import reduce_case

OVERDUE_LEVELS = {AlertLevel.RED, AlertLevel.ESCALATION1, AlertLevel.ESCALATION2,
                  AlertLevel.ESCALATION3}


@dataclass(frozen=True)
class WhatIfRow:
    district: str
    unit: str
    cases: int
    overdue: tuple[int, ...]  # one count per policy, in the order given


def group_by_case(events: Iterable[Event]) -> dict[str, list[Event]]:
    cases: dict[str, list[Event]] = {}
    for event in events:
        cases.setdefault(event.case_id, []).append(event)
    return cases


def compare_policies(events: Iterable[Event], policies: Sequence[SlaPolicy],
                     calendar: WorkingDayCalendar, as_of: datetime) -> list[WhatIfRow]:
    """Per district and unit: cases (not cancelled) and how many had a red or worse alert by
    `as_of` under each policy — a case counts once however many milestones were late."""
    totals: Counter[tuple[str, str]] = Counter()
    overdue: list[Counter[tuple[str, str]]] = [Counter() for _ in policies]
    for case_events in group_by_case(events).values():
        for index, policy in enumerate(policies):
            state = reduce_case(case_events, policy, calendar)
            if state.status is CaseStatus.CANCELLED:
                break
            key = (state.district or "?", state.unit or "?")
            if index == 0:
                totals[key] += 1
            if any(p.level in OVERDUE_LEVELS for p in state.fired(as_of)):
                overdue[index][key] += 1
    return [
        WhatIfRow(district, unit, count, tuple(o[(district, unit)] for o in overdue))
        for (district, unit), count in sorted(totals.items())
    ]
