"""The canonical event (DESIGN §4): what every adapter produces and every stage reads."""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Any, NamedTuple

import orjson
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError

from schemas.enums import EventType, Satisfaction, Source, Urgency
from schemas.errors import InvalidRecord

SCHEMA_VERSION = 1


def make_event_id(system: str, *native_ids: str) -> str:
    """Deterministic id from the source's own ids: re-importing the same record gives the same id."""
    return hashlib.blake2b("\x1f".join((system,) + native_ids).encode(), digest_size=12).hexdigest()


def make_case_id(source: Source | str, system: str, native_id: str) -> str:
    return f"{source}:{system}:{native_id}"


class Event(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", use_enum_values=False)

    schema_version: int = SCHEMA_VERSION
    event_id: str = Field(min_length=1)
    case_id: str = Field(min_length=1)
    source: Source
    system: str = Field(min_length=1)
    type: EventType
    occurred_at: AwareDatetime
    district: str | None = None
    street: str | None = None
    community: str | None = None
    grid: str | None = None
    category: str = "other:"
    urgency: Urgency = Urgency.NORMAL
    unit: str | None = None
    satisfaction: Satisfaction | None = None
    extension_days: int | None = Field(default=None, ge=0, le=365)
    caller_hash: str | None = None
    # resolve due instant given by the source (Open311 `Due Date`); replaces the policy limit
    due_at: AwareDatetime | None = None
    # reopen count a snapshot source reports without reopen times (12345 `重办次数`)
    reopen_count: int | None = Field(default=None, ge=0, le=1000)
    # on `returned` and `suspended`: the unit's stated reason, phone and ID numbers masked
    reason: str | None = Field(default=None, max_length=500)

    def to_json(self) -> bytes:
        return self.__pydantic_serializer__.to_json(self, exclude_none=True)

    @classmethod
    def from_json(cls, raw: bytes | str) -> Event:
        try:
            return cls.model_validate(orjson.loads(raw))
        except (orjson.JSONDecodeError, ValidationError) as exc:
            raise InvalidRecord(f"not a canonical event: {exc}") from exc

    @classmethod
    def build(cls, **fields: Any) -> Event:
        """Construct from adapter-made fields; a value the model refuses becomes InvalidRecord
        naming the field, so an adapter never raises on bad input."""
        try:
            return cls(**fields)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(part) for part in first["loc"])
            raise InvalidRecord(f"{where}: {first['msg']} (got {first.get('input')!r})") from exc

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Event:
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            raise InvalidRecord(f"not a canonical event: {exc}") from exc


class EncodedEvent(NamedTuple):
    """An event in its wire form, with what routing, ordering and de-duplication read.

    The ingest hot path carries these instead of models: `payload` is byte for byte what
    `Event.to_json()` gives for the same fields (a property test holds adapters to that)."""

    event_id: str
    case_id: str
    source: Source
    occurred_at: datetime
    payload: bytes

    @classmethod
    def of(cls, event: Event) -> EncodedEvent:
        return cls(event.event_id, event.case_id, event.source, event.occurred_at, event.to_json())

    def decode(self) -> Event:
        """The validated model; InvalidRecord if the payload is not a canonical event."""
        return Event.from_json(self.payload)


def event_time_order(event: Event | EncodedEvent) -> tuple[float, str]:
    """Sort key: event time, then event id. A POSIX timestamp, because comparing aware
    datetimes whose tzinfo objects differ calls utcoffset() on every comparison (10x the sort)."""
    return event.occurred_at.timestamp(), event.event_id
