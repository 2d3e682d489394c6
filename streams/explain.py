"""Why did this alert fire? A case's events, clocks, counted working days and alert verdicts."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from schemas.enums import ClockKind
from schemas.event import Event
from schemas.policy import SlaPolicy
from streams.calendar import CHINA_TZ, WorkingDayCalendar, from_us
from streams.cases import CaseState, dedupe_and_sort, reduce_case


def _t(moment: datetime | None) -> str:
    return "—" if moment is None else moment.astimezone(CHINA_TZ).strftime("%Y-%m-%d %H:%M:%S")


def _span(micros: int) -> str:
    seconds = micros // 1_000_000
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes = rest // 60
    return (f"{days}d " if days else "") + f"{hours}h{minutes:02d}m"


def _holders(state: CaseState) -> list[str]:
    """Who held the case when (DESIGN §6a: overdue time is charged to the holder)."""
    changes = [(at, unit) for at, unit in state.holders[1:]]
    first = state.holders[0][1]
    lines = [f"holder before any dispatch: {first or '— (with the dispatch centre)'}"]
    for at, unit in changes:
        lines.append(f"  from {_t(from_us(at))}: {unit or '— (returned: with the dispatch centre)'}")
    lines.append(f"holder now: {state.holder_unit or '—'}; returned {state.returned_count}x, "
                 f"re-dispatched {state.reassigned_count}x")
    return [*lines, ""]


def _pauses(state: CaseState, policy: SlaPolicy) -> list[str]:
    if not state.pauses:
        return []
    lines = [f"suspensions (挂起; each ends by itself after {policy.max_suspension.describe()}):"]
    for start, end, auto_end, _ in state.pauses:
        if end is None or end == auto_end:
            how = f"ends by itself {_t(from_us(auto_end))}"
        else:
            how = f"resumed {_t(from_us(end))}"
        lines.append(f"  {_t(from_us(start))} — {how}")
    return [*lines, ""]


def explain_case(events: Iterable[Event], policy: SlaPolicy, calendar: WorkingDayCalendar,
                 clock: datetime) -> list[str]:
    """Plain-text lines (times in Asia/Shanghai) explaining a case as of `clock`."""
    ordered = dedupe_and_sort(events)
    state = reduce_case(ordered, policy, calendar)
    lines = [
        f"case {state.case_id} ({state.source}/{state.system}, urgency {state.urgency}, "
        f"category {state.category}, unit {state.unit or '—'})",
        f"status {state.status}, cycle {state.cycle}, reopened {state.reopen_count}x, "
        f"policy '{policy.name}', as of {_t(clock)} (Asia/Shanghai)",
        "",
        "events (in occurred_at order):",
    ]
    for e in ordered:
        extra = []
        if e.unit:
            extra.append(f"unit {e.unit}")
        if e.reason:
            extra.append(f"reason: {e.reason}")
        if e.satisfaction:
            extra.append(f"satisfaction {e.satisfaction}")
        if e.extension_days:
            extra.append(f"+{e.extension_days} working days")
        lines.append(f"  {_t(e.occurred_at)}  {e.type:<10} {', '.join(extra)}".rstrip())
    lines.append("")
    lines += _holders(state)
    lines += _pauses(state, policy)
    for mc in state.clocks:
        limit = mc.limits[-1][0]
        lines.append(f"{mc.milestone} (cycle {mc.cycle}): clock starts {_t(mc.start)}, limit "
                     f"{mc.limits[0][0].describe()}"
                     + "".join(f", extended to {lim.describe()} at {_t(at)}" for lim, at in mc.limits[1:]))
        due = mc.due(calendar)
        if limit.clock is ClockKind.WORKING_DAYS:
            counted = calendar.working_days_between(mc.start, due)
            lines.append("  working days counted (start day not counted, each ends at 24:00): "
                         + ", ".join(d.isoformat() for d in counted))
        met = f"met {_t(mc.met_at)}" if mc.met_at else "not met"
        if mc.met_at and mc.met_at > due:
            met += f", late by {mc.met_at - due}"
        stopped = f", clock stopped {_t(mc.stopped_at)}" if mc.stopped_at else ""
        lines.append(f"  due {_t(due)}; {met}{stopped}")
        paused = mc.paused_us()
        if paused:
            axis = "working time" if limit.clock is ClockKind.WORKING_DAYS else "natural time"
            lines.append(f"  paused {_span(paused)} of {axis} by suspension: every instant not "
                         "reached when a suspension began moved later by what it paused")
        for point in state.points:
            if point.milestone is not mc.milestone or point.cycle != mc.cycle:
                continue
            if point.fires_at > clock:
                verdict = "not yet reached"
            elif point.fires:
                verdict = "FIRED: milestone still unmet at that instant"
            elif mc.met_at is not None and mc.met_at <= point.fires_at:
                verdict = f"not fired: met at {_t(mc.met_at)}, before the instant"
            else:
                verdict = f"not fired: clock stopped at {_t(mc.stopped_at)}"
            lines.append(f"    {point.level:<12} {_t(point.fires_at)}  {verdict}")
    return lines
