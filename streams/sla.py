"""SLA clocks: where a fraction of a limit falls, on the hours clock or the working-day clock."""

from __future__ import annotations

from datetime import datetime, timedelta
from fractions import Fraction
from functools import lru_cache

from schemas.enums import ClockKind
from schemas.policy import Limit
from streams.calendar import SECONDS_PER_DAY, WorkingDayCalendar


@lru_cache(maxsize=4096)
def scaled_microseconds(limit: Limit, fraction: Fraction) -> int:
    """`fraction` of `limit` in microseconds (of natural time, or of working time)."""
    seconds = limit.amount * fraction
    if limit.clock is ClockKind.WORKING_DAYS:
        seconds *= SECONDS_PER_DAY
    return round(seconds * 1_000_000)


def clock_instant(
    start: datetime, limit: Limit, fraction: Fraction, calendar: WorkingDayCalendar
) -> datetime:
    """The instant at `fraction` of `limit` counted from `start` on the limit's own clock."""
    micros = scaled_microseconds(limit, fraction)
    if limit.clock is ClockKind.HOURS:
        return start + timedelta(microseconds=micros)
    return calendar.add_working_microseconds(start, micros)
