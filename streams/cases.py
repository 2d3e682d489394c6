"""The case state machine: a pure reduction of a case's events (DESIGN §6, §6a).

The result depends only on the set of events (deduplicated by `event_id`; events of one case
with the same type and instant are one step; reduced in `occurred_at` order), the policy and
the calendar — never on arrival order or wall time.

`CaseFold` accumulates steps in reduction order, so a worker can apply an event that arrives in
order to the fold it has, and re-reduce only when one does not. `CaseState` derives the clocks
from a fold; alert instants are computed when asked for and kept, so the worker computes only
the instants its clock has reached and the next one.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from fractions import Fraction

from schemas.case import CaseSnapshot, alert_id
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
from schemas.event import Event
from schemas.policy import Limit, SlaPolicy
from streams.calendar import WorkingDayCalendar, day_index, from_us
from streams.sla import NEVER, Pause, clock_instant_us, paused_amount, scaled_microseconds
from streams.steps import TYPE_ORDER, CaseAttrs, Step

__all__ = ["TYPE_ORDER", "AlertPoint", "CaseFold", "CaseState", "MilestoneClock", "Step",
           "dedupe_and_sort", "distinct_steps", "event_sort_key", "reduce_case", "reduce_steps",
           "supersedes"]

_STATUS_OF: dict[EventType, CaseStatus] = {
    EventType.CREATED: CaseStatus.CREATED,
    EventType.DISPATCHED: CaseStatus.DISPATCHED,
    EventType.RESPONDED: CaseStatus.RESPONDED,
    EventType.RESOLVED: CaseStatus.RESOLVED,
    EventType.FEEDBACK: CaseStatus.FEEDBACK,
    EventType.REOPENED: CaseStatus.REOPENED,
    EventType.CLOSED: CaseStatus.CLOSED,
    EventType.CANCELLED: CaseStatus.CANCELLED,
    EventType.RETURNED: CaseStatus.RETURNED,
    EventType.REASSIGNED: CaseStatus.DISPATCHED,
}
ESCALATION_RANK: dict[AlertLevel, int] = {
    AlertLevel.YELLOW: 0,
    AlertLevel.RED: 0,
    AlertLevel.ESCALATION1: 1,
    AlertLevel.ESCALATION2: 2,
    AlertLevel.ESCALATION3: 3,
}
MILESTONES = (Milestone.RESPOND, Milestone.RESOLVE, Milestone.FEEDBACK)
MILESTONE_INDEX = {m: i for i, m in enumerate(MILESTONES)}
LEVELS = tuple(AlertLevel)
_MEETS = {EventType.RESPONDED: Milestone.RESPOND, EventType.RESOLVED: Milestone.RESOLVE,
          EventType.FEEDBACK: Milestone.FEEDBACK}
_STOP_REASON = {EventType.CLOSED: AlertEnd.CLOSED, EventType.CANCELLED: AlertEnd.CANCELLED,
                EventType.REOPENED: AlertEnd.RESTARTED, EventType.REASSIGNED: AlertEnd.RESTARTED}
_WHOLE = Fraction(1)
_BEFORE_ALL = -NEVER


# ---- events in, distinct steps out ------------------------------------------------------------

def event_sort_key(event: Event) -> tuple[datetime, int, str]:
    return (event.occurred_at, TYPE_ORDER[event.type], event.event_id)


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


def distinct_steps(steps: Iterable[Step]) -> list[Step]:
    """One step per (instant, type) in reduction order: a step seen through two exports (the
    order export's 派单时间 and the circulation log's 派单 row) counts once, the log's copy kept."""
    chosen: dict[tuple[int, int], Step] = {}
    for step in steps:
        slot = (step.at, step.order)
        kept = chosen.get(slot)
        if kept is None or (step.rank, step.event_id) < (kept.rank, kept.event_id):
            chosen[slot] = step
    return sorted(chosen.values(), key=lambda s: (s.at, s.order, s.event_id))


# ---- the fold ---------------------------------------------------------------------------------

