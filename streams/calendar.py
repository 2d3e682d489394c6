"""Working-day calendar (工作日) on chinese-calendar, with an override file for unknown years.

Counting follows 民法典 §201–203: the day of the start instant is not counted; N working days
end at 24:00 of the N-th working day after it. Fractions are working time inside a working day.
"""

from __future__ import annotations

import tomllib
from datetime import date, datetime, time, timedelta
from fractions import Fraction
from functools import lru_cache
from pathlib import Path
from zoneinfo import ZoneInfo

import chinese_calendar

from schemas.errors import CalendarUnknown, ConfigError

CHINA_TZ = ZoneInfo("Asia/Shanghai")
SECONDS_PER_DAY = 86400
_MAX_SCAN_DAYS = 3660
_MICROS_PER_DAY = SECONDS_PER_DAY * 1_000_000


def to_timedelta(seconds: Fraction) -> timedelta:
    return timedelta(microseconds=round(seconds * 1_000_000))


class WorkingDayCalendar:
    """Answers "is this a working day in China?" and adds working-day periods to instants."""

    def __init__(self, overrides: dict[int, tuple[frozenset[date], frozenset[date]]] | None = None):
        # year -> (holidays, make-up working days) for years the package does not know
        self._overrides = overrides or {}
        self.is_workday = lru_cache(maxsize=8192)(self._is_workday)
        # the end depends only on the start's local date and the amount: cases share it
        self.end_after = lru_cache(maxsize=65536)(self._end_after_uncached)

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
            holidays = frozenset(_dates(table.get("holidays", []), f"{year}.holidays", year))
            workdays = frozenset(_dates(table.get("workdays", []), f"{year}.workdays", year))
            overrides[year] = (holidays, workdays)
        return cls(overrides)

    def _is_workday(self, day: date) -> bool:
        if day.year in self._overrides:
            holidays, workdays = self._overrides[day.year]
            if day in workdays:
                return True
            if day in holidays:
                return False
            return day.weekday() < 5
        try:
            return bool(chinese_calendar.is_workday(day))
        except NotImplementedError as exc:
            raise CalendarUnknown(
                f"no holiday calendar for {day.year}: add [{day.year}] holidays and workdays to "
                "the holiday override file (CIVICFLOW_HOLIDAY_FILE) or upgrade chinese-calendar"
            ) from exc

    def add_working_days(self, start: datetime, days: Fraction) -> datetime:
        """The instant `days` working days (possibly fractional) after `start`."""
        return self.add_working_microseconds(start, round(Fraction(days) * _MICROS_PER_DAY))

    def add_working_microseconds(self, start: datetime, micros: int) -> datetime:
        if micros <= 0:
            return start
        return self.end_after(start.astimezone(CHINA_TZ).date(), micros)

    def _end_after_uncached(self, day: date, micros: int) -> datetime:
        """`micros` of working time after the end of local day `day` (cached: cases share it)."""
        remaining = micros
        for _ in range(_MAX_SCAN_DAYS):
            day += timedelta(days=1)
            if not self.is_workday(day):
                continue
            if remaining <= _MICROS_PER_DAY:
                midnight = datetime.combine(day, time(0), CHINA_TZ)
                return midnight + timedelta(microseconds=remaining)
            remaining -= _MICROS_PER_DAY
        raise CalendarUnknown(f"no end within {_MAX_SCAN_DAYS} days of {day.isoformat()}")

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
