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
    RETURNED = "returned"  # 退单: the holding unit hands the case back to the dispatch centre
    REASSIGNED = "reassigned"  # 改派: the centre dispatches it to another unit
    SUSPENDED = "suspended"  # 挂起: clocks pause
    RESUMED = "resumed"  # 解挂: clocks run again


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
    RETURNED = "returned"  # back with the dispatch centre, no unit holds it
    SUSPENDED = "suspended"


class AlertEnd(StrEnum):
    """Why an alert stopped being active (it stays in the record of what fired)."""

    MET = "met"  # the milestone was met
    CLOSED = "closed"
    CANCELLED = "cancelled"
    RESTARTED = "restarted"  # its clock was superseded: a reopen (resolve, feedback) or a re-dispatch (respond)


class ClockKind(StrEnum):
    HOURS = "hours"
    WORKING_DAYS = "working_days"


# Which event type meets which milestone.
MILESTONE_EVENT: dict[Milestone, EventType] = {
    Milestone.RESPOND: EventType.RESPONDED,
    Milestone.RESOLVE: EventType.RESOLVED,
    Milestone.FEEDBACK: EventType.FEEDBACK,
}