class Cycle:
    """One run of a milestone's clock: from its start until met or stopped."""

    __slots__ = ("ext", "met", "start", "stop", "stop_reason")

    def __init__(self, start: int) -> None:
        self.start = start
        self.met: int | None = None
        self.stop: int | None = None
        self.stop_reason: AlertEnd | None = None
        self.ext: list[tuple[int, int]] = []  # (working days, instant it took effect)

    def halt(self, at: int, reason: AlertEnd) -> None:
        if self.stop is None:
            self.stop = at
            self.stop_reason = reason


class CaseFold:
    """A case's steps applied in reduction order (`apply` only with a step that sorts after
    every step applied so far). `origin` is the case's `created` step, or its first step."""

    __slots__ = ("calendar", "closed_at", "count", "cancelled_at", "cycles", "given_due", "halted",
                 "holders", "last_key", "origin", "pauses", "policy", "reassigned", "reopens",
                 "reported_reopens", "returned", "satisfaction", "status", "status_before_pause",
                 "steps", "unit")

    def __init__(self, origin: Step, policy: SlaPolicy, calendar: WorkingDayCalendar) -> None:
        self.policy = policy
        self.calendar = calendar
        self.origin = origin
        created = origin.at
        self.cycles: dict[Milestone, list[Cycle]] = {m: [Cycle(created)] for m in MILESTONES}
        created_unit = origin.unit if origin.kind is EventType.CREATED else None
        self.holders: list[tuple[int, str | None]] = [(_BEFORE_ALL, created_unit)]
        self.pauses: list[list] = []  # [start, end or None while open, auto end, provisional]
        self.status = CaseStatus.CREATED
        self.status_before_pause = CaseStatus.CREATED
        self.satisfaction: Satisfaction | None = None
        self.closed_at: int | None = None
        self.cancelled_at: int | None = None
        self.halted = False  # closed or cancelled (a reopen lets resolve and feedback run again)
        self.given_due: int | None = None
        self.unit: str | None = None
        self.reopens = self.reported_reopens = self.returned = self.reassigned = self.count = 0
        self.last_key: tuple[int, int, str] | None = None
        self.steps: list[Step] = []

    def apply(self, step: Step) -> None:
        kind = step.kind
        at = step.at
        self.steps.append(step)
        self.count += 1
        self.last_key = (at, step.order, step.event_id)
        if step.unit is not None:
            self.unit = step.unit
        if step.reopen_count and step.reopen_count > self.reported_reopens:
            self.reported_reopens = step.reopen_count
        if step.due_at is not None and self.given_due is None:
            self.given_due = step.due_at
        status = _STATUS_OF.get(kind)
        if status is not None:
            self.status = status
        cycles = self.cycles
        milestone = _MEETS.get(kind)
        if milestone is not None:
            current = cycles[milestone][-1]
            if current.met is None and current.stop is None:
                current.met = at
            if kind is EventType.FEEDBACK and step.satisfaction is not None:
                self.satisfaction = step.satisfaction
        elif kind is EventType.DISPATCHED:
            self.holders.append((at, step.unit))
        elif kind is EventType.EXTENDED:
            resolve = cycles[Milestone.RESOLVE][-1]
            if step.extension_days and resolve.stop is None:
                resolve.ext.append((step.extension_days, at))
        elif kind is EventType.REOPENED:
            for m in (Milestone.RESOLVE, Milestone.FEEDBACK):
                cycles[m][-1].halt(at, AlertEnd.RESTARTED)
                cycles[m].append(Cycle(at))
            self.reopens += 1
            self.halted = False
        elif kind is EventType.CLOSED or kind is EventType.CANCELLED:
            reason = _STOP_REASON[kind]
            for m in MILESTONES:
                cycles[m][-1].halt(at, reason)
            if kind is EventType.CLOSED:
                self.closed_at = at
            else:
                self.cancelled_at = at
            self.halted = True
            pause = self._open_pause(at)
            if pause is not None:
                pause[1] = at
        elif kind is EventType.RETURNED:
            self.holders.append((at, None))
            self.returned += 1
        elif kind is EventType.REASSIGNED:
            self.holders.append((at, step.unit))
            self.reassigned += 1
            if not self.halted:
                for m in self.policy.reassign_restarts:
                    cycles[m][-1].halt(at, AlertEnd.RESTARTED)
                    cycles[m].append(Cycle(at))
        elif kind is EventType.SUSPENDED:
            if not self.halted and self._open_pause(at) is None:
                limit = self.policy.max_suspension
                auto_end, provisional = clock_instant_us(
                    at, day_index(at), limit.clock, limit.micros, (), NEVER, self.calendar)
                self.pauses.append([at, None, auto_end, provisional])
                self.status_before_pause = self.status
                self.status = CaseStatus.SUSPENDED
        elif kind is EventType.RESUMED:
            pause = self._open_pause(at)
            if pause is not None:
                pause[1] = at
                if self.status is CaseStatus.SUSPENDED:
                    self.status = self.status_before_pause

    def _open_pause(self, at: int) -> list | None:
        """The suspension still running at `at` (not resumed, not ended by itself), if any."""
        if self.pauses:
            last = self.pauses[-1]
            if last[1] is None:
                if last[2] > at:
                    return last
                last[1] = last[2]  # it ended by itself at max_suspension
        return None


