"""What every feed adapter shares: the Protocol, the reject record, and the accounting."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import BinaryIO, Protocol, TypeVar
from zoneinfo import ZoneInfo

import orjson

from producers.privacy import cut, cut_bytes, mask_text, redact_record
from producers.textfile import MAX_RECORD_BYTES, Line, csv_records, lines
from schemas.enums import Source
from schemas.errors import InvalidRecord
from schemas.event import EncodedEvent, Event

# the sane bounds of an event time, for every door (adapters, webhook; the worker may share them)
EARLIEST_EVENT_TIME = datetime(2000, 1, 1, tzinfo=ZoneInfo("Asia/Shanghai"))
FUTURE_TOLERANCE = timedelta(minutes=10)


def check_event_time(at: datetime, field: str, now: datetime | None) -> datetime:
    """`at` when it is a time an event can have happened at: not before 2000-01-01 (Asia/Shanghai)
    and not later than `now` + FUTURE_TOLERANCE (no upper bound without a clock)."""
    if at < EARLIEST_EVENT_TIME:
        raise InvalidRecord(f"{field} {at.isoformat()} is before 2000-01-01: not a time a case "
                            "happened at; fix the date at the source")
    if now is not None and at > now + FUTURE_TOLERANCE:
        raise InvalidRecord(f"{field} {at.isoformat()} is in the future (now {now.isoformat()}, "
                            f"{FUTURE_TOLERANCE.seconds // 60} minutes of clock skew allowed)")
    return at


# a dead letter keeps the first 4 KiB of its record (whatever its size) and a reason this long
DEAD_LETTER_RAW_BYTES = 4096
REASON_CHARS = 1000


@dataclass(frozen=True, slots=True)
class Reject:
    """A record that became no event: kept (redacted, at most 4 KiB of it) with where it came
    from and why. `size` is the record's size in the file; `truncated` says `raw` is a head."""

    format: str
    source: Source
    file: str
    line: int
    reason: str
    raw: str  # the record redacted by `redact_record`
    truncated: bool = False
    size: int | None = None

    def __post_init__(self) -> None:
        # whatever the adapter passed, no phone or ID number leaves in a dead letter, and a
        # dead letter always fits a Kafka message
        if self.size is None:
            object.__setattr__(self, "size", len(self.raw.encode()))
        raw = mask_text(self.raw)
        kept = cut_bytes(raw, DEAD_LETTER_RAW_BYTES)
        object.__setattr__(self, "reason", cut(mask_text(self.reason), REASON_CHARS))
        object.__setattr__(self, "raw", kept)
        object.__setattr__(self, "truncated", self.truncated or kept != raw)

    def to_json(self) -> bytes:
        return orjson.dumps(
            {
                "format": self.format,
                "source": self.source.value,
                "file": self.file,
                "line": self.line,
                "reason": self.reason,
                "raw": self.raw,
                "truncated": self.truncated,
                "size": self.size,
            }
        )

    @property
    def reason_code(self) -> str:
        """A bounded label for counting: the reason up to its first colon."""
        return self.reason.split(":", 1)[0].split(" ")[0][:40]


RowResult = tuple[int, Sequence[Event | Reject]]
EncodedRow = tuple[int, Sequence[EncodedEvent | Reject]]


class Adapter(Protocol):
    """A feed format: one file as a binary stream in, events and rejects out. Pure: it only
    reads the stream it is given, record by record (never the whole file at once).

    `parse_rows` yields, per source record, its line and either the events it makes or the
    one reject that says why it makes none. `encode_rows` yields the same with the events in
    their wire form: the ingest path, which needs bytes, not models."""

    format: str
    source: Source

    def parse_rows(self, stream: BinaryIO, file: str, now: datetime | None = None
                   ) -> Iterator[RowResult]:
        ...

    def encode_rows(self, stream: BinaryIO, file: str, now: datetime | None = None
                    ) -> Iterator[EncodedRow]:
        ...


def flatten(rows: Iterator[RowResult]) -> Iterator[Event | Reject]:
    for _, items in rows:
        yield from items


class FeedAdapter:
    """Shared by the adapters: `parse` is `parse_rows` flattened; `encode_rows` serializes the
    models `parse_rows` makes (an adapter with a faster way to the bytes overrides it)."""

    format: str
    source: Source

    def parse_rows(self, stream: BinaryIO, file: str, now: datetime | None = None
                   ) -> Iterator[RowResult]:
        raise NotImplementedError

    def encode_rows(self, stream: BinaryIO, file: str, now: datetime | None = None
                    ) -> Iterator[EncodedRow]:
        for line, items in self.parse_rows(stream, file, now):
            yield line, [i if isinstance(i, Reject) else EncodedEvent.of(i) for i in items]

    def parse(self, stream: BinaryIO, file: str, now: datetime | None = None
              ) -> Iterator[Event | Reject]:
        return flatten(self.parse_rows(stream, file, now))


