"""The worker's outputs in their wire form, built without a model per record: case snapshots and
alert records as JSON with the fields (and field order) of `CaseSnapshot` and `Alert`.
A property test holds both to the models."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import orjson

from schemas.enums import Milestone
from streams.cases import AlertChange, CaseState

_CN = timezone(timedelta(hours=8))
_CN_EPOCH = datetime(1970, 1, 1, 8, tzinfo=_CN)
_ONE_US = timedelta(microseconds=1)


_ISO: dict[int, str] = {}


def iso(us: int | None) -> str | None:
    """An instant as ISO 8601 in China time (+08:00). Remembered: due instants are shared by
    every case that starts on the same day."""
    if us is None:
        return None
    text = _ISO.get(us)
    if text is None:
        if len(_ISO) > 100_000:
            _ISO.clear()
        text = _ISO[us] = (_CN_EPOCH + us * _ONE_US).isoformat()
    return text


def _late(met: int | None, due: int | None) -> int | None:
    if met is None or due is None or met <= due:
        return None
    return (met - due) // 1_000_000


def snapshot_dict(state: CaseState, clock: int, escalation: int) -> dict[str, Any]:
    respond = state.current(Milestone.RESPOND)
    resolve = state.current(Milestone.RESOLVE)
    feedback = state.current(Milestone.FEEDBACK)
    provisional = False
    dues: list[int | None] = []
    for clock_ in (respond, resolve, feedback):
        if clock_ is None:
            dues.append(None)
        else:
            due, due_provisional = clock_.due_us()
            dues.append(due)
            provisional |= due_provisional
    met = [None if c is None else c.met_us for c in (respond, resolve, feedback)]
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
        "unit": state.unit,
        "status": state.status_at(clock),
        "created_at": iso(state.created_us),
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
        "cycle": state.cycle,
        "respond_late_seconds": _late(met[0], dues[0]),
        "resolve_late_seconds": _late(met[1], dues[1]),
        "feedback_late_seconds": _late(met[2], dues[2]),
        "holder_unit": state.holder_unit,
        "returned_count": state.returned_count,
        "reassigned_count": state.reassigned_count,
        "suspended": state.suspended_at(clock),
        "paused_seconds": state.paused_seconds(),
        "provisional": provisional,
        # grows with every distinct step, and with escalation for the same steps
        "version": state.event_count * 16 + escalation,
    }


def snapshot_json(state: CaseState, clock: int, escalation: int) -> bytes:
    return orjson.dumps(snapshot_dict(state, clock, escalation))


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
