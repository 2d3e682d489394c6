"""The case state machine: a pure reduction of a case's events (DESIGN §6, §6a).

The result depends only on the set of events (deduplicated by `event_id`; events of one case
with the same type and instant are one step; reduced in `occurred_at` order), the policy and
the calendar — never on arrival order or wall time.

`CaseState` is built by applying steps in reduction order, so a worker can apply an event that
arrives in order to the state it has, and re-reduce only when one does not. Each milestone run
(`MilestoneClock`) computes its alert instants when first asked for and keeps them, so the
worker computes only the instants its clock has reached and the next one.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from fractions import Fraction
from typing import Final

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
from streams.calendar import CHINA_OFFSET_US, DAY_US, WorkingDayCalendar, day_index, from_us, to_us
from streams.sla import NEVER, Pause, clock_instant_us, paused_amount, scale_micros
from streams.steps import TYPE_ORDER, CaseAttrs, Step

__all__ = ["TYPE_ORDER", "AlertChange", "AlertPoint", "CaseState", "MilestoneClock", "Step",
           "dedupe_and_sort", "distinct_steps", "event_sort_key", "reduce_case", "reduce_steps",
           "supersedes"]

_STATUS_OF: Final[dict[EventType, CaseStatus]] = {
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
ESCALATION_RANK: Final[dict[AlertLevel, int]] = {
    AlertLevel.YELLOW: 0,
    AlertLevel.RED: 0,
    AlertLevel.ESCALATION1: 1,
    AlertLevel.ESCALATION2: 2,
    AlertLevel.ESCALATION3: 3,
}
MILESTONES: Final = (Milestone.RESPOND, Milestone.RESOLVE, Milestone.FEEDBACK)
MILESTONE_INDEX: Final = {m: i for i, m in enumerate(MILESTONES)}
LEVELS: Final = tuple(AlertLevel)
_RANKS: Final = tuple(ESCALATION_RANK[level] for level in LEVELS)
# the milestone each event type meets
MEETS: Final = {EventType.RESPONDED: Milestone.RESPOND, EventType.RESOLVED: Milestone.RESOLVE,
                EventType.FEEDBACK: Milestone.FEEDBACK}
# statuses after which nothing more happens to a case
SETTLED: Final = (CaseStatus.CLOSED, CaseStatus.CANCELLED)
_BEFORE_ALL: Final = -NEVER
_HOURS: Final = ClockKind.HOURS
RETRACTED: Final = 1
ENDED: Final = 2
# enum members the code below tests against, as module constants: compiled, reading
# `EventType.CLOSED` calls the enum class's `__getattr__` every time (~10x a dict lookup);
# a Final name is a C static
_END_CANCELLED: Final = AlertEnd.CANCELLED
_END_CLOSED: Final = AlertEnd.CLOSED
_END_MET: Final = AlertEnd.MET
_END_RESTARTED: Final = AlertEnd.RESTARTED
_EV_CANCELLED: Final = EventType.CANCELLED
_EV_CLOSED: Final = EventType.CLOSED
_EV_CREATED: Final = EventType.CREATED
_EV_DISPATCHED: Final = EventType.DISPATCHED
_EV_EXTENDED: Final = EventType.EXTENDED
_EV_FEEDBACK: Final = EventType.FEEDBACK
_EV_REASSIGNED: Final = EventType.REASSIGNED
_EV_REOPENED: Final = EventType.REOPENED
_EV_RESUMED: Final = EventType.RESUMED
_EV_RETURNED: Final = EventType.RETURNED
_EV_SUSPENDED: Final = EventType.SUSPENDED
_M_FEEDBACK: Final = Milestone.FEEDBACK
_M_RESOLVE: Final = Milestone.RESOLVE
_ST_CREATED: Final = CaseStatus.CREATED
_ST_SUSPENDED: Final = CaseStatus.SUSPENDED


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


# ---- one run of a milestone's clock -----------------------------------------------------------

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
    """One milestone in one cycle: its start, its approved extensions (延期), when it was met or
    stopped, and its alert instants — each computed once, when first asked for."""

    __slots__ = ("_chain", "_checked", "_due_at", "_due_micros", "_due_provisional", "_final_at",
                 "_final_provisional", "_key_ext", "_key_limits", "_key_pause", "_key_until",
                 "_points", "cycle", "ext", "met_us", "milestone", "start_day", "start_us", "state",
                 "stop_reason", "stop_us")
    __deletable__ = ("state",)  # CaseState.release (mypyc: native attributes are not deletable)

    def __init__(self, state: CaseState, milestone: Milestone, cycle: int, start: int) -> None:
        self.state = state
        self.milestone = milestone
        self.cycle = cycle
        self.start_us = start
        self.start_day = day_index(start)
        self.met_us: int | None = None
        self.stop_us: int | None = None
        self.stop_reason: AlertEnd | None = None
        self.ext: list[tuple[int, int]] = []  # (working days, instant it took effect)
        # what the computed instants rest on (see `_fresh`), as plain fields: a worker keeps
        # three clocks per case, and every container object costs the cyclic collector a visit
        self._key_limits = self._key_ext = self._key_pause = self._key_until = -1
        # the case's step count when the key was last checked: only applying a step changes
        # what the instants rest on
        self._checked = -1
        # per level computed so far, flat: fires_at, due_at, provisional (0/1)
        self._points: list[int] = []
        # the due instant of the limit asked last (`_due`), and of the final limit (`due_us`);
        # -1: not computed
        self._due_micros = -1
        self._due_at = -1
        self._due_provisional = False
        self._final_at = -1
        self._final_provisional = False
        self._chain: tuple[tuple[Limit, int | None], ...] | None = None

    def halt(self, at: int, reason: AlertEnd) -> None:
        if self.stop_us is None:
            self.stop_us = at
            self.stop_reason = reason

    @property
    def counting_until(self) -> int:
        met, stop = self.met_us, self.stop_us
        if met is None:
            return NEVER if stop is None else stop
        return met if stop is None or met < stop else stop

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
    def chain(self) -> tuple[tuple[Limit, int | None], ...]:
        """The limit, then one extended limit per approved extension with when it took effect."""
        if self._checked != self.state.count:
            self._fresh()
        found = self._chain
        if found is None:
            chain: list[tuple[Limit, int | None]] = [(self.state.limits[self.milestone], None)]
            for days, at in self.ext:
                chain.append((chain[-1][0].extended(days), at))
            found = self._chain = tuple(chain)
        return found

    @property
    def limits(self) -> tuple[tuple[Limit, datetime | None], ...]:
        return tuple((lim, None if at is None else from_us(at)) for lim, at in self.chain)

    @property
    def kind(self) -> ClockKind:
        return self.state.limits[self.milestone].clock

    def _fresh(self) -> None:
        """Drop computed instants when what they rest on changed: the limits, an extension, the
        suspensions, or (where suspensions exist) when the clock stopped counting."""
        state = self.state
        self._checked = state.count
        limits, ext, pause = state.limits_version, len(self.ext), state.pause_version
        until = self.counting_until if state.pauses else 0
        if (limits != self._key_limits or ext != self._key_ext or pause != self._key_pause
                or until != self._key_until):
            self._key_limits, self._key_ext, self._key_pause, self._key_until = (
                limits, ext, pause, until)
            self._points.clear()
            self._due_micros = -1
            self._final_at = -1
            self._chain = None

    def instant_us(self, micros: int, kind: ClockKind) -> tuple[int, bool]:
        state = self.state
        if state.pauses:
            return clock_instant_us(self.start_us, self.start_day, kind, micros, state._spans,
                                    self.counting_until, state.calendar)
        if micros <= 0:
            return self.start_us, False
        if kind is _HOURS:
            return self.start_us + micros, False
        calendar = state.calendar
        at = calendar.end_after_us(self.start_day, micros)
        return at, (at - 1 + CHINA_OFFSET_US) // DAY_US > calendar.official_until_index

    def _due(self, limit: Limit) -> tuple[int, bool]:
        """The due instant of a limit: the last one asked is remembered (a clock without
        extensions has one limit; with extensions, the others are computed again)."""
        micros = limit.micros
        if micros != self._due_micros:
            self._due_at, self._due_provisional = self.instant_us(micros, limit.clock)
            self._due_micros = micros
        return self._due_at, self._due_provisional

    def point(self, level: int) -> tuple[int, int, bool]:
        """(fires_at, due_at, provisional) of the alert level with index `level`. An extension
        moves only the points not yet reached when it took effect."""
        if self._checked != self.state.count:
            self._fresh()
        points = self._points
        fractions = self.state.fraction_pairs
        while len(points) <= 3 * level:
            num, den = fractions[len(points) // 3]
            # without extensions the chain is the limit alone, not built (nor kept) per clock
            chain = self.chain if self.ext else ((self.state.limits[self.milestone], None),)
            for index, (limit, _) in enumerate(chain):
                at, provisional = self.instant_us(scale_micros(limit.micros, num, den), limit.clock)
                following = chain[index + 1][1] if index + 1 < len(chain) else None
                if following is None or at < following:
                    due, due_provisional = self._due(limit)
                    points.append(at)
                    points.append(due)
                    points.append(1 if provisional or due_provisional else 0)
                    break
        return points[3 * level], points[3 * level + 1], points[3 * level + 2] == 1

    def due_us(self) -> tuple[int, bool]:
        """The red instant under the final (extended) limit."""
        if self._checked != self.state.count:
            self._fresh()
        if self._final_at < 0:
            limit = self.chain[-1][0] if self.ext else self.state.limits[self.milestone]
            self._final_at, self._final_provisional = self._due(limit)
        return self._final_at, self._final_provisional

    def due(self, _calendar: WorkingDayCalendar | None = None) -> datetime:
        return from_us(self.due_us()[0])

    def fires(self, at: int) -> bool:
        """Whether an instant `at` finds the milestone unmet and the clock running."""
        return self.counting_until > at

    def end(self) -> tuple[int, AlertEnd] | None:
        """When and why this clock stopped counting, if it did."""
        until = self.counting_until
        if until >= NEVER:
            return None
        if self.met_us == until:
            return until, _END_MET
        return until, self.stop_reason or _END_CLOSED

    def paused_us(self) -> int:
        """Paused time on this clock's axis: suspensions that found it unmet and running."""
        total = 0
        until = self.counting_until
        kind = self.kind
        for p1, p2, _ in self.state.pause_spans():
            p1 = max(p1, self.start_us)
            if p2 > p1 and p1 < until:
                total += paused_amount(kind, self.start_day, p1, p2, self.state.calendar)
        return total