def decoded_rows(rows: Iterator[EncodedRow], format_name: str, source: Source, file: str
                 ) -> Iterator[RowResult]:
    """`parse_rows` for an adapter whose own output is the wire form: every payload validated
    by the model. A payload the model refuses (an adapter bug) becomes that record's reject."""
    for line, items in rows:
        try:
            yield line, [i if isinstance(i, Reject) else i.decode() for i in items]
        except InvalidRecord as exc:
            yield line, [Reject(format_name, source, file, line,
                                f"internal: the adapter made an event the model refuses: {exc.reason}",
                                "")]


def json_lines(stream: BinaryIO, parse_line: Callable[[Line], Event | Reject], format_name: str,
               source: Source, file: str) -> Iterator[RowResult]:
    """Numbered non-empty lines of a JSON Lines stream, each through `parse_line`; a line over
    the record limit becomes a truncated dead letter unread."""
    for line in lines(stream):
        if not line.complete:
            yield line.number, [Reject(
                format_name, source, file, line.number,
                f"size: line of {line.size} bytes is over the {MAX_RECORD_BYTES // 1024} KiB "
                "limit: one record per line", redact_record(line.data), True, line.size)]
        elif line.data.strip():
            yield line.number, [parse_line(line)]


Item = TypeVar("Item", Event, EncodedEvent)


def csv_feed(stream: BinaryIO, file: str, format_name: str, source: Source,
             required: Sequence[str], expected: str, known: Sequence[str],
             encoder_for: Callable[[list[str]], Callable[[list[str]], Sequence[Item]]],
             check_extra_cells: bool = True) -> Iterator[tuple[int, Sequence[Item | Reject]]]:
    """What the CSV adapters share: the header (its `required` columns, else one reject saying
    what was `expected`), then per record its events from the encoder the header makes, or its
    reject with the reason (undecodable bytes, more cells than the header, what the encoder
    refuses), the raw record redacted by column."""
    records = csv_records(stream)
    first = next(records, None)
    header = [h.strip() for h in first.cells or []] if first is not None else []
    missing = [c for c in required if c not in header]
    if missing:  # the first row may be a data row of a file without its header
        yield 1, [Reject(format_name, source, file, 1,
                         f"header: columns {missing} missing; expected {expected}",
                         redact_record(first.text, columns=known) if first else "")]
        return
    encode = encoder_for(header)
    for record in records:
        line, cells = record.line, record.cells
        if cells is None:
            yield line, [Reject(format_name, source, file, line, record.problem,
                                redact_record(record.text, columns=header),
                                not record.complete, record.size)]
            continue
        if not cells:  # a blank line is no record
            continue
        if check_extra_cells and len(cells) > len(header):
            yield line, [Reject(format_name, source, file, line,
                                "csv: row has more cells than the header (an unquoted comma?)",
                                redact_record(cells, columns=header), size=record.size)]
            continue
        try:
            yield line, encode(cells)
        except InvalidRecord as exc:
            yield line, [Reject(format_name, source, file, line, exc.reason,
                                redact_record(cells, columns=header), size=record.size)]


AnyEvent = TypeVar("AnyEvent", Event, EncodedEvent)


@dataclass
class ImportTally:
    """records read = records produced + records rejected + duplicates skipped.

    A record is a source line or row; a 12345 snapshot row makes several events, so events
    produced are counted apart."""

    read: int = 0
    produced: int = 0
    rejected: int = 0
    duplicates: int = 0
    events: int = 0
    reject_reasons: Counter[str] = field(default_factory=Counter)
    # sent to Kafka but not acknowledged (a broker gone or restarted empty): events, dead letters,
    # and messages librdkafka never reported on (of either kind)
    undelivered_events: int = 0
    undelivered_rejects: int = 0
    undelivered_unknown: int = 0

    def line(self) -> str:
        line = (
            f"records read {self.read} = produced {self.produced} + rejected {self.rejected} "
            f"+ duplicates skipped {self.duplicates} ({self.events} events produced)"
        )
        if self.undelivered:
            line += (f"; not delivered to Kafka: {self.undelivered_events} events, "
                     f"{self.undelivered_rejects} dead letters")
            if self.undelivered_unknown:
                line += f", {self.undelivered_unknown} messages of either kind"
        return line

    @property
    def undelivered(self) -> int:
        return self.undelivered_events + self.undelivered_rejects + self.undelivered_unknown

    @property
    def balanced(self) -> bool:
        return self.read == self.produced + self.rejected + self.duplicates

    def add(self, items: Sequence[AnyEvent | Reject], seen: set[str]) -> list[AnyEvent]:
        """Count one record; returns its events not seen before in this import."""
        self.read += 1
        if items and isinstance(items[0], Reject):
            self.rejected += 1
            for reject in items:
                self.reject_reasons[reject.reason_code] += 1  # type: ignore[union-attr]
            return []
        new = [e for e in items if not isinstance(e, Reject) and e.event_id not in seen]
        if not new:
            self.duplicates += 1
            return []
        seen.update(e.event_id for e in new)
        self.produced += 1
        self.events += len(new)
        return new
