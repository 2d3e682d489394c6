"""Working-day calendar (工作日): China's official schedule, then a provisional one past it.

Counting follows 民法典 §201–203: the day of the start instant is not counted; N working days
end at 24:00 of the N-th working day after it. Fractions are working time inside a working day.

Official schedule: `chinese-calendar` (weekends, statutory holidays and 调休 make-up days) plus
a holiday override file for years the package does not know yet. Past the last official year
nothing stops: a *provisional* schedule takes over — weekends plus the statutory holidays the
`holidays` package computes by rule, no make-up days — and every instant computed on it is
marked provisional, so it can be re-evaluated when the State Council publishes the year.

Instants are integer microseconds since the Unix epoch (UTC). China has kept UTC+8 all year
since 1992, so a local day is a plain division: day index `(us + 8 h) // 24 h`.
"""

from __future__ import annotations

import bisect
import hashlib
import tomllib
from datetime import UTC, date, datetime, time, timedelta
from fractions import Fraction
from pathlib import Path
from typing import Final
from zoneinfo import ZoneInfo

import chinese_calendar
from mypy_extensions import i64

from schemas.errors import CalendarUnknown, ConfigError

CHINA_TZ: Final = ZoneInfo("Asia/Shanghai")
SECONDS_PER_DAY: Final = 86400
DAY_US: Final = SECONDS_PER_DAY * 1_000_000
CHINA_OFFSET_US: Final = 8 * 3600 * 1_000_000
_EPOCH_ORDINAL: Final = date(1970, 1, 1).toordinal()
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
# the calendar covers these years; event dates and policy limits are bounded well inside them
FIRST_YEAR: Final = 2000
LAST_YEAR: Final = 2199
_OFFICIAL_YEARS: Final = frozenset(d.year for d in chinese_calendar.constants.holidays) | frozenset(
    d.year for d in chinese_calendar.constants.workdays)


def day_index(us: int) -> int:
    """The local (China) day of an instant, as days since 1970-01-01."""
    return (us + CHINA_OFFSET_US) // DAY_US


def day_start_us(day: int) -> int:
    """00:00 China time of local day `day`, as an instant."""
    start: i64 = day  # compiled, an int product past 2^60 would take a boxed slow path
    return int(start * DAY_US - CHINA_OFFSET_US)


def to_us(moment: datetime) -> int:
    """An aware datetime as integer microseconds since the epoch."""
    return (moment - _EPOCH) // timedelta(microseconds=1)


def from_us(us: int) -> datetime:
    """An instant as an aware datetime in China time."""
    return datetime.fromtimestamp(0, CHINA_TZ) + timedelta(microseconds=us)


def to_timedelta(seconds: Fraction) -> timedelta:
    return timedelta(microseconds=round(seconds * 1_000_000))


def _index_of(day: date) -> int:
    return day.toordinal() - _EPOCH_ORDINAL


def _date_of(index: int) -> date:
    return date.fromordinal(index + _EPOCH_ORDINAL)


