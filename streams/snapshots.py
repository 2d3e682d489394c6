"""The worker's outputs in their wire form, built without a model per record: case snapshots and
alert records as JSON with the fields (and field order) of `CaseSnapshot` and `Alert`.
A property test holds both to the models."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any, Final

import orjson

from streams.calendar import CHINA_OFFSET_US, DAY_US
from streams.cases import MILESTONES, AlertChange, CaseState

_EPOCH_DAY: Final = date(1970, 1, 1)
_TWO_DIGITS: Final = tuple(f"{i:02d}" for i in range(100))
_DAY_TEXT: Final[dict[int, str]] = {}  # local day index -> "YYYY-MM-DDT"


def _iso_text(us: int) -> str:
    """`datetime.isoformat()` of the instant in China time, from integers: the day's text is
    remembered, the time of day put together from two-digit strings (3x faster than building
    the datetime, and one snapshot shows up to eight instants)."""
    local = us + CHINA_OFFSET_US
    day = local // DAY_US
    prefix = _DAY_TEXT.get(day)
    if prefix is None:
        if len(_DAY_TEXT) > 100_000:
            _DAY_TEXT.clear()
        prefix = _DAY_TEXT[day] = (_EPOCH_DAY + timedelta(days=day)).isoformat() + "T"
    rest = local % DAY_US  # not local - day * DAY_US: compiled, that product is a boxed slow path
    seconds = rest // 1_000_000
    micros = rest - seconds * 1_000_000
    two = _TWO_DIGITS
    clock = f"{two[seconds // 3600]}:{two[seconds // 60 % 60]}:{two[seconds % 60]}"
    if micros:
        return f"{prefix}{clock}.{str(micros).zfill(6)}+08:00"
    return f"{prefix}{clock}+08:00"  # compiled, one string built from its parts


# instants as ISO 8601 in China time (+08:00), remembered: an event's instant is shown in every
# snapshot of its case, due instants in those of every case that starts on the same day
_ISO_TEXTS: Final[dict[int, str]] = {}


def iso(us: int | None) -> str | None:
    """An instant as ISO 8601 in China time (+08:00); None for None. (A plain dict and a test:
    compiled, a dict subclass with `__missing__` took the generic item slot on every lookup and
    a method call on every miss.)"""
    if us is None:
        return None
    text = _ISO_TEXTS.get(us)
    if text is None:
        if len(_ISO_TEXTS) > 50_000:  # ~14 MB; live, every event brings instants of its own
            _ISO_TEXTS.clear()
        text = _ISO_TEXTS[us] = _iso_text(us)
    return text


def _late(met: int | None, due: int | None) -> int | None:
    if met is None or due is None or met <= due:
        return None
    return (met - due) // 1_000_000


def _snapshot_head(state: CaseState) -> dict[str, Any]:
    """The fields that change only with the case's attributes (the leading ones, in order)."""
    return {
        "case_id": state.case_id,
        "source": state.source,
        "system": state.system,
        "district": state.district,
        "street": state.street,
        "community": state.community,
        "grid": state.grid,
        "category": state.category,
        "urgency": state.urgency,
    }


def _snapshot_tail(state: CaseState, clock: int, escalation: int) -> dict[str, Any]:
    cycles = state.cycles
    limits = state.limits
    provisional = False
    dues: list[int | None] = [None, None, None]
    met: list[int | None] = [None, None, None]
    for index, milestone in enumerate(MILESTONES):
        if milestone in limits:
            run = cycles[milestone][-1]
            met[index] = run.met_us
            due, due_provisional = run.due_us()
            dues[index] = due
            provisional |= due_provisional
    return {
        "unit": state.unit,
        "status": state.status_at(clock),
        "created_at": iso(state.origin.at),
        "responded_at": iso(met[0]),
        "resolved_at": iso(met[1]),
        "feedback_at": iso(met[2]),
        "closed_at": iso(state.closed_us),
        "respond_due": iso(dues[0]),
        "resolve_due": iso(dues[1]),
        "feedback_due": iso(dues[2]),
        "satisfaction": state.satisfaction,
        "reopen_count": state.reopen_count,
        "escalation_level": escalation,
        "cycle": state.reopens,
        "respond_late_seconds": _late(met[0], dues[0]),
        "resolve_late_seconds": _late(met[1], dues[1]),
        "feedback_late_seconds": _late(met[2], dues[2]),
        "holder_unit": state.holders[-1][1],
        "returned_count": state.returned_count,
        "reassigned_count": state.reassigned_count,
        "suspended": state.suspended_at(clock),
        "paused_seconds": state.paused_seconds(),
        "provisional": provisional,
        # grows with every distinct step, and with escalation for the same steps
        "version": state.count * 16 + escalation,
    }


def snapshot_dict(state: CaseState, clock: int, escalation: int) -> dict[str, Any]:
    """The case snapshot as `CaseSnapshot` fields, in its field order."""
    return {**_snapshot_head(state), **_snapshot_tail(state, clock, escalation)}


def snapshot_json(state: CaseState, clock: int, escalation: int) -> bytes:
    """`snapshot_dict` as JSON; the leading fields serialized once per case and attributes."""
    cached = state.snapshot_head
    if cached is None or cached[0] is not state.attrs:
        cached = state.snapshot_head = (state.attrs, orjson.dumps(_snapshot_head(state))[:-1] + b",")
    return cached[1] + orjson.dumps(_snapshot_tail(state, clock, escalation))[1:]


def alert_dict(state: CaseState, change: AlertChange, emitted_at: int) -> dict[str, Any]:
    retracted = change.kind == "retract"
    return {
        "alert_id": f"{state.case_id}:{change.milestone}:{change.cycle}:{change.level}",
        "case_id": state.case_id,
        "source": state.source,
        "district": state.district,
        "street": state.street,
        "unit": state.holder_at(change.fires_at),
        "category": state.category,
        "milestone": change.milestone,
        "cycle": change.cycle,
        "level": change.level,
        "due_at": iso(change.due_at),
        "fires_at": iso(change.fires_at),
        "emitted_at": iso(emitted_at),
        "retracted": retracted,
        "provisional": change.provisional,
        "ended_at": iso(change.ended_at),
        "end_reason": change.end_reason,
    }


def alert_json(state: CaseState, change: AlertChange, emitted_at: int) -> bytes:
    return orjson.dumps(alert_dict(state, change, emitted_at))
