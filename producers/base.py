"""What every feed adapter shares: the Protocol, the reject record, and the accounting."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Protocol

import orjson

from schemas.enums import Source
from schemas.event import Event

FUTURE_TOLERANCE = timedelta(minutes=10)


@dataclass(frozen=True, slots=True)
class Reject:
    """A record that became no event: kept whole with where it came from and why."""

    format: str
    source: Source
    file: str
    line: int
    reason: str
    raw: str

    def to_json(self) -> bytes:
        return orjson.dumps(
            {
                "format": self.format,
                "source": self.source.value,
                "file": self.file,
                "line": self.line,
                "reason": self.reason,
                "raw": self.raw,
            }
        )

    @property
    def reason_code(self) -> str:
        """A bounded label for counting: the reason up to its first colon."""
        return self.reason.split(":", 1)[0].split(" ")[0][:40]


class Adapter(Protocol):
    """A feed format: raw bytes of one file in, events and rejects out. Pure: no I/O."""

    format: str
    source: Source

    def parse(self, data: bytes, file: str, now: datetime | None = None) -> Iterator[Event | Reject]:
        ...


@dataclass
class ImportTally:
    """records read = events produced + records rejected + duplicates skipped."""

    read: int = 0
    produced: int = 0
    rejected: int = 0
    duplicates: int = 0
    reject_reasons: Counter[str] = field(default_factory=Counter)

    def line(self) -> str:
        return (
            f"records read {self.read} = events produced {self.produced} + records rejected "
            f"{self.rejected} + duplicates skipped {self.duplicates}"
        )

    @property
    def balanced(self) -> bool:
        return self.read == self.produced + self.rejected + self.duplicates
