"""Alert emission as a pure reconciliation between what should have fired and what was sent."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from schemas.case import Alert
from schemas.enums import AlertLevel, Milestone
from streams.cases import AlertPoint, CaseState


@dataclass(frozen=True, slots=True)
class SentAlert:
    """What the worker remembers of an alert it emitted."""

    milestone: Milestone
    cycle: int
    level: AlertLevel
    due_at: datetime
    fires_at: datetime
    retracted: bool


def reconcile(
    state: CaseState, sent: dict[str, SentAlert], clock: datetime, emitted_at: datetime
) -> list[Alert]:
    """Alerts to emit now: new ones whose instant the clock has reached, and retractions of
    sent ones that a late event proved wrong. Updates `sent` in place."""
    due: dict[str, AlertPoint] = {p.alert_id: p for p in state.points if p.fires_at <= clock}
    out: list[Alert] = []
    for aid, point in due.items():
        previous = sent.get(aid)
        if point.fires and (previous is None or previous.retracted):
            out.append(_alert(state, aid, point.milestone, point.cycle, point.level,
                              point.due_at, point.fires_at, emitted_at, retracted=False))
            sent[aid] = SentAlert(point.milestone, point.cycle, point.level, point.due_at,
                                  point.fires_at, False)
    for aid, previous in sent.items():
        if previous.retracted:
            continue
        still_due = due.get(aid)
        if still_due is not None and still_due.fires:
            continue
        out.append(_alert(state, aid, previous.milestone, previous.cycle, previous.level,
                          previous.due_at, previous.fires_at, emitted_at, retracted=True))
        sent[aid] = SentAlert(previous.milestone, previous.cycle, previous.level,
                              previous.due_at, previous.fires_at, True)
    return out


def _alert(
    state: CaseState,
    aid: str,
    milestone: Milestone,
    cycle: int,
    level: AlertLevel,
    due_at: datetime,
    fires_at: datetime,
    emitted_at: datetime,
    *,
    retracted: bool,
) -> Alert:
    return Alert(
        alert_id=aid,
        case_id=state.case_id,
        source=state.source,
        district=state.district,
        street=state.street,
        unit=state.unit,
        category=state.category,
        milestone=milestone,
        cycle=cycle,
        level=level,
        due_at=due_at,
        fires_at=fires_at,
        emitted_at=emitted_at,
        retracted=retracted,
    )
