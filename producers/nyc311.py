"""Open311 / NYC 311 export (`nyc311`): the NYC Open Data CSV (DESIGN §5.4) -> hotline events.

Agency is the handling unit, Borough the district, Complaint Type the category. A row gives a
`created` event, and, when Closed, `resolved` and `closed` at its Closed Date. Due Date, when
given, sets the resolve due.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime
from typing import BinaryIO
from zoneinfo import ZoneInfo

from producers.base import FeedAdapter, RowResult, check_event_time, csv_feed
from producers.privacy import identifier, safe_text
from schemas.enums import EventType, Source, Urgency
from schemas.errors import InvalidRecord
from schemas.event import Event, make_case_id, make_event_id

FORMAT = "nyc311"
NEW_YORK = ZoneInfo("America/New_York")
REQUIRED = ["Unique Key", "Created Date", "Closed Date", "Agency", "Complaint Type", "Status",
            "Due Date", "Borough"]


def parse_nyc_time(text: str, column: str) -> datetime:
    """`05/01/2022 12:00:03 AM`, New York local time."""
    try:
        naive = datetime.strptime(text.strip(), "%m/%d/%Y %I:%M:%S %p")  # noqa: DTZ007
    except ValueError as exc:
        raise InvalidRecord(f"{column} {text!r} is not a time like '05/01/2022 12:00:03 AM'") from exc
    return naive.replace(tzinfo=NEW_YORK)


def row_to_events(row: dict[str, str], now: datetime | None = None) -> list[Event]:
    key = (row.get("Unique Key") or "").strip()
    if not key:
        raise InvalidRecord("Unique Key is empty: it makes the case id")
    identifier("Unique Key", key)
    created_text = (row.get("Created Date") or "").strip()
    if not created_text:
        raise InvalidRecord("Created Date is empty: every request starts with it")
    created = check_event_time(parse_nyc_time(created_text, "Created Date"), "Created Date", now)
    due_text = (row.get("Due Date") or "").strip()
    # a due date may lie ahead: only the lower bound holds for it
    due = check_event_time(parse_nyc_time(due_text, "Due Date"), "Due Date", None) if due_text else None
    status = (row.get("Status") or "").strip()
    closed_text = (row.get("Closed Date") or "").strip()
    closed = (check_event_time(parse_nyc_time(closed_text, "Closed Date"), "Closed Date", now)
              if closed_text else None)
    if status == "Closed" and closed is None:
        raise InvalidRecord("Status is Closed but Closed Date is empty")
    borough = identifier("Borough", (row.get("Borough") or "").strip())
    agency = identifier("Agency", (row.get("Agency") or "").strip())
    common = {
        "case_id": make_case_id(Source.HOTLINE, FORMAT, key),
        "source": Source.HOTLINE,
        "system": FORMAT,
        "district": borough if borough and borough != "Unspecified" else None,
        "category": safe_text((row.get("Complaint Type") or "").strip()) or "other:",
        "urgency": Urgency.NORMAL,
        "unit": agency or None,
    }
    events = [Event.build(event_id=make_event_id(FORMAT, key, "created"), type=EventType.CREATED,
                    occurred_at=created, due_at=due, **common)]
    if closed is not None and status == "Closed":
        # a few exports close a request a moment "before" it was created (clock skew)
        at = max(closed, created)
        for kind in (EventType.RESOLVED, EventType.CLOSED):
            events.append(Event.build(event_id=make_event_id(FORMAT, key, kind.value), type=kind,
                                occurred_at=at, **common))
    return events


class Nyc311Adapter(FeedAdapter):
    format = FORMAT
    source = Source.HOTLINE

    def parse_rows(self, stream: BinaryIO, file: str, now: datetime | None = None
                   ) -> Iterator[RowResult]:
        def encoder_for(header: list[str]) -> Callable[[list[str]], list[Event]]:
            return lambda cells: row_to_events(dict(zip(header, cells, strict=False)), now)

        # a short or long row is read by name: NYC exports add and drop trailing columns
        return csv_feed(stream, file, FORMAT, Source.HOTLINE, REQUIRED, "an NYC 311 export",
                        REQUIRED, encoder_for, check_extra_cells=False)
