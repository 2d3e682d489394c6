"""Case snapshot and alert models: what the worker emits and ClickHouse stores."""

from __future__ import annotations

from datetime import datetime

import orjson
from pydantic import BaseModel, ConfigDict

from schemas.enums import AlertEnd, AlertLevel, CaseStatus, Milestone, Satisfaction, Source, Urgency


class CaseSnapshot(BaseModel):
    """The latest state of one case; `version` grows with every distinct event applied."""

    model_config = ConfigDict(frozen=True)

    case_id: str
    source: Source
    system: str
    district: str | None = None
    street: str | None = None
    community: str | None = None
    grid: str | None = None
    category: str
    urgency: Urgency
    unit: str | None = None
    status: CaseStatus
    created_at: datetime
    responded_at: datetime | None = None
    resolved_at: datetime | None = None
    feedback_at: datetime | None = None
    closed_at: datetime | None = None
    respond_due: datetime | None = None
    resolve_due: datetime | None = None
    feedback_due: datetime | None = None
    satisfaction: Satisfaction | None = None
    reopen_count: int = 0
    escalation_level: int = 0
    cycle: int = 0
    respond_late_seconds: int | None = None
    resolve_late_seconds: int | None = None
    feedback_late_seconds: int | None = None
    # DESIGN §6a: who holds the case now (None: back with the dispatch centre), its returns and
    # re-dispatches, whether it is suspended, and the paused time of the current resolve clock
    # (seconds on that clock's own axis: working time for a working-day limit)
    holder_unit: str | None = None
    returned_count: int = 0
    reassigned_count: int = 0
    suspended: bool = False
    paused_seconds: int = 0
    # a due time was computed on the provisional calendar (a year without an official schedule)
    provisional: bool = False
    version: int

    def to_json(self) -> bytes:
        return orjson.dumps(self.model_dump(mode="json"))


class Alert(BaseModel):
    """One yellow / red / escalation alert; `alert_id` = case_id:milestone:cycle:level.

    `alerts.sla` carries three kinds of record for an alert: its firing (`retracted` false,
    `ended_at` null), its end once the milestone is met, the case closed or cancelled, or the
    clock restarted (`ended_at` and `end_reason` set), and its retraction when a late event
    proves it should never have fired (`retracted` true). `unit` is the unit that held the case
    at `fires_at` (DESIGN §6a)."""

    model_config = ConfigDict(frozen=True)

    alert_id: str
    case_id: str
    source: Source
    district: str | None = None
    street: str | None = None
    unit: str | None = None
    category: str
    milestone: Milestone
    cycle: int
    level: AlertLevel
    due_at: datetime
    fires_at: datetime
    emitted_at: datetime
    retracted: bool = False
    # fires_at / due_at computed on the provisional calendar (a year without an official schedule)
    provisional: bool = False
    # set on the record that ends an active alert: when and why it stopped being active
    ended_at: datetime | None = None
    end_reason: AlertEnd | None = None

    def to_json(self) -> bytes:
        return orjson.dumps(self.model_dump(mode="json"))


def alert_id(case_id: str, milestone: Milestone, cycle: int, level: AlertLevel) -> str:
    return f"{case_id}:{milestone}:{cycle}:{level}"
