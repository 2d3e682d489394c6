"""Canonical models, enums, unit codes and the SLA policy of civicflow."""

from schemas.case import Alert, CaseSnapshot, alert_id
from schemas.enums import (
    AlertEnd,
    AlertLevel,
    CaseStatus,
    ClockKind,
    EventType,
    Milestone,
    Satisfaction,
    Source,
    Urgency,
)
from schemas.errors import (
    CalendarUnknown,
    CivicflowError,
    ConfigError,
    InvalidRecord,
    RetryableError,
    SinkUnavailable,
)
from schemas.event import SCHEMA_VERSION, Event, make_case_id, make_event_id
from schemas.policy import Limit, SlaPolicy, load_policy

__all__ = [
    "SCHEMA_VERSION",
    "Alert",
    "AlertEnd",
    "AlertLevel",
    "CalendarUnknown",
    "CaseSnapshot",
    "CaseStatus",
    "CivicflowError",
    "ClockKind",
    "ConfigError",
    "Event",
    "EventType",
    "InvalidRecord",
    "Limit",
    "Milestone",
    "RetryableError",
    "Satisfaction",
    "SinkUnavailable",
    "SlaPolicy",
    "Source",
    "Urgency",
    "alert_id",
    "load_policy",
    "make_case_id",
    "make_event_id",
]