class AlertChange:
    """What an evaluation emits for one alert: its firing, its end, or its retraction.

    A plain class, not a dataclass: compiled, a dataclass keeps the `__init__` the dataclasses
    module generates, run as interpreted code with its arguments packed (one per alert)."""

    __slots__ = ("code", "cycle", "due_at", "end_reason", "ended_at", "fires_at", "kind", "level",
                 "milestone", "provisional")

    def __init__(self, kind: str, code: int, milestone: Milestone, cycle: int, level: AlertLevel,
                 fires_at: int, due_at: int, provisional: bool, ended_at: int | None = None,
                 end_reason: AlertEnd | None = None) -> None:
        self.kind = kind  # "fire" | "end" | "retract"
        self.code = code
        self.milestone = milestone
        self.cycle = cycle
        self.level = level
        self.fires_at = fires_at
        self.due_at = due_at
        self.provisional = provisional
        self.ended_at = ended_at
        self.end_reason = end_reason

    def __repr__(self) -> str:
        return (f"AlertChange({self.kind}, {self.milestone}:{self.cycle}:{self.level}, "
                f"fires_at={self.fires_at}, ended_at={self.ended_at})")


def alert_code(milestone_index: int, cycle: int, level_index: int) -> int:
    return (cycle * 3 + milestone_index) * 5 + level_index


