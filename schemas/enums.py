from enum import StrEnum


class Source(StrEnum):
    GRID = "grid"
    HOTLINE = "hotline"
    PROPERTY = "property"


class EventType(StrEnum):
    CREATED = "created"
    DISPATCHED = "dispatched"
    RESPONDED = "responded"
    RESOLVED = "resolved"
    FEEDBACK = "feedback"
    REOPENED = "reopened"
    EXTENDED = "extended"
    SUPERVISED = "supervised"
    CANCELLED = "cancelled"
    CLOSED = "closed"


class Urgency(StrEnum):
    URGENT = "urgent"
    NORMAL = "normal"
    COMPLEX = "complex"


class Satisfaction(StrEnum):
    SATISFIED = "satisfied"
    BASICALLY_SATISFIED = "basically_satisfied"
    UNSATISFIED = "unsatisfied"


class Milestone(StrEnum):
    RESPOND = "respond"
    RESOLVE = "resolve"
    FEEDBACK = "feedback"


class AlertLevel(StrEnum):
    YELLOW = "yellow"
    RED = "red"
    ESCALATION1 = "escalation1"
    ESCALATION2 = "escalation2"
    ESCALATION3 = "escalation3"


class CaseStatus(StrEnum):
    CREATED = "created"
    DISPATCHED = "dispatched"
    RESPONDED = "responded"
    RESOLVED = "resolved"
    FEEDBACK = "feedback"
    REOPENED = "reopened"
    CLOSED = "closed"
    CANCELLED = "cancelled"


class ClockKind(StrEnum):
    HOURS = "hours"
    WORKING_DAYS = "working_days"


# Which event type meets which milestone.
MILESTONE_EVENT: dict[Milestone, EventType] = {
    Milestone.RESPOND: EventType.RESPONDED,
    Milestone.RESOLVE: EventType.RESOLVED,
    Milestone.FEEDBACK: EventType.FEEDBACK,
}
