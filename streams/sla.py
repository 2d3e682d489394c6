"""SLA clocks: where an amount of a limit falls, on the hours clock or the working-day clock,
with suspensions (挂起) paused out. Instants are integer microseconds since the epoch.

A clock counts from `start`. On the hours clock every microsecond counts; on the working-day
clock only working time after the end of the start's local day (DESIGN §6). A pause [p1, p2)
moves every instant not yet reached at p1 later by the time the pause takes on the clock's own
axis (DESIGN §6a); instants reached by p1 stay.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime, timedelta
from fractions import Fraction
from typing import Final

from mypy_extensions import i64

from schemas.enums import ClockKind
from schemas.policy import Limit
from streams.calendar import CHINA_TZ, WorkingDayCalendar, day_index, day_start_us

NEVER: Final = 1 << 62
Pause = tuple[int, int, bool]  # start, end, whether its end was computed on a provisional calendar


def scaled_microseconds(limit: Limit, fraction: Fraction) -> int:
    """`fraction` of `limit` in microseconds (of natural time, or of working time), rounded."""
    return scale_micros(limit.micros, fraction.numerator, fraction.denominator)


def scale_micros(micros: int, num: int, den: int) -> int:
    """`num / den` of `micros`, rounded half up. Compiled, an int product with a factor past 2^30
    takes a boxed slow path; any real limit (under 400 days) and alert fraction (numerator under
    65,536) is computed in 64-bit integers instead, where it cannot overflow."""
    if 0 <= micros < 1 << 45 and 0 <= num < 1 << 16 and 0 < den < 1 << 16:
        wide: i64 = micros
        return int((wide * num * 2 + den) // (2 * den))
    return (micros * num * 2 + den) // (2 * den)


def base_instant(start: int, start_day: int, kind: ClockKind, micros: int,
                 calendar: WorkingDayCalendar) -> int:
    """`micros` after `start` on the clock `kind`, with nothing paused."""
    if micros <= 0:
        return start
    if kind is ClockKind.HOURS:
        return start + micros
    return calendar.end_after_us(start_day, micros)


def paused_amount(kind: ClockKind, start_day: int, p1: int, p2: int,
                  calendar: WorkingDayCalendar) -> int:
    """How much of the clock's axis [p1, p2) takes: natural time on the hours clock; working
    time after the start day on the working-day clock."""
    if kind is ClockKind.HOURS:
        return max(0, p2 - p1)
    p1 = max(p1, day_start_us(start_day + 1))
    if p2 <= p1:
        return 0
    return calendar.working_us(p2) - calendar.working_us(p1)


def clock_instant_us(start: int, start_day: int, kind: ClockKind, micros: int,
                     pauses: Sequence[Pause], counting_until: int,
                     calendar: WorkingDayCalendar) -> tuple[int, bool]:
    """(the instant `micros` into the clock, whether it rests on a provisional calendar).

    `pauses` are the case's suspensions in time order; a pause that begins once the clock
    stopped counting (`counting_until`: the milestone met or the clock stopped) moves nothing."""
    extra = 0
    provisional = False
    for p1, p2, p_provisional in pauses:
        p1 = max(p1, start)
        if p2 <= p1:
            continue
        if p1 >= counting_until:
            break
        if base_instant(start, start_day, kind, micros + extra, calendar) <= p1:
            break
        amount = paused_amount(kind, start_day, p1, p2, calendar)
        if amount:
            extra += amount
            provisional |= p_provisional
    at = base_instant(start, start_day, kind, micros + extra, calendar)
    if kind is ClockKind.WORKING_DAYS and day_index(at - 1) > calendar.official_until_index:
        provisional = True
    return at, provisional


def clock_instant(start: datetime, limit: Limit, fraction: Fraction, calendar: WorkingDayCalendar,
                  start_day: date | None = None) -> datetime:
    """The instant at `fraction` of `limit` from `start` (no pauses), as a datetime."""
    from streams.calendar import from_us, to_us

    begin = to_us(start)
    day = day_index(begin) if start_day is None else (start_day - date(1970, 1, 1)).days
    at = base_instant(begin, day, limit.clock, scaled_microseconds(limit, fraction), calendar)
    return from_us(at) if at != begin else start


def to_local(us: int) -> datetime:
    return (datetime.fromtimestamp(0, CHINA_TZ) + timedelta(microseconds=us))