class WorkingDayCalendar:
    """Answers "is this a working day in China?" and adds working-day periods to instants.

    Working days are kept as a cumulative count per day, so the end of a period is one binary
    search and the working time between two instants two lookups."""

    def __init__(self, overrides: dict[int, tuple[frozenset[date], frozenset[date]]] | None = None):
        # year -> (holidays, make-up working days) for years the package does not know
        self._overrides = overrides or {}
        official = _OFFICIAL_YEARS | set(self._overrides)
        last = min(official)
        while last + 1 in official:
            last += 1
        #: the last day of the official schedule; days after it are provisional
        self.official_until = date(last, 12, 31)
        self.official_until_index = _index_of(self.official_until)
        self._first = _index_of(date(FIRST_YEAR, 1, 1))
        self._end = _index_of(date(LAST_YEAR, 12, 31)) + 1
        self._built_until = self._first  # days [first, built_until) are known
        self._workday: list[bool] = []
        # _cum[i] = working days in [first, first + i)
        self._cum: list[int] = [0]
        # the end of a period depends only on the start's local day and the amount: cases share it
        # micros -> start day -> end: two int lookups, no key tuple made and hashed per call
        self._ends: dict[int, dict[int, int]] = {}
        self._ends_count = 0
        digest = hashlib.sha256(repr(sorted(
            (y, sorted(h), sorted(w)) for y, (h, w) in self._overrides.items())).encode())
        digest.update(repr(sorted(_OFFICIAL_YEARS)).encode())
        #: changes when the official schedule changes (a new override year, a package upgrade)
        self.fingerprint = digest.hexdigest()[:16]

    @classmethod
    def from_override_file(cls, path: Path | None) -> WorkingDayCalendar:
        if path is None:
            return cls()
        try:
            data = tomllib.loads(Path(path).read_text("utf-8"))
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(f"holiday override file {path}: {exc}") from exc
        overrides: dict[int, tuple[frozenset[date], frozenset[date]]] = {}
        for year_key, table in data.items():
            if not year_key.isdigit() or not isinstance(table, dict):
                raise ConfigError(
                    f"holiday override key [{year_key}]: use one table per year with "
                    "holidays = [dates] and workdays = [dates]"
                )
            year = int(year_key)
            if not FIRST_YEAR <= year <= LAST_YEAR:
                raise ConfigError(f"holiday override key [{year_key}]: a year from {FIRST_YEAR} "
                                  f"to {LAST_YEAR}")
            holidays = frozenset(_dates(table.get("holidays", []), f"{year}.holidays", year))
            workdays = frozenset(_dates(table.get("workdays", []), f"{year}.workdays", year))
            overrides[year] = (holidays, workdays)
        return cls(overrides)

    # ---- days ------------------------------------------------------------------------------

    def prepare(self, through: date) -> None:
        """Build the day tables through `through` (at most the calendar's last year) now, at
        start-up, rather than in the first batch that needs them (the first calendar of a
        process reads every official day since its first year: ~0.3 s)."""
        self._build_until(min(_index_of(through) + 1, self._end))

    def _build_until(self, index: int) -> None:
        """Know every day before `index` (whole years at a time)."""
        if index <= self._built_until:
            return
        if index > self._end:
            raise CalendarUnknown(
                f"{_date_of(index - 1).isoformat()} is past the calendar's last year {LAST_YEAR}")
        year = _date_of(self._built_until).year
        while self._built_until < index:
            for is_work in self._year_workdays(year):
                self._workday.append(is_work)
                self._cum.append(self._cum[-1] + is_work)
            self._built_until = _index_of(date(year + 1, 1, 1))
            year += 1

    def _year_workdays(self, year: int) -> list[bool]:
        if year not in self._overrides:
            return _standard_year(year)
        holidays, workdays = self._overrides[year]
        return [d in workdays or (d not in holidays and d.weekday() < 5) for d in _days_of(year)]

    def _slot(self, index: int) -> int:
        if self._first <= index < self._built_until:
            return index - self._first
        if index < self._first:
            raise CalendarUnknown(f"{_date_of(index).isoformat()} is before the calendar's first "
                                  f"year {FIRST_YEAR}")
        self._build_until(index + 1)
        return index - self._first

    def is_workday(self, day: date) -> bool:
        return self._workday[self._slot(_index_of(day))]

    def is_workday_index(self, index: int) -> bool:
        return self._workday[self._slot(index)]

    def is_provisional(self, day: date) -> bool:
        """Whether `day` lies past the official schedule (its working-day status is a guess)."""
        return day > self.official_until

    # ---- periods ---------------------------------------------------------------------------

    def end_after_us(self, start_day: int, micros: int) -> int:
        """The instant `micros` of working time after the end of local day `start_day`: the
        n-th working day after it (n = micros rounded up to whole days), at the remainder."""
        by_day = self._ends.get(micros)
        if by_day is None:
            by_day = self._ends[micros] = {}
        found = by_day.get(start_day)
        if found is None:
            if self._ends_count > 200_000:
                self._ends.clear()
                self._ends_count = 0
                by_day = self._ends[micros] = {}
            found = by_day[start_day] = self._end_after(start_day, micros)
            self._ends_count += 1
        return found

    def _end_after(self, start_day: int, micros: int) -> int:
        if micros <= 0:
            return day_start_us(start_day + 1)
        whole = -(-micros // DAY_US)
        rest = micros - (whole - 1) * DAY_US
        slot = self._slot(start_day + 1)
        target = self._cum[slot] + whole
        while self._cum[-1] < target:
            self._build_until(self._built_until + 366)
        # the first day whose running count reaches the target is the n-th working day
        found = bisect.bisect_left(self._cum, target, lo=slot + 1) - 1
        return day_start_us(found + self._first) + rest

    def working_us(self, us: int) -> int:
        """Working time from the calendar's first day up to instant `us` (a monotone axis)."""
        day = day_index(us)
        slot = self._slot(day)
        within = us - day_start_us(day) if self._workday[slot] else 0
        return self._cum[slot] * DAY_US + within

    def end_after(self, day: date, micros: int) -> datetime:
        """`end_after_us` for a date, as a datetime in China time."""
        return from_us(self.end_after_us(_index_of(day), micros))

    def add_working_days(self, start: datetime, days: Fraction) -> datetime:
        """The instant `days` working days (possibly fractional) after `start`."""
        return self.add_working_microseconds(start, round(Fraction(days) * DAY_US))

    def add_working_microseconds(self, start: datetime, micros: int) -> datetime:
        if micros <= 0:
            return start
        return self.end_after(start.astimezone(CHINA_TZ).date(), micros)

    def working_days_between(self, start: datetime, end: datetime) -> list[date]:
        """The working days counted from the day after `start` up to `end` (exclusive: a period
        that ends at 24:00 does not touch the next day)."""
        first = start.astimezone(CHINA_TZ).date() + timedelta(days=1)
        last = (end - timedelta(microseconds=1)).astimezone(CHINA_TZ).date()
        out: list[date] = []
        day = first
        while day <= last:
            if self.is_workday(day):
                out.append(day)
            day += timedelta(days=1)
        return out


_STANDARD_YEARS: Final[dict[int, list[bool]]] = {}


def _standard_year(year: int) -> list[bool]:
    """A year's working days without overrides, built once per process (~0.1 s a year: the
    official schedule is read day by day): every calendar of the process shares it."""
    found = _STANDARD_YEARS.get(year)
    if found is None:
        if year in _OFFICIAL_YEARS:
            found = [bool(chinese_calendar.is_workday(d)) for d in _days_of(year)]
        else:
            holidays = _provisional_holidays(year)
            found = [d.weekday() < 5 and d not in holidays for d in _days_of(year)]
        _STANDARD_YEARS[year] = found
    return found


def _days_of(year: int) -> list[date]:
    return [date(year, 1, 1) + timedelta(days=i) for i in range(366 if leap_year(year) else 365)]


def leap_year(year: int) -> bool:
    return year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)


def _provisional_holidays(year: int) -> frozenset[date]:
    """China's statutory holidays of `year` by rule (the `holidays` package), for a year with no
    official schedule yet: no 调休 make-up working days are guessed."""
    import holidays

    return frozenset(holidays.country_holidays("CN", years=year))


def _dates(values: object, where: str, year: int) -> list[date]:
    if not isinstance(values, list):
        raise ConfigError(f"holiday override key {where} must be a list of dates")
    out = []
    for value in values:
        if isinstance(value, str):
            try:
                value = date.fromisoformat(value)
            except ValueError as exc:
                raise ConfigError(f"holiday override key {where}: {value!r} is no date") from exc
        if not isinstance(value, date) or value.year != year:
            raise ConfigError(f"holiday override key {where}: {value!r} is not a date in {year}")
        out.append(value)
    return out


__all__ = ["CHINA_TZ", "DAY_US", "WorkingDayCalendar", "day_index", "day_start_us", "from_us",
           "time", "to_timedelta", "to_us"]
