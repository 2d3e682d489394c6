"""A case's events as the state machine reads them: `Step`, built from an `Event` (the pure API)
or straight from an event's JSON bytes (the worker's hot path: no pydantic model per event).

Both ways give equal steps for the same event (a property test holds them to it); the fast
way validates every field it reads and refuses what the model would refuse with a reason.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Final, NamedTuple

import orjson
from mypy_extensions import i64
from pydantic import AwareDatetime, TypeAdapter, ValidationError

from schemas.enums import EventType, Satisfaction, Source, Urgency
from schemas.errors import InvalidRecord
from schemas.event import SCHEMA_VERSION, Event
from streams.calendar import leap_year, to_us

# Tie-break for events at the same instant: the natural lifecycle order.
TYPE_ORDER: Final[dict[EventType, int]] = {
    EventType.CREATED: 0,
    EventType.DISPATCHED: 1,
    EventType.RETURNED: 2,
    EventType.REASSIGNED: 3,
    EventType.RESPONDED: 4,
    EventType.EXTENDED: 5,
    EventType.SUPERVISED: 6,
    EventType.SUSPENDED: 7,
    EventType.RESUMED: 8,
    EventType.RESOLVED: 9,
    EventType.FEEDBACK: 10,
    EventType.REOPENED: 11,
    EventType.CLOSED: 12,
    EventType.CANCELLED: 13,
}
# A circulation log (工单流转记录) is the authority on the steps it records: when the same step
# (case, type, instant) also comes from an order export, the log's copy is the one kept.
STEP_LOG_SYSTEMS: Final = frozenset({"12345-flow"})
# event times the worker accepts (an event dated 1900 or 2300 is a poison record, not a case)
EARLIEST_US: Final = to_us(datetime.fromisoformat("2000-01-01T00:00:00+08:00"))
LATEST_US: Final = to_us(datetime.fromisoformat("2100-01-01T00:00:00+08:00"))

_TYPES: Final = {t.value: t for t in EventType}
_SOURCES: Final = {s.value: s for s in Source}
_URGENCIES: Final = {u.value: u for u in Urgency}
_SATISFACTIONS: Final = {s.value: s for s in Satisfaction}
_FIELDS: Final = frozenset(Event.model_fields)
# Event's fields in the order the one-pass parse unpacks them (a test holds both to the model)
_WIRE_FIELDS: Final = ["schema_version", "case_id", "event_id", "source", "system", "type",
                       "occurred_at", "district", "street", "community", "grid", "category",
                       "urgency", "unit", "satisfaction", "extension_days", "caller_hash", "due_at",
                       "reopen_count", "reason"]
_WIRE_INDEX: Final = {name: index for index, name in enumerate(_WIRE_FIELDS)}
_WIRE_COUNT: Final = len(_WIRE_FIELDS)


class CaseAttrs(NamedTuple):
    """The case-level fields an event carries (shared by every step that carries the same)."""

    source: Source
    system: str
    district: str | None
    street: str | None
    community: str | None
    grid: str | None
    category: str
    urgency: Urgency
    caller_hash: str | None


STEP_FIELDS: Final = ("at", "attrs", "due_at", "event_id", "extension_days", "kind", "order",
                      "rank", "reason", "reopen_count", "satisfaction", "unit")


class Step:
    """One event of a case, reduced to what the state machine reads. Times are integer
    microseconds since the epoch."""

    __slots__ = STEP_FIELDS

    def __init__(self, event_id: str, kind: EventType, at: int, attrs: CaseAttrs,
                 unit: str | None = None, satisfaction: Satisfaction | None = None,
                 extension_days: int | None = None, reopen_count: int | None = None,
                 due_at: int | None = None, reason: str | None = None) -> None:
        self.event_id = event_id
        self.kind = kind
        self.order = TYPE_ORDER[kind]
        self.at = at
        self.attrs = attrs
        self.unit = unit
        self.satisfaction = satisfaction
        self.extension_days = extension_days
        self.reopen_count = reopen_count
        self.due_at = due_at
        self.reason = reason
        self.rank = 0 if attrs.system in STEP_LOG_SYSTEMS else 1

    @property
    def key(self) -> tuple[int, int, str]:
        """Reduction order: event time, then lifecycle order, then event id."""
        return (self.at, self.order, self.event_id)

    def supersedes(self, kept: Step) -> bool:
        """Whether this step, with the same event id, replaces the kept one (else it is a
        duplicate): a later snapshot may restate an event with a higher reopen count (12345
        重办次数)."""
        return (-(self.reopen_count or 0), self.key) < (-(kept.reopen_count or 0), kept.key)

    def same(self, other: Step) -> bool:
        return all(getattr(self, name) == getattr(other, name) for name in STEP_FIELDS)

    def __repr__(self) -> str:
        return f"Step({self.event_id}, {self.kind.value}, {self.at})"

    @classmethod
    def of(cls, event: Event, case_id_check: str | None = None) -> Step:
        attrs = CaseAttrs(event.source, event.system, event.district, event.street,
                          event.community, event.grid, event.category, event.urgency,
                          event.caller_hash)
        return cls(event.event_id, event.type, to_us(event.occurred_at), attrs, event.unit,
                   event.satisfaction, event.extension_days, event.reopen_count,
                   None if event.due_at is None else to_us(event.due_at), event.reason)


def _text(data: dict[str, Any], name: str, required: bool = False, min_length: int = 0,
          max_length: int | None = None) -> str | None:
    value = data.get(name)
    if value is None:
        if required:
            raise InvalidRecord(f"not a canonical event: {name} is missing")
        return None
    if type(value) is not str or len(value) < min_length:
        raise InvalidRecord(f"not a canonical event: {name} must be a non-empty string")
    if max_length is not None and len(value) > max_length:
        raise InvalidRecord(f"not a canonical event: {name} is longer than {max_length}")
    return value


# a list: compiled, a Final tuple of literals is built again wherever it is read
_MONTH_DAYS: Final = [0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31]


def _two_digits(value: str, at: i64) -> i64:
    """The number written by the two ASCII digits at `at`, or -1."""
    tens: i64 = ord(value[at]) - 48
    ones: i64 = ord(value[at + 1]) - 48
    if 0 <= tens <= 9 and 0 <= ones <= 9:
        return tens * 10 + ones
    return -1


def _days_from_civil(year: i64, month: i64, day: i64) -> i64:
    """Days since 1970-01-01 of a proleptic Gregorian date from year 1 (H. Hinnant's
    `days_from_civil`)."""
    if month <= 2:
        year -= 1
    era = year // 400
    year_of_era = year - era * 400
    day_of_year = (153 * (month - 3 if month > 2 else month + 9) + 2) // 5 + day - 1
    return era * 146_097 + year_of_era * 365 + year_of_era // 4 - year_of_era // 100 + day_of_year - 719_468


def _fast_instant(value: str) -> int | None:
    """The common wire form `YYYY-MM-DDTHH:MM:SS+HH:MM` read digit by digit in 64-bit integers,
    no object made; None for any other form or for a date or time that does not exist (the
    slow path decides)."""
    if (len(value) != 25 or ord(value[4]) != 45 or ord(value[7]) != 45 or ord(value[10]) != 84
            or ord(value[13]) != 58 or ord(value[16]) != 58 or ord(value[22]) != 58):
        return None  # not "-", "-", "T", ":", ":" and the offset's ":"
    sign = ord(value[19])
    if sign != 43 and sign != 45:  # "+" or "-"
        return None
    century = _two_digits(value, 0)
    decade = _two_digits(value, 2)
    month = _two_digits(value, 5)
    day = _two_digits(value, 8)
    hours = _two_digits(value, 11)
    minutes = _two_digits(value, 14)
    seconds = _two_digits(value, 17)
    offset_hours = _two_digits(value, 20)
    offset_minutes = _two_digits(value, 23)
    year = century * 100 + decade
    if (century < 0 or decade < 0 or year < 1 or not 1 <= month <= 12 or day < 1
            or hours < 0 or hours > 23 or minutes < 0 or minutes > 59 or seconds < 0 or seconds > 59
            or offset_hours < 0 or offset_hours > 23 or offset_minutes < 0 or offset_minutes > 59):
        return None
    if day > _MONTH_DAYS[month] + (1 if month == 2 and leap_year(year) else 0):
        return None
    offset = offset_hours * 3600 + offset_minutes * 60
    if sign == 45:
        offset = -offset
    return int((_days_from_civil(year, month, day) * 86_400 + hours * 3600 + minutes * 60 + seconds
                - offset) * 1_000_000)


# the model's own datetime parser: what the fast path does not read is read exactly as Event reads
# it (Python's fromisoformat takes forms the model refuses: 20261012T080000+08:00, +08, week dates)
_AWARE_DATETIME: Final[TypeAdapter[datetime]] = TypeAdapter(AwareDatetime)


def _slow_instant(name: str, value: Any) -> datetime:
    if type(value) is not str:  # the model would read a number as Unix time; the wire never does
        raise InvalidRecord(f"not a canonical event: {name} {value!r} is no ISO 8601 time")
    try:
        return _AWARE_DATETIME.validate_python(value)
    except ValidationError as exc:
        if any(error["type"] == "timezone_aware" for error in exc.errors()):
            raise InvalidRecord(f"not a canonical event: {name} {value!r} has no UTC offset") from None
        raise InvalidRecord(f"not a canonical event: {name} {value!r} is no ISO 8601 time") from None


def _instant(data: dict[str, Any], name: str, required: bool = False) -> int | None:
    value = data.get(name)
    if value is None:
        if required:
            raise InvalidRecord(f"not a canonical event: {name} is missing")
        return None
    us = _fast_instant(value) if type(value) is str else None
    if us is None:
        us = to_us(_slow_instant(name, value))
    if not EARLIEST_US <= us < LATEST_US:
        raise InvalidRecord(f"event time out of range: {name} {value} is not between 2000 and 2100")
    return us


def _small_int(data: dict[str, Any], name: str, high: int) -> int | None:
    value = data.get(name)
    if value is None:
        return None
    if type(value) is not int or not 0 <= value <= high:
        raise InvalidRecord(f"not a canonical event: {name} must be an integer from 0 to {high}")
    return value


def _enum(data: dict[str, Any], name: str, table: dict[str, Any], default: Any = None) -> Any:
    value = data.get(name)
    if value is None:
        if default is None:
            raise InvalidRecord(f"not a canonical event: {name} is missing")
        return default
    found = table.get(value) if type(value) is str else None
    if found is None:
        raise InvalidRecord(f"not a canonical event: {name} {str(value)[:40]!r} is not one of "
                            f"{', '.join(table)}")
    return found


_OPTIONAL_TEXT: Final = ("district", "street", "community", "grid", "unit", "caller_hash")


AttrsCache = dict[tuple, CaseAttrs]
_ATTRS_CACHE_LIMIT: Final = 200_000


def _attrs_key(source: Any, system: Any, district: Any, street: Any, community: Any, grid: Any,
               category: Any, urgency: Any, caller_hash: Any) -> tuple:
    """The case-level fields of an event as sent, a category or urgency left out as the model
    defaults it: the key of the attributes they validate to (both parse paths use it)."""
    return (source, system, district, street, community, grid,
            "other:" if category is None else category, "normal" if urgency is None else urgency,
            caller_hash)


def parse_step(raw: bytes, attrs_cache: AttrsCache) -> tuple[str, Step]:
    """(case_id, step) from an event's JSON bytes, validated field by field like the model does.
    `attrs_cache` maps the case-level fields as sent to their validated `CaseAttrs`: most
    events of a case carry the same ones, validated once."""
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidRecord(f"not a canonical event: not JSON ({exc})") from None
    if type(data) is not dict:
        raise InvalidRecord("not a canonical event: not a JSON object")
    try:
        found = _parse_common(data, attrs_cache)
    except (TypeError, ValueError):
        found = None  # an unhashable or odd value: the checked path says what is wrong
    return found if found is not None else _parse_checked(data, attrs_cache)


def _parse_common(data: dict[str, Any], attrs_cache: AttrsCache) -> tuple[str, Step] | None:
    """The common case, or None: known attributes and plain values of every field. Accepts
    only what `_parse_checked` accepts, with the same result; anything else goes there."""
    # one pass over the event's keys: orjson's dicts are not string-keyed dicts to CPython, so
    # data.get(name) compares strings, while _WIRE_INDEX is (and finds an unknown key at once)
    values: list[Any] = [None] * _WIRE_COUNT
    for key, value in data.items():
        index = _WIRE_INDEX.get(key)
        if index is None or value is None:
            return None  # an unknown field or a null: the checked path says which, or takes it
        values[index] = value
    (schema_version, case_id, event_id, source, system, type_, occurred_at, district, street,
     community, grid, category, urgency, unit, satisfaction, extension_days, caller_hash, due_at,
     reopen_count, reason) = values
    if schema_version is not None and schema_version != SCHEMA_VERSION:
        return None
    attrs = attrs_cache.get(_attrs_key(source, system, district, street, community, grid,
                                       category, urgency, caller_hash))
    kind = _TYPES.get(type_)
    at = _fast_instant(occurred_at) if type(occurred_at) is str else None
    if (attrs is None or type(case_id) is not str or not case_id or type(event_id) is not str
            or not event_id or kind is None or (unit is not None and type(unit) is not str)
            or at is None or not EARLIEST_US <= at < LATEST_US):
        return None
    if satisfaction is not None:
        satisfaction = _SATISFACTIONS.get(satisfaction)
        if satisfaction is None:
            return None
    if extension_days is not None and (type(extension_days) is not int
                                       or not 0 <= extension_days <= 365):
        return None
    if reopen_count is not None and (type(reopen_count) is not int
                                     or not 0 <= reopen_count <= 1000):
        return None
    if due_at is not None:
        due_at = _fast_instant(due_at) if type(due_at) is str else None
        if due_at is None or not EARLIEST_US <= due_at < LATEST_US:
            return None
    if reason is not None and (type(reason) is not str or len(reason) > 500):
        return None
    return case_id, Step(event_id, kind, at, attrs, unit, satisfaction, extension_days,
                         reopen_count, due_at, reason)


def _parse_checked(data: dict[str, Any], attrs_cache: AttrsCache) -> tuple[str, Step]:
    """Every field checked in turn; the first one the model would refuse is the reason."""
    if not data.keys() <= _FIELDS:
        extra = sorted(set(data) - _FIELDS)[0]
        raise InvalidRecord(f"not a canonical event: unknown field {extra[:40]!r}")
    version = data.get("schema_version", SCHEMA_VERSION)
    if version != SCHEMA_VERSION:
        raise InvalidRecord(f"not a canonical event: schema_version {version!r} (this worker reads "
                            f"{SCHEMA_VERSION})")
    case_id = data.get("case_id")
    event_id = data.get("event_id")
    system = data.get("system")
    for name, value in (("case_id", case_id), ("event_id", event_id), ("system", system)):
        if type(value) is not str or not value:
            raise InvalidRecord(f"not a canonical event: {name} must be a non-empty string")
    for name in _OPTIONAL_TEXT:
        value = data.get(name)
        if value is not None and type(value) is not str:
            raise InvalidRecord(f"not a canonical event: {name} must be a string")
    category = data.get("category", "other:")
    if type(category) is not str:
        raise InvalidRecord("not a canonical event: category must be a string")
    kind = _TYPES.get(data.get("type"))  # type: ignore[arg-type]
    if kind is None:
        _enum(data, "type", _TYPES)
    source = _SOURCES.get(data.get("source"))  # type: ignore[arg-type]
    if source is None:
        _enum(data, "source", _SOURCES)
    urgency = data.get("urgency", Urgency.NORMAL.value)
    urgency = _URGENCIES.get(urgency) if type(urgency) is str else None
    if urgency is None:  # null too: the model takes an urgency or none, not null
        raise InvalidRecord(f"not a canonical event: urgency {str(data.get('urgency'))[:40]!r} is not "
                            f"one of {', '.join(_URGENCIES)}")
    key = _attrs_key(data.get("source"), system, data.get("district"), data.get("street"),
                     data.get("community"), data.get("grid"), category, data.get("urgency"),
                     data.get("caller_hash"))
    attrs = attrs_cache.get(key)
    if attrs is None:
        if len(attrs_cache) >= _ATTRS_CACHE_LIMIT:
            attrs_cache.clear()
        attrs = attrs_cache[key] = CaseAttrs(
            source, system, data.get("district"), data.get("street"), data.get("community"),  # type: ignore[arg-type]
            data.get("grid"), category, urgency, data.get("caller_hash"))
    satisfaction = data.get("satisfaction")
    if satisfaction is not None:
        satisfaction = _enum(data, "satisfaction", _SATISFACTIONS)
    extension_days = data.get("extension_days")
    reopen_count = data.get("reopen_count")
    due_at = data.get("due_at")
    reason = data.get("reason")
    step = Step(
        event_id, kind, _instant(data, "occurred_at", True), attrs, data.get("unit"),  # type: ignore[arg-type]
        satisfaction,
        None if extension_days is None else _small_int(data, "extension_days", 365),
        None if reopen_count is None else _small_int(data, "reopen_count", 1000),
        None if due_at is None else _instant(data, "due_at"),
        None if reason is None else _text(data, "reason", max_length=500))
    return case_id, step  # type: ignore[return-value]
