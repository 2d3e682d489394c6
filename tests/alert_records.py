"""alerts.sla records as the worker writes them (fire, end, retraction), for tests."""

from __future__ import annotations

from datetime import datetime, timedelta

from schemas.case import Alert, alert_id
from schemas.enums import AlertEnd, AlertLevel, Milestone


def fire(case_id: str, level: str, fires_at: datetime, *, milestone: str = "respond", cycle: int = 0,
         due_at: datetime | None = None, district: str | None = "370102",
         street: str | None = "370102001", unit: str | None = "370102001-wg",
         category: str = "G03.01", emitted_at: datetime | None = None) -> Alert:
    source = case_id.split(":", 1)[0]
    return Alert(alert_id=alert_id(case_id, Milestone(milestone), cycle, AlertLevel(level)),
                 case_id=case_id, source=source, district=district, street=street, unit=unit,
                 category=category, milestone=milestone, cycle=cycle, level=level,
                 due_at=due_at or fires_at, fires_at=fires_at, emitted_at=emitted_at or fires_at)


def end(alert: Alert, ended_at: datetime, reason: str = "met",
        emitted_at: datetime | None = None) -> Alert:
    return alert.model_copy(update={"ended_at": ended_at, "end_reason": AlertEnd(reason),
                                    "emitted_at": emitted_at or ended_at})


def retract(alert: Alert, emitted_at: datetime) -> Alert:
    return alert.model_copy(update={"retracted": True, "emitted_at": emitted_at})


def later(at: datetime, seconds: float) -> datetime:
    return at + timedelta(seconds=seconds)