# ---- clocks and alert instants ----------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class AlertPoint:
    alert_id: str
    milestone: Milestone
    cycle: int
    level: AlertLevel
    due_at: datetime
    fires_at: datetime
    fires: bool  # milestone unmet and clock running at fires_at
    provisional: bool = False
    unit: str | None = None  # the holder at fires_at

    @property
    def escalation(self) -> int:
        return ESCALATION_RANK[self.level]


class MilestoneClock:
    """One milestone in one cycle: its start, limits (the first, then one per approved
    extension with the instant it took effect), when it was met or stopped, and its instants,
    computed once each when first asked for."""

    __slots__ = ("_dues", "_points", "calendar", "chain", "counting_until", "cycle", "fractions",
                 "kind", "met_us", "milestone", "pauses", "start_day", "start_us", "stop_reason",
                 "stop_us")

    def __init__(self, milestone: Milestone, cycle: int, start: int,
                 chain: tuple[tuple[Limit, int | None], ...],
                 met: int | None, stop: int | None, stop_reason: AlertEnd | None,
                 pauses: tuple[Pause, ...], fractions: tuple[Fraction, ...],
                 calendar: WorkingDayCalendar) -> None:
        self.milestone = milestone
        self.cycle = cycle
        self.start_us = start
        self.start_day = day_index(start)
        self.chain = chain
        self.kind = chain[0][0].clock
        self.met_us = met
        self.stop_us = stop
        self.stop_reason = stop_reason
        self.counting_until = min(NEVER if met is None else met, NEVER if stop is None else stop)
        self.pauses = pauses
        self.fractions = fractions
        self.calendar = calendar
        self._points: list[tuple[int, int, bool]] = []  # per level: fires_at, due_at, provisional
        self._dues: dict[int, tuple[int, bool]] = {}

    # datetimes for the pure API and explain
    @property
    def start(self) -> datetime:
        return from_us(self.start_us)

    @property
    def met_at(self) -> datetime | None:
        return None if self.met_us is None else from_us(self.met_us)

    @property
    def stopped_at(self) -> datetime | None:
        return None if self.stop_us is None else from_us(self.stop_us)

    @property
    def limits(self) -> tuple[tuple[Limit, datetime | None], ...]:
        return tuple((lim, None if at is None else from_us(at)) for lim, at in self.chain)

    def instant_us(self, micros: int) -> tuple[int, bool]:
        return clock_instant_us(self.start_us, self.start_day, self.kind, micros, self.pauses,
                                self.counting_until, self.calendar)

    def _due(self, limit: Limit) -> tuple[int, bool]:
        found = self._dues.get(limit.micros)
        if found is None:
            found = self._dues[limit.micros] = self.instant_us(limit.micros)
        return found

    def point(self, level: int) -> tuple[int, int, bool]:
        """(fires_at, due_at, provisional) of the alert level with index `level`. An extension
        moves only the points not yet reached when it took effect."""
        points = self._points
        while len(points) <= level:
            fraction = self.fractions[len(points)]
            chain = self.chain
            for index, (limit, _) in enumerate(chain):
                at, provisional = self.instant_us(scaled_microseconds(limit, fraction))
                following = chain[index + 1][1] if index + 1 < len(chain) else None
                if following is None or at < following:
                    due, due_provisional = self._due(limit)
                    points.append((at, due, provisional or due_provisional))
                    break
        return points[level]

    def due_us(self) -> tuple[int, bool]:
        """The red instant under the final (extended) limit."""
        return self._due(self.chain[-1][0])

    def due(self, _calendar: WorkingDayCalendar | None = None) -> datetime:
        return from_us(self.due_us()[0])

    def fires(self, at: int) -> bool:
        """Whether an instant `at` finds the milestone unmet and the clock running."""
        return self.counting_until > at

    def end(self) -> tuple[int, AlertEnd] | None:
        """When and why this clock stopped counting, if it did."""
        if self.counting_until >= NEVER:
            return None
        if self.met_us is not None and self.met_us == self.counting_until:
            return self.met_us, AlertEnd.MET
        return self.counting_until, self.stop_reason or AlertEnd.CLOSED

    def paused_us(self) -> int:
        """Paused time on this clock's axis: suspensions that found it unmet and running."""
        total = 0
        for p1, p2, _ in self.pauses:
            p1 = max(p1, self.start_us)
            if p2 > p1 and p1 < self.counting_until:
                total += paused_amount(self.kind, self.start_day, p1, p2, self.calendar)
        return total