def decode_alert_code(code: int) -> tuple[Milestone, int, AlertLevel]:
    rest, level = divmod(code, 5)
    cycle, milestone = divmod(rest, 3)
    return MILESTONES[milestone], cycle, LEVELS[level]


# ---- the case ---------------------------------------------------------------------------------

class CaseState:
    """A case as of the steps applied so far (`apply` only with a step that sorts after every
    step applied before; `origin` is the case's `created` step, or its first step)."""

    __slots__ = ("_attrs_filled", "_clocks", "_clocks_limits", "_clocks_runs", "_limits", "_spans",
                 "_status", "calendar", "cancelled_us", "case_id", "closed_us", "count", "cycles",
                 "fraction_pairs", "given_due", "halted", "holders", "last_at", "last_order",
                 "limits_version",
                 "origin", "pause_version", "pauses", "policy", "reassigned_count", "reopens",
                 "reported_reopens", "returned_count", "runs", "satisfaction", "snapshot_head",
                 "status_before_pause", "steps", "unit")

    def __init__(self, case_id: str, origin: Step, policy: SlaPolicy,
                 calendar: WorkingDayCalendar) -> None:
        self.case_id = case_id
        self.policy = policy
        self.calendar = calendar
        self.origin = origin
        self.fraction_pairs = policy.fraction_pairs
        created = origin.at
        self.cycles: dict[Milestone, list[MilestoneClock]] = {
            m: [MilestoneClock(self, m, 0, created)] for m in MILESTONES}
        created_unit = origin.unit if origin.kind is _EV_CREATED else None
        self.holders: list[tuple[int, str | None]] = [(_BEFORE_ALL, created_unit)]
        self.pauses: list[list] = []  # [start, end or None while open, auto end, provisional]
        self.pause_version = 0
        self._spans: tuple[Pause, ...] = ()
        self._status = _ST_CREATED
        self.status_before_pause = _ST_CREATED
        self.satisfaction: Satisfaction | None = None
        self.closed_us: int | None = None
        self.cancelled_us: int | None = None
        self.halted = False  # closed or cancelled (a reopen lets resolve and feedback run again)
        self.given_due: int | None = None
        self.unit: str | None = None
        self.reopens = self.reported_reopens = self.returned_count = self.reassigned_count = 0
        self.count = 0
        # instant and lifecycle order of the last step applied (`apply` takes only steps after
        # it); -1: none yet. Plain fields: a tuple per step would be one more object per event
        self.last_at = -1
        self.last_order = 0
        self.steps: list[Step] = []
        self._attrs_filled = origin.attrs
        self._limits: dict[Milestone, Limit] | None = None
        self.limits_version = 0
        self.runs = 3  # milestone runs so far (each reopen / re-dispatch adds some)
        self._clocks: tuple[MilestoneClock, ...] = ()
        self._clocks_limits = self._clocks_runs = -1
        # the snapshot's leading fields as JSON, for the attributes they were made from
        self.snapshot_head: tuple[CaseAttrs, bytes] | None = None

    def release(self) -> None:
        """Unlinks the clocks from the state, once the worker drops it: each clock refers back to
        its state, so a dropped state is a cycle only the cyclic collector frees, and the worker
        runs that rarely (`tune_gc`): ~47 objects a case piled up in a live worker's memory.
        The state is not to be used after this."""
        for runs in self.cycles.values():
            for clock in runs:
                del clock.state
        self._clocks = ()

    # ---- applying a step ---------------------------------------------------------------------

    def apply(self, step: Step) -> None:
        kind = step.kind
        at = step.at
        self.steps.append(step)
        self.count += 1
        self.last_at, self.last_order = at, step.order
        if step.attrs is not self.origin.attrs:
            self._fill_attrs(step.attrs)
        if step.unit is not None:
            self.unit = step.unit
        if step.reopen_count and step.reopen_count > self.reported_reopens:
            self.reported_reopens = step.reopen_count
        if step.due_at is not None and self.given_due is None:
            self.given_due = step.due_at
            self._limits = None
            self.limits_version += 1
        status = _STATUS_OF.get(kind)
        if status is not None:
            self._status = status
        cycles = self.cycles
        milestone = MEETS.get(kind)
        if milestone is not None:
            current = cycles[milestone][-1]
            if current.met_us is None and current.stop_us is None:
                current.met_us = at
            if kind is _EV_FEEDBACK and step.satisfaction is not None:
                self.satisfaction = step.satisfaction
        elif kind is _EV_DISPATCHED:
            self.holders.append((at, step.unit))
        elif kind is _EV_EXTENDED:
            resolve = cycles[_M_RESOLVE][-1]
            if step.extension_days and resolve.stop_us is None:
                resolve.ext.append((step.extension_days, at))
        elif kind is _EV_REOPENED:
            for m in (_M_RESOLVE, _M_FEEDBACK):
                runs = cycles[m]
                runs[-1].halt(at, _END_RESTARTED)
                runs.append(MilestoneClock(self, m, len(runs), at))
                self.runs += 1
            self.reopens += 1
            self.halted = False
        elif kind is _EV_CLOSED or kind is _EV_CANCELLED:
            reason = _END_CLOSED if kind is _EV_CLOSED else _END_CANCELLED
            for m in MILESTONES:
                cycles[m][-1].halt(at, reason)
            if kind is _EV_CLOSED:
                self.closed_us = at
            else:
                self.cancelled_us = at
            self.halted = True
            pause = self._open_pause(at)
            if pause is not None:
                pause[1] = at
                self._pauses_changed()
        elif kind is _EV_RETURNED:
            self.holders.append((at, None))
            self.returned_count += 1
        elif kind is _EV_REASSIGNED:
            self.holders.append((at, step.unit))
            self.reassigned_count += 1
            if not self.halted:
                for m in self.policy.reassign_restarts:
                    runs = cycles[m]
                    runs[-1].halt(at, _END_RESTARTED)
                    runs.append(MilestoneClock(self, m, len(runs), at))
                    self.runs += 1
        elif kind is _EV_SUSPENDED:
            if not self.halted and self._open_pause(at) is None:
                limit = self.policy.max_suspension
                auto_end, provisional = clock_instant_us(
                    at, day_index(at), limit.clock, limit.micros, (), NEVER, self.calendar)
                self.pauses.append([at, None, auto_end, provisional])
                self._pauses_changed()
                self.status_before_pause = self._status
                self._status = _ST_SUSPENDED
        elif kind is _EV_RESUMED:
            pause = self._open_pause(at)
            if pause is not None:
                pause[1] = at
                self._pauses_changed()
                if self._status is _ST_SUSPENDED:
                    self._status = self.status_before_pause

    def _fill_attrs(self, attrs: CaseAttrs) -> None:
        """Area and caller fields: the origin's, else the first step's in order that has one."""
        filled = self._attrs_filled
        values = {name: getattr(attrs, name)
                  for name in ("district", "street", "community", "grid", "caller_hash")
                  if getattr(filled, name) is None and getattr(attrs, name) is not None}
        if values:
            self._attrs_filled = filled._replace(**values)

    def _open_pause(self, at: int) -> list | None:
        """The suspension still running at `at` (not resumed, not ended by itself), if any."""
        if self.pauses:
            last = self.pauses[-1]
            if last[1] is None:
                if last[2] > at:
                    return last
                last[1] = last[2]  # it ended by itself at max_suspension
                self._pauses_changed()
        return None

    def _pauses_changed(self) -> None:
        self.pause_version += 1
        self._spans = tuple((p[0], p[1] if p[1] is not None else p[2], p[3]) for p in self.pauses)

    def pause_spans(self) -> tuple[Pause, ...]:
        """The suspensions as (start, end, provisional): an open one until it would end by itself."""
        return self._spans

    # ---- figures -----------------------------------------------------------------------------

    @property
    def attrs(self) -> CaseAttrs:
        return self._attrs_filled

    @property
    def source(self) -> Source:
        return self.origin.attrs.source

    @property
    def system(self) -> str:
        return self.origin.attrs.system

    @property
    def category(self) -> str:
        return self.origin.attrs.category

    @property
    def urgency(self) -> Urgency:
        return self.origin.attrs.urgency

    @property
    def district(self) -> str | None:
        return self._attrs_filled.district

    @property
    def street(self) -> str | None:
        return self._attrs_filled.street

    @property
    def community(self) -> str | None:
        return self._attrs_filled.community

    @property
    def grid(self) -> str | None:
        return self._attrs_filled.grid

    @property
    def caller_hash(self) -> str | None:
        return self._attrs_filled.caller_hash

    @property
    def limits(self) -> dict[Milestone, Limit]:
        limits = self._limits
        if limits is None:
            limits = dict(self.policy.limits_for(self.source, self.system, self.urgency))
            created = self.origin.at
            if self.given_due is not None and self.given_due > created:
                # the source set the resolve due itself (Open311 Due Date): natural time up to it
                limits[_M_RESOLVE] = Limit(_HOURS,
                                                  Fraction(self.given_due - created, 1_000_000))
            self._limits = limits
        return limits

    @property
    def created_us(self) -> int:
        return self.origin.at

    @property
    def created_at(self) -> datetime:
        return from_us(self.origin.at)

    @property
    def closed_at(self) -> datetime | None:
        return None if self.closed_us is None else from_us(self.closed_us)

    @property
    def cancelled_at(self) -> datetime | None:
        return None if self.cancelled_us is None else from_us(self.cancelled_us)

    @property
    def last_event_at(self) -> datetime:
        return from_us(self.steps[-1].at)

    @property
    def event_count(self) -> int:
        return self.count

    @property
    def reopen_count(self) -> int:
        return max(self.reopens, self.reported_reopens)

    @property
    def cycle(self) -> int:
        return self.reopens

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
        if not self.pauses:
            return False
        last = self.pauses[-1]
        return last[0] <= at < (last[1] if last[1] is not None else last[2])

    def status_at(self, at: int) -> CaseStatus:
        if self._status is _ST_SUSPENDED and not self.suspended_at(at):
            return self.status_before_pause
        return self._status

    @property
    def status(self) -> CaseStatus:
        return self._status

    @property
    def is_open(self) -> bool:
        return self._status not in SETTLED

    @property
    def clocks(self) -> tuple[MilestoneClock, ...]:
        """Every run of every milestone the policy gives a limit."""
        if self._clocks_limits != self.limits_version or self._clocks_runs != self.runs:
            limits = self.limits
            self._clocks = tuple(c for m in MILESTONES if m in limits for c in self.cycles[m])
            self._clocks_limits, self._clocks_runs = self.limits_version, self.runs
        return self._clocks

    def current(self, milestone: Milestone) -> MilestoneClock | None:
        """The milestone's latest run, if the policy gives it a limit."""
        limits = self._limits if self._limits is not None else self.limits
        return self.cycles[milestone][-1] if milestone in limits else None

    def clock(self, milestone: Milestone, cycle: int | None = None) -> MilestoneClock | None:
        if cycle is None:
            return self.current(milestone)
        runs = self.cycles[milestone]
        return runs[cycle] if milestone in self.limits and 0 <= cycle < len(runs) else None

    @property
    def dues(self) -> dict[Milestone, datetime]:
        limits = self.limits
        return {m: from_us(self.cycles[m][-1].due_us()[0]) for m in MILESTONES if m in limits}

    def paused_seconds(self) -> int:
        if not self.pauses:
            return 0
        resolve = self.current(_M_RESOLVE)
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
        return min((p.fires_at for p in self.points if p.fires and p.fires_at > after), default=None)

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
        levels = len(LEVELS)
        count = self.count
        for run in self.clocks:
            milestone = run.milestone
            base = (run.cycle * 3 + MILESTONE_INDEX[milestone]) * 5
            until = run.counting_until
            sent_here: bool | None = None if sent else False
            if run._checked != count:
                run._fresh()
            points = run._points  # the instants computed so far (point() computes the others)
            for level in range(levels):
                if 3 * level < len(points):
                    fires_at = points[3 * level]
                    due_at = points[3 * level + 1]
                    provisional = points[3 * level + 2] == 1
                else:
                    fires_at, due_at, provisional = run.point(level)
                if fires_at > clock:
                    if until > fires_at and fires_at < upcoming:
                        upcoming = fires_at
                    break
                if until <= fires_at:
                    if sent_here is None:
                        sent_here = any(base <= code < base + levels for code in sent)
                    if not sent_here:
                        break  # met or stopped before this instant: no later level fires either
                code = base + level
                seen.add(code)
                record = sent.get(code)
                if until > fires_at:
                    if _RANKS[level] > escalation:
                        escalation = _RANKS[level]
                    if record is None or record[2] & RETRACTED:
                        sent[code] = [fires_at, due_at, 0]
                        changes.append(AlertChange("fire", code, milestone, run.cycle, LEVELS[level],
                                                   fires_at, due_at, provisional))
                elif record is not None and not record[2] & RETRACTED:
                    record[2] |= RETRACTED
                    changes.append(AlertChange("retract", code, milestone, run.cycle, LEVELS[level],
                                               record[0], record[1], provisional))
            if until >= NEVER or not sent:
                continue
            end = run.end()
            assert end is not None
            for level in range(levels):
                code = base + level
                record = sent.get(code)
                if record is None or record[2] & (RETRACTED | ENDED) or code not in seen:
                    continue
                if end[0] <= clock:
                    record[2] |= ENDED
                    changes.append(AlertChange("end", code, milestone, run.cycle, LEVELS[level],
                                               record[0], record[1], False, end[0], end[1]))
                elif end[0] < upcoming:
                    upcoming = end[0]
        if sent and not seen.issuperset(sent):
            for code, record in sent.items():
                if code not in seen and not record[2] & RETRACTED:
                    record[2] |= RETRACTED
                    milestone, cycle, level_ = decode_alert_code(code)
                    changes.append(AlertChange("retract", code, milestone, cycle, level_, record[0],
                                               record[1], False))
        if self.pauses:
            last = self.pauses[-1]
            pause_end = last[2] if last[1] is None else last[1]
            if clock < pause_end < upcoming:
                upcoming = pause_end  # the suspension ends then (a resume, or by itself): the snapshot changes
        return changes, (None if upcoming >= NEVER else upcoming), escalation

    def snapshot(self, clock: datetime) -> CaseSnapshot:
        from streams.snapshots import snapshot_dict

        at = to_us(clock)
        _, _, escalation = self.evaluate({}, at)
        return CaseSnapshot.model_validate(snapshot_dict(self, at, escalation))


# ---- the reduction ----------------------------------------------------------------------------

def fold_steps(case_id: str, ordered: list[Step], policy: SlaPolicy,
               calendar: WorkingDayCalendar) -> CaseState:
    """A case from distinct steps already in reduction order."""
    if not ordered:
        raise ValueError("a case needs at least one event")
    origin = next((s for s in ordered if s.kind is _EV_CREATED), ordered[0])
    state = CaseState(case_id, origin, policy, calendar)
    for step in ordered:
        state.apply(step)
    return state


def reduce_steps(case_id: str, steps: Iterable[Step], policy: SlaPolicy,
                 calendar: WorkingDayCalendar) -> CaseState:
    return fold_steps(case_id, distinct_steps(steps), policy, calendar)


def reduce_case(events: Iterable[Event], policy: SlaPolicy, calendar: WorkingDayCalendar) -> CaseState:
    ordered = dedupe_and_sort(events)
    if not ordered:
        raise ValueError("a case needs at least one event")
    return reduce_steps(ordered[0].case_id, (Step.of(e) for e in ordered), policy, calendar)
