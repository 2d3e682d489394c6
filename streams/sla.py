"""SLA clocks: where a fraction of a limit falls, on the hours clock or the working-day clock."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from fractions import Fraction

from schemas.enums import ClockKind
from schemas.policy import Limit
from streams.calendar import CHINA_TZ, WorkingDayCalendar


def scaled_microseconds(limit: Limit, fraction: Fraction) -> int:
    """`fraction` of `limit` in microseconds (of natural time, or of working time), rounded."""
    num, den = fraction.numerator, fraction.denominator
    return (limit.micros * num * 2 + den) // (2 * den)


def clock_instant(start: datetime, limit: Limit, fraction: Fraction, calendar: WorkingDayCalendar,
                  start_day: date | None = None) -> datetime:
    """The instant at `fraction` of `limit` counted from `start` on the limit's own clock.
    `start_day` (the start's date in China) saves a time-zone conversion when known."""
    micros = scaled_microseconds(limit, fraction)
    if limit.clock is ClockKind.HOURS:
        return start + timedelta(microseconds=micros)
    if micros <= 0:
        return start
    return calendar.end_after(start_day or start.astimezone(CHINA_TZ).date(), micros)