@dataclass(frozen=True, slots=True)
class AlertChange:
    """What an evaluation emits for one alert: its firing, its end, or its retraction."""

    kind: str  # "fire" | "end" | "retract"
    code: int
    milestone: Milestone
    cycle: int
    level: AlertLevel
    fires_at: int
    due_at: int
    provisional: bool
    ended_at: int | None = None
    end_reason: AlertEnd | None = None


RETRACTED = 1
ENDED = 2


def alert_code(milestone_index: int, cycle: int, level_index: int) -> int:
    return (cycle * 3 + milestone_index) * 5 + level_index


def decode_alert_code(code: int) -> tuple[Milestone, int, AlertLevel]:
    rest, level = divmod(code, 5)
    cycle, milestone = divmod(rest, 3)
    return MILESTONES[milestone], cycle, LEVELS[level]


class CaseState:
    """A case as of its events: the fold's figures and the clocks derived from it."""

    def __init__(self, case_id: str, fold: CaseFold) -> None:
        policy = fold.policy
        calendar = fold.calendar
        origin = fold.origin
        self.case_id = case_id
        self.fold = fold
        attrs = _first_values(origin, fold.steps)
        self.source: Source = origin.attrs.source
        self.system = origin.attrs.system
        self.district, self.street, self.community, self.grid = (
            attrs.district, attrs.street, attrs.community, attrs.grid)
        self.category = origin.attrs.category
        self.urgency: Urgency = origin.attrs.urgency
        self.caller_hash = attrs.caller_hash
        self.unit = fold.unit
        self.created_us = origin.at
        self.closed_us = fold.closed_at
        self.cancelled_us = fold.cancelled_at
        self.satisfaction = fold.satisfaction
        self.reopen_count = max(fold.reopens, fold.reported_reopens)
        self.cycle = fold.reopens
        self.event_count = fold.count
        self.last_event_us = fold.steps[-1].at
        self.returned_count = fold.returned
        self.reassigned_count = fold.reassigned
        self.holders = fold.holders
        self.pauses: tuple[Pause, ...] = tuple(
            (p[0], p[1] if p[1] is not None else p[2], p[3]) for p in fold.pauses)
        self._status = fold.status
        self._status_before_pause = fold.status_before_pause
        limits = dict(policy.limits_for(self.source, self.system, self.urgency))
        if fold.given_due is not None and fold.given_due > self.created_us:
            # the source set the resolve due itself (Open311 Due Date): natural time up to it
            limits[Milestone.RESOLVE] = Limit(ClockKind.HOURS,
                                              Fraction(fold.given_due - self.created_us, 1_000_000))
        fractions = tuple(policy.alert_fractions[level] for level in LEVELS)
        clocks: list[MilestoneClock] = []
        current: dict[Milestone, MilestoneClock] = {}
        for milestone in MILESTONES:
            limit = limits.get(milestone)
            if limit is None:
                continue
            for number, run in enumerate(fold.cycles[milestone]):
                chain: list[tuple[Limit, int | None]] = [(limit, None)]
                for days, at in run.ext:
                    chain.append((chain[-1][0].extended(days), at))
                clock = MilestoneClock(milestone, number, run.start, tuple(chain), run.met, run.stop,
                                       run.stop_reason, self.pauses, fractions, calendar)
                clocks.append(clock)
                current[milestone] = clock
        self.clocks = tuple(clocks)
        self.current = current

    # ---- figures -----------------------------------------------------------------------------

    @property
    def created_at(self) -> datetime:
        return from_us(self.created_us)

    @property
    def closed_at(self) -> datetime | None:
        return None if self.closed_us is None else from_us(self.closed_us)

    @property
    def cancelled_at(self) -> datetime | None:
        return None if self.cancelled_us is None else from_us(self.cancelled_us)

    @property
    def last_event_at(self) -> datetime:
        return from_us(self.last_event_us)

    def holder_at(self, at: int) -> str | None:
        """The unit holding the case at instant `at` (DESIGN §6a)."""
        holder = None
        for since, unit in self.holders:
            if since > at:
                break
            holder = unit
        return holder

    @property
    def holder_unit(self) -> str | None:
        return self.holders[-1][1]

    def suspended_at(self, at: int) -> bool:
        fold_pauses = self.fold.pauses
        if not fold_pauses:
            return False
        last = fold_pauses[-1]
        return last[0] <= at and (last[1] if last[1] is not None else last[2]) > at

    def status_at(self, at: int) -> CaseStatus:
        if self._status is CaseStatus.SUSPENDED and not self.suspended_at(at):
            return self._status_before_pause
        return self._status

    @property
    def status(self) -> CaseStatus:
        return self._status

    @property
    def is_open(self) -> bool:
        return self._status not in (CaseStatus.CLOSED, CaseStatus.CANCELLED)

    def clock(self, milestone: Milestone, cycle: int | None = None) -> MilestoneClock | None:
        if cycle is None:
            return self.current.get(milestone)
        for c in self.clocks:
            if c.milestone is milestone and c.cycle == cycle:
                return c
        return None

    @property
    def dues(self) -> dict[Milestone, datetime]:
        return {m: from_us(c.due_us()[0]) for m, c in self.current.items()}

    def paused_seconds(self) -> int:
        resolve = self.current.get(Milestone.RESOLVE)
        return 0 if resolve is None else resolve.paused_us() // 1_000_000

    # ---- alert instants ----------------------------------------------------------------------

    def iter_points(self) -> Iterator[tuple[MilestoneClock, int, tuple[int, int, bool]]]:
        for clock in self.clocks:
            for level in range(len(LEVELS)):
                yield clock, level, clock.point(level)

    @property
    def points(self) -> tuple[AlertPoint, ...]:
        """Every alert instant of every clock (the pure API; the worker asks lazily)."""
        out = []
        for clock, level, (fires_at, due_at, provisional) in self.iter_points():
            out.append(AlertPoint(
                alert_id(self.case_id, clock.milestone, clock.cycle, LEVELS[level]), clock.milestone,
                clock.cycle, LEVELS[level], from_us(due_at), from_us(fires_at),
                clock.fires(fires_at), provisional, self.holder_at(fires_at)))
        return tuple(out)

    def fired(self, clock: datetime) -> list[AlertPoint]:
        return [p for p in self.points if p.fires and p.fires_at <= clock]

    def escalation_level(self, clock: datetime) -> int:
        return max((p.escalation for p in self.fired(clock)), default=0)

    def next_instant(self, after: datetime) -> datetime | None:
        """The earliest alert instant strictly after `after` that would fire."""
        found = min((p.fires_at for p in self.points if p.fires and p.fires_at > after), default=None)
        return found

    def evaluate(self, sent: dict[int, list], clock: int) -> tuple[list[AlertChange], int | None, int]:
        """Reconcile the alerts sent (`sent`: code -> [fires_at, due_at, flags], updated in place)
        with what should have fired by `clock`: new firings, ends of active alerts whose clock
        stopped, retractions of alerts a late event proved wrong. Only the instants the clock
        has reached, and the next one per clock, are computed. Returns the changes, the next
        instant at which this case needs looking at again, and its escalation level."""
        changes: list[AlertChange] = []
        upcoming = NEVER
        escalation = 0
        seen: set[int] = set()
        for clock_ in self.clocks:
            milestone = clock_.milestone
            m_index = MILESTONE_INDEX[milestone]
            for level in range(len(LEVELS)):
                fires_at, due_at, provisional = clock_.point(level)
                if fires_at > clock:
                    if clock_.fires(fires_at) and fires_at < upcoming:
                        upcoming = fires_at
                    break
                code = alert_code(m_index, clock_.cycle, level)
                seen.add(code)
                record = sent.get(code)
                if clock_.fires(fires_at):
                    rank = ESCALATION_RANK[LEVELS[level]]
                    if rank > escalation:
                        escalation = rank
                    if record is None or record[2] & RETRACTED:
                        sent[code] = [fires_at, due_at, 0]
                        changes.append(AlertChange("fire", code, milestone, clock_.cycle,
                                                   LEVELS[level], fires_at, due_at, provisional))
                elif record is not None and not record[2] & RETRACTED:
                    record[2] |= RETRACTED
                    changes.append(AlertChange("retract", code, milestone, clock_.cycle,
                                               LEVELS[level], record[0], record[1], provisional))
            end = clock_.end()
            for level in range(len(LEVELS)):
                code = alert_code(m_index, clock_.cycle, level)
                record = sent.get(code)
                if end is None or record is None or record[2] & (RETRACTED | ENDED) or code not in seen:
                    continue
                if end[0] <= clock:
                    record[2] |= ENDED
                    changes.append(AlertChange("end", code, milestone, clock_.cycle, LEVELS[level],
                                               record[0], record[1], False, end[0], end[1]))
                elif end[0] < upcoming:
                    upcoming = end[0]
        for code, record in sent.items():
            if code not in seen and not record[2] & RETRACTED:
                record[2] |= RETRACTED
                milestone, cycle, level_ = decode_alert_code(code)
                changes.append(AlertChange("retract", code, milestone, cycle, level_, record[0],
                                           record[1], False))
        for pause in self.fold.pauses:
            if pause[1] is None and clock < pause[2] < upcoming:
                upcoming = pause[2]  # the suspension ends by itself then: the snapshot changes
        return changes, (None if upcoming >= NEVER else upcoming), escalation

    def snapshot(self, clock: datetime) -> CaseSnapshot:
        from streams.snapshots import snapshot_dict

        sent: dict[int, list] = {}
        _, _, escalation = self.evaluate(sent, _us(clock))
        return CaseSnapshot.model_validate(snapshot_dict(self, _us(clock), escalation))


