from __future__ import annotations

import io
from collections import Counter
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from producers.base import ImportTally, Reject
from producers.nyc311 import Nyc311Adapter
from schemas import Event

# ../shared next to the checkout (/work/main) or next to the worktrees' folder (/work/wt/NAME)
SHARED = next(p / "shared" for p in Path(__file__).parents if (p / "shared" / "data").is_dir())
EXPORT = SHARED / "data" / "nyc311" / "311_service_requests_2022-05-01_sample.csv"
NY = ZoneInfo("America/New_York")


def test_the_real_export_imports_whole():
    tally = ImportTally()
    seen: set[str] = set()
    events: list[Event] = []
    for _, items in Nyc311Adapter().parse_rows(io.BytesIO(EXPORT.read_bytes()), str(EXPORT)):
        events.extend(tally.add(items, seen))
    assert (tally.read, tally.produced, tally.rejected, tally.duplicates) == (924, 924, 0, 0)
    kinds = Counter(e.type for e in events)
    assert len({e.case_id for e in events}) == 924
    assert kinds["created"] == 924 and kinds["resolved"] == 480 and kinds["closed"] == 480
    first = next(e for e in events if e.case_id == "hotline:nyc311:54049402")
    assert first.occurred_at == datetime(2022, 5, 1, 0, 0, 3, tzinfo=NY)
    assert (first.unit, first.district, first.category) == ("NYPD", "BRONX", "Noise - Residential")
    assert all(e.due_at is None for e in events)  # Due Date is empty in this export


def test_due_date_and_bad_rows():
    header = "Unique Key,Created Date,Closed Date,Agency,Complaint Type,Status,Due Date,Borough\n"
    good = "1,05/01/2022 01:00:00 PM,,DOT,Pothole,Open,05/03/2022 01:00:00 PM,QUEENS\n"
    bad = "2,2022-05-01,,DOT,Pothole,Open,,QUEENS\n"
    closed_no_date = "3,05/01/2022 01:00:00 PM,,DOT,Pothole,Closed,,QUEENS\n"
    items = list(Nyc311Adapter().parse(io.BytesIO((header + good + bad + closed_no_date).encode()), "f.csv"))
    assert isinstance(items[0], Event)
    assert items[0].due_at == datetime(2022, 5, 3, 13, 0, tzinfo=NY)
    assert isinstance(items[1], Reject) and "Created Date" in items[1].reason and items[1].line == 3
    assert isinstance(items[2], Reject) and "Closed Date" in items[2].reason


def test_a_row_with_undecodable_bytes_costs_that_row_only():
    header = b"Unique Key,Created Date,Closed Date,Agency,Complaint Type,Status,Due Date,Borough\n"
    rows = [b"%d,05/01/2022 01:00:00 PM,,DOT,Pothole,Open,,QUEENS\n" % n for n in range(1, 6)]
    rows[2] = rows[2].replace(b"Pothole", b"Pot\xffhole")
    results = list(Nyc311Adapter().parse_rows(io.BytesIO(header + b"".join(rows)), "f.csv"))
    kinds = [(line, type(items[0]).__name__) for line, items in results]
    assert kinds == [(2, "Event"), (3, "Event"), (4, "Reject"), (5, "Event"), (6, "Event")]
    assert results[2][1][0].reason.startswith("encoding: line 4: bytes b'\\xffhol' at column 5 "
                                              "(Complaint Type)")
