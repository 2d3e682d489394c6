"""Working-day and hours clocks pinned on real dates; expected instants worked out by hand."""

from __future__ import annotations

from datetime import date
from fractions import Fraction

import pytest

from schemas import CalendarUnknown, ConfigError, Limit
from schemas.enums import ClockKind
from streams.calendar import WorkingDayCalendar
from streams.cases import reduce_case
from streams.sla import clock_instant
from tests.conftest import cn, ev


def test_national_day_holiday_and_makeup_day(calendar):
    # 2026-09-30 (Wed) 10:00. Oct 1-7 are the National Day holiday; Oct 8 (Thu) and Oct 9 (Fri)
    # are working days; Oct 10 (Sat) is the 调休 make-up working day; Oct 11 is Sunday.
    start = cn(2026, 9, 30, 10, 0)
    assert calendar.add_working_days(start, Fraction(1)) == cn(2026, 10, 9)
    assert calendar.add_working_days(start, Fraction(2)) == cn(2026, 10, 10)
    assert calendar.add_working_days(start, Fraction(3)) == cn(2026, 10, 11)  # Sat 10-10 counted
    assert calendar.add_working_days(start, Fraction(4)) == cn(2026, 10, 13)  # Sun 10-11 skipped
    # yellow of a 2-working-day limit: 1.6 days = Oct 8 whole + 0.6 x 24h = 14:24 on Oct 9
    assert calendar.add_working_days(start, Fraction(8, 5)) == cn(2026, 10, 9, 14, 24)


def test_created_on_saturday_counts_from_monday(calendar):
    # 2026-10-17 is a Saturday: Sun 10-18 is no working day; Mon 10-19 is the first.
    start = cn(2026, 10, 17, 10, 0)
    assert calendar.add_working_days(start, Fraction(1)) == cn(2026, 10, 20)
    assert calendar.add_working_days(start, Fraction(4, 5)) == cn(2026, 10, 19, 19, 12)


def test_created_at_2359_the_start_day_is_not_counted(calendar):
    # Wed 2026-10-14 23:59: counting starts at 24:00, so one working day ends at 24:00 Thu.
    assert calendar.add_working_days(cn(2026, 10, 14, 23, 59), Fraction(1)) == cn(2026, 10, 16)
    assert calendar.add_working_days(cn(2026, 10, 14, 0, 1), Fraction(1)) == cn(2026, 10, 16)


def test_urgent_case_on_hours_clock_across_midnight(calendar):
    two_hours = Limit(ClockKind.HOURS, Fraction(7200))
    start = cn(2026, 10, 17, 23, 30)  # a Saturday night: the hours clock ignores calendars
    assert clock_instant(start, two_hours, Fraction(1), calendar) == cn(2026, 10, 18, 1, 30)
    assert clock_instant(start, two_hours, Fraction(4, 5), calendar) == cn(2026, 10, 18, 1, 6)
    assert clock_instant(start, two_hours, Fraction(3), calendar) == cn(2026, 10, 18, 5, 30)


def test_past_the_official_calendar_a_provisional_one_counts_statutory_holidays(calendar, policy):
    """chinese-calendar 1.11 knows 2004-2026. A 疑难 hotline case created Fri 2026-11-20: its
    resolve limit is 15 working days, escalation3 at 3.0x = 45. Counted by hand: Nov 23-27 (5),
    Nov 30 (6), December's 23 working days (29), then 2027 on the provisional calendar: Fri
    2027-01-01 New Year's Day is a statutory holiday (by rule), Jan 4-8 (34), 11-15 (39),
    18-22 (44), Mon Jan 25 (45): 24:00 that day, provisional. The red (15 wd) is official."""
    assert calendar.official_until == date(2026, 12, 31)
    assert not calendar.is_workday(date(2027, 1, 1)) and calendar.is_provisional(date(2027, 1, 1))
    assert calendar.is_workday(date(2027, 1, 4)) and not calendar.is_provisional(date(2026, 12, 31))
    state = reduce_case([ev("c", "created", cn(2026, 11, 20, 9, 0), case="hotline:12345:GDC001",
                            urgency="complex")], policy, calendar)
    points = {(p.milestone.value, p.level.value): p for p in state.points}
    esc3 = points[("resolve", "escalation3")]
    assert esc3.fires_at == cn(2027, 1, 26) and esc3.provisional
    red = points[("resolve", "red")]  # Dec 11 is the 15th working day
    assert red.fires_at == cn(2026, 12, 12) and not red.provisional


def test_far_future_beyond_the_calendar_is_a_clear_error(calendar):
    with pytest.raises(CalendarUnknown, match="2199"):
        calendar.add_working_days(cn(2199, 12, 1, 9, 0), Fraction(60))


def test_override_file_teaches_a_new_year(tmp_path):
    path = tmp_path / "holidays.toml"
    path.write_text('[2031]\nholidays = ["2031-03-04"]\nworkdays = ["2031-03-08"]\n')
    cal = WorkingDayCalendar.from_override_file(path)
    assert cal.fingerprint != WorkingDayCalendar().fingerprint
    assert cal.official_until == date(2026, 12, 31)  # 2027-2030 are still unknown: provisional
    assert not cal.is_workday(date(2031, 3, 4))  # a Tuesday made holiday
    assert cal.is_workday(date(2031, 3, 8))  # a Saturday made working day
    # Mon 2031-03-03 start: Tue off, Wed 03-05 is the first working day
    assert cal.add_working_days(cn(2031, 3, 3, 9, 0), Fraction(1)) == cn(2031, 3, 6)


def test_bad_override_file_names_the_key(tmp_path):
    path = tmp_path / "holidays.toml"
    path.write_text('[2031]\nholidays = ["2030-01-01"]\n')
    with pytest.raises(ConfigError, match="2031.holidays"):
        WorkingDayCalendar.from_override_file(path)


def test_prepared_day_tables_are_the_ones_built_on_first_use():
    """`prepare` (the worker's start-up) builds the same days a calendar builds lazily, and a
    date past the calendar's last year is clamped, not refused."""
    prepared = WorkingDayCalendar()
    prepared.prepare(date(2028, 12, 31))
    lazy = WorkingDayCalendar()
    days = [date(2026, 1, 1) + (date(2026, 1, 2) - date(2026, 1, 1)) * i for i in range(3 * 366)]
    assert [prepared.is_workday(d) for d in days] == [lazy.is_workday(d) for d in days]
    assert prepared.is_workday(date(2026, 10, 10)) and not prepared.is_workday(date(2026, 10, 1))
    WorkingDayCalendar().prepare(date(2400, 1, 1))