def _us(moment: datetime) -> int:
    from streams.calendar import to_us

    return to_us(moment)


def _first_values(origin: Step, steps: list[Step]) -> CaseAttrs:
    """Area and caller fields: the origin's, else the first step's in order that has one."""
    attrs = origin.attrs
    if all(step.attrs is attrs for step in steps):
        return attrs

    def first(index: int) -> str | None:
        value = attrs[index]
        if value is None:
            value = next((s.attrs[index] for s in steps if s.attrs[index] is not None), None)
        return value

    return CaseAttrs(attrs.source, attrs.system, first(2), first(3), first(4), first(5),
                     attrs.category, attrs.urgency, first(8))


# ---- the reduction ----------------------------------------------------------------------------

def fold_steps(ordered: list[Step], policy: SlaPolicy, calendar: WorkingDayCalendar) -> CaseFold:
    """Fold distinct steps already in reduction order."""
    if not ordered:
        raise ValueError("a case needs at least one event")
    origin = next((s for s in ordered if s.kind is EventType.CREATED), ordered[0])
    fold = CaseFold(origin, policy, calendar)
    for step in ordered:
        fold.apply(step)
    return fold


def reduce_steps(case_id: str, steps: Iterable[Step], policy: SlaPolicy,
                 calendar: WorkingDayCalendar) -> CaseState:
    return CaseState(case_id, fold_steps(distinct_steps(steps), policy, calendar))


def reduce_case(events: Iterable[Event], policy: SlaPolicy, calendar: WorkingDayCalendar) -> CaseState:
    ordered = dedupe_and_sort(events)
    if not ordered:
        raise ValueError("a case needs at least one event")
    return reduce_steps(ordered[0].case_id, (Step.of(e) for e in ordered), policy, calendar)
