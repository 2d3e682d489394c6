"""The case state machine: a pure reduction of a case's events (DESIGN §6).

The result depends only on the set of events (deduplicated by `event_id`, reduced in
`occurred_at` order), the policy and the calendar — never on arrival order or wall time.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime
from fractions import Fraction

from schemas.case import CaseSnapshot, alert_id
from schemas.enums import (
    AlertLevel,
    CaseStatus,
    ClockKind,
    EventType,
    Milestone,
    Satisfaction,
    Source,
    Urgency,
)
from schemas.event import Event
from schemas.policy import Limit, SlaPolicy
from streams.calendar import CHINA_TZ, WorkingDayCalendar
from streams.sla import clock_instant

# Tie-break for events at the same instant: the natural lifecycle order.
TYPE_ORDER: dict[EventType, int] = {
    EventType.CREATED: 0,
    EventType.DISPATCHED: 1,
    EventType.RETURNED: 2,
    EventType.REASSIGNED: 3,
    EventType.RESPONDED: 4,
    EventType.EXTENDED: 5,
    EventType.SUPERVISED: 6,
    EventType.SUSPENDED: 7,
    EventType.RESUMED: 8,
    EventType.RESOLVED: 9,
    EventType.FEEDBACK: 10,
    EventType.REOPENED: 11,
    EventType.CLOSED: 12,
    EventType.CANCELLED: 13,
}
_STATUS_OF: dict[EventType, CaseStatus] = {
    EventType.CREATED: CaseStatus.CREATED,
    EventType.DISPATCHED: CaseStatus.DISPATCHED,
    EventType.RESPONDED: CaseStatus.RESPONDED,
    EventType.RESOLVED: CaseStatus.RESOLVED,
    EventType.FEEDBACK: CaseStatus.FEEDBACK,
    EventType.REOPENED: CaseStatus.REOPENED,
    EventType.CLOSED: CaseStatus.CLOSED,
    EventType.CANCELLED: CaseStatus.CANCELLED,
}
ESCALATION_RANK: dict[AlertLevel, int] = {
    AlertLevel.YELLOW: 0,
    AlertLevel.RED: 0,
    AlertLevel.ESCALATION1: 1,
    AlertLevel.ESCALATION2: 2,
    AlertLevel.ESCALATION3: 3,
}


_WHOLE = Fraction(1)


def event_sort_key(event: Event) -> tuple[datetime, int, str]:
    return (event.occurred_at, TYPE_ORDER[event.type], event.event_id)


@dataclass(frozen=True, slots=True)
class MilestoneClock:
    """One milestone in one cycle: when its clock started, its limits, when it was met."""

    milestone: Milestone
    cycle: int
    start: datetime
    # the initial limit, then one entry per approved extension with the instant it took effect
    limits: tuple[tuple[Limit, datetime | None], ...]
    met_at: datetime | None
    stopped_at: datetime | None  # closed, cancelled, or superseded by a reopen
    start_day: date | None = None  # the start's date in China, computed once

    def instant(self, fraction: Fraction, calendar: WorkingDayCalendar) -> tuple[datetime, Limit]:
        """Where `fraction` of the limit falls. An extension only moves points not yet reached
        when it took effect: alerts already due under the earlier limit stay where they were."""
        for index, (limit, _) in enumerate(self.limits):
            at = clock_instant(self.start, limit, fraction, calendar, self.start_day)
            following = self.limits[index + 1][1] if index + 1 < len(self.limits) else None
            if following is None or at < following:
                return at, limit
        raise AssertionError("unreachable: the last limit always returns")

    def due(self, calendar: WorkingDayCalendar) -> datetime:
        """The red instant under the final (extended) limit."""
        return clock_instant(self.start, self.limits[-1][0], _WHOLE, calendar, self.start_day)


@dataclass(frozen=True, slots=True)
class AlertPoint:
    alert_id: str
    milestone: Milestone
    cycle: int
    level: AlertLevel
    due_at: datetime
    fires_at: datetime
    fires: bool  # milestone unmet and clock running at fires_at

    @property
    def escalation(self) -> int:
        return ESCALATION_RANK[self.level]


@dataclass(frozen=True)
class CaseState:
    case_id: str
    source: Source
    system: str
    district: str | None
    street: str | None
    community: str | None
    grid: str | None
    category: str
    urgency: Urgency
    unit: str | None
    caller_hash: str | None
    status: CaseStatus
    created_at: datetime
    closed_at: datetime | None
    cancelled_at: datetime | None
    satisfaction: Satisfaction | None
    reopen_count: int
    cycle: int
    event_count: int
    last_event_at: datetime
    clocks: tuple[MilestoneClock, ...]
    points: tuple[AlertPoint, ...]
    dues: dict[Milestone, datetime] = field(default_factory=dict)

    def clock(self, milestone: Milestone, cycle: int | None = None) -> MilestoneClock | None:
        wanted = self.cycle if cycle is None else cycle
        found = None
        for c in self.clocks:
            if c.milestone is milestone and (c.milestone is Milestone.RESPOND or c.cycle == wanted):
                found = c
        return found

    def fired(self, clock: datetime) -> list[AlertPoint]:
        return [p for p in self.points if p.fires and p.fires_at <= clock]

    def escalation_level(self, clock: datetime) -> int:
        return max((p.escalation for p in self.fired(clock)), default=0)

    @property
    def is_open(self) -> bool:
        return self.status not in (CaseStatus.CLOSED, CaseStatus.CANCELLED)

    def next_instant(self, after: datetime) -> datetime | None:
        """The earliest alert instant strictly after `after` that would fire."""
        return min((p.fires_at for p in self.points if p.fires and p.fires_at > after), default=None)

    def snapshot(self, clock: datetime) -> CaseSnapshot:
        escalation = self.escalation_level(clock)
        respond = self.clock(Milestone.RESPOND)
        resolve = self.clock(Milestone.RESOLVE)
        feedback = self.clock(Milestone.FEEDBACK)
        return CaseSnapshot(
            case_id=self.case_id,
            source=self.source,
            system=self.system,
            district=self.district,
            street=self.street,
            community=self.community,
            grid=self.grid,
            category=self.category,
            urgency=self.urgency,
            unit=self.unit,
            status=self.status,
            created_at=self.created_at,
            responded_at=respond.met_at if respond else None,
            resolved_at=resolve.met_at if resolve else None,
            feedback_at=feedback.met_at if feedback else None,
            closed_at=self.closed_at,
            respond_due=self.dues.get(Milestone.RESPOND),
            resolve_due=self.dues.get(Milestone.RESOLVE),
            feedback_due=self.dues.get(Milestone.FEEDBACK),
            satisfaction=self.satisfaction,
            reopen_count=self.reopen_count,
            escalation_level=escalation,
            cycle=self.cycle,
            respond_late_seconds=_late(respond, self.dues.get(Milestone.RESPOND)),
            resolve_late_seconds=_late(resolve, self.dues.get(Milestone.RESOLVE)),
            feedback_late_seconds=_late(feedback, self.dues.get(Milestone.FEEDBACK)),
            # grows with every distinct event, and with escalation for the same events
            version=self.event_count * 16 + escalation,
        )


def _late(clock: MilestoneClock | None, due: datetime | None) -> int | None:
    if clock is None or clock.met_at is None or due is None or clock.met_at <= due:
        return None
    return int((clock.met_at - due).total_seconds())


def _preferred(event: Event) -> tuple[int, tuple[datetime, int, str]]:
    # a later snapshot may restate an event with a higher reopen count (12345 重办次数)
    return (-(event.reopen_count or 0), event_sort_key(event))


def supersedes(new: Event, kept: Event) -> bool:
    """Whether an event with a known id replaces the kept one (else it is a duplicate)."""
    return _preferred(new) < _preferred(kept)


def dedupe_and_sort(events: Iterable[Event]) -> list[Event]:
    by_id: dict[str, Event] = {}
    for event in events:
        kept = by_id.get(event.event_id)
        if kept is None or supersedes(event, kept):
            by_id[event.event_id] = event
    return sorted(by_id.values(), key=event_sort_key)


def reduce_case(
    events: Iterable[Event], policy: SlaPolicy, calendar: WorkingDayCalendar
) -> CaseState:
    ordered = dedupe_and_sort(events)
    if not ordered:
        raise ValueError("a case needs at least one event")
    first = ordered[0]
    origin = next((e for e in ordered if e.type is EventType.CREATED), first)
    created_at = origin.occurred_at

    def first_value(attr: str) -> str | None:
        value = getattr(origin, attr)
        if value is not None:
            return str(value)
        return next((str(getattr(e, attr)) for e in ordered if getattr(e, attr) is not None), None)

    unit = next((e.unit for e in reversed(ordered) if e.unit is not None), None)
    status = CaseStatus.CREATED
    satisfaction: Satisfaction | None = None
    closed_at: datetime | None = None
    cancelled_at: datetime | None = None

    # cycle bookkeeping: [start, resolved_at, feedback_at, extensions, stopped_at]
    cycles: list[dict] = [
        {"start": created_at, "resolved": None, "feedback": None, "ext": [], "stop": None}
    ]
    responded_at: datetime | None = None
    respond_stop: datetime | None = None
    for event in ordered:
        current = cycles[-1]
        kind = event.type
        if kind in _STATUS_OF:
            status = _STATUS_OF[kind]
        if kind is EventType.RESPONDED and responded_at is None and respond_stop is None:
            responded_at = event.occurred_at
        elif kind is EventType.RESOLVED and current["resolved"] is None and current["stop"] is None:
            current["resolved"] = event.occurred_at
        elif kind is EventType.FEEDBACK:
            if current["feedback"] is None and current["stop"] is None:
                current["feedback"] = event.occurred_at
            if event.satisfaction is not None:
                satisfaction = event.satisfaction
        elif kind is EventType.EXTENDED and event.extension_days and current["stop"] is None:
            current["ext"].append((event.extension_days, event.occurred_at))
        elif kind is EventType.REOPENED:
            if current["stop"] is None:
                current["stop"] = event.occurred_at
            cycles.append(
                {"start": event.occurred_at, "resolved": None, "feedback": None, "ext": [], "stop": None}
            )
        elif kind in (EventType.CLOSED, EventType.CANCELLED):
            if current["stop"] is None:
                current["stop"] = event.occurred_at
            if respond_stop is None:
                respond_stop = event.occurred_at
            if kind is EventType.CLOSED:
                closed_at = event.occurred_at
            else:
                cancelled_at = event.occurred_at

    source = first.source
    system = first.system
    urgency = origin.urgency
    limits = dict(policy.limits_for(source, system, urgency))
    given_due = next((e.due_at for e in ordered if e.due_at is not None), None)
    if given_due is not None and given_due > created_at:
        # the source set the resolve due itself (Open311 Due Date): natural time up to it
        limits[Milestone.RESOLVE] = Limit(ClockKind.HOURS,
                                          Fraction((given_due - created_at).total_seconds()))
    reported_reopens = max((e.reopen_count or 0 for e in ordered), default=0)
    clocks: list[MilestoneClock] = []
    if Milestone.RESPOND in limits:
        clocks.append(
            MilestoneClock(
                Milestone.RESPOND,
                0,
                created_at,
                ((limits[Milestone.RESPOND], None),),
                responded_at,
                respond_stop,
                created_at.astimezone(CHINA_TZ).date(),
            )
        )
    cycle_days = [c["start"].astimezone(CHINA_TZ).date() for c in cycles]
    for number, cycle in enumerate(cycles):
        for milestone, met_key in ((Milestone.RESOLVE, "resolved"), (Milestone.FEEDBACK, "feedback")):
            if milestone not in limits:
                continue
            chain: list[tuple[Limit, datetime | None]] = [(limits[milestone], None)]
            if milestone is Milestone.RESOLVE:
                for days, at in cycle["ext"]:
                    chain.append((chain[-1][0].extended(days), at))
            clocks.append(
                MilestoneClock(
                    milestone, number, cycle["start"], tuple(chain), cycle[met_key], cycle["stop"],
                    cycle_days[number],
                )
            )

    points: list[AlertPoint] = []
    for clock in clocks:
        due_of: dict[int, datetime] = {}
        for level, fraction in policy.alert_fractions.items():
            fires_at, limit = clock.instant(fraction, calendar)
            due_at = due_of.get(limit.micros)
            if due_at is None:
                due_at = due_of[limit.micros] = clock_instant(clock.start, limit, _WHOLE, calendar,
                                                              clock.start_day)
            unmet = clock.met_at is None or clock.met_at > fires_at
            running = clock.stopped_at is None or clock.stopped_at > fires_at
            points.append(
                AlertPoint(
                    alert_id(origin.case_id, clock.milestone, clock.cycle, level),
                    clock.milestone,
                    clock.cycle,
                    level,
                    due_at,
                    fires_at,
                    unmet and running,
                )
            )

    current_cycle = len(cycles) - 1
    dues: dict[Milestone, datetime] = {}
    for clock in clocks:
        if clock.milestone is Milestone.RESPOND or clock.cycle == current_cycle:
            dues[clock.milestone] = clock.due(calendar)

    return CaseState(
        case_id=origin.case_id,
        source=source,
        system=system,
        district=first_value("district"),
        street=first_value("street"),
        community=first_value("community"),
        grid=first_value("grid"),
        category=origin.category,
        urgency=urgency,
        unit=unit,
        caller_hash=first_value("caller_hash"),
        status=status,
        created_at=created_at,
        closed_at=closed_at,
        cancelled_at=cancelled_at,
        satisfaction=satisfaction,
        reopen_count=max(len(cycles) - 1, reported_reopens),
        cycle=current_cycle,
        event_count=len(ordered),
        last_event_at=ordered[-1].occurred_at,
        clocks=tuple(clocks),
        points=tuple(points),
        dues=dues,
    )
