"""SLA clocks: where a fraction of a limit falls, on the hours clock or the working-day clock."""

from __future__ import annotations

from datetime import datetime
from fractions import Fraction

from schemas.enums import ClockKind
from schemas.policy import Limit
from streams.calendar import WorkingDayCalendar, to_timedelta


def clock_instant(
    start: datetime, limit: Limit, fraction: Fraction, calendar: WorkingDayCalendar
) -> datetime:
    """The instant at `fraction` of `limit` counted from `start` on the limit's own clock."""
    amount = limit.amount * fraction
    if limit.clock is ClockKind.HOURS:
        return start + to_timedelta(amount)
    return calendar.add_working_days(start, amount)
