"""12345 hotline work-order export (`12345`): CSV snapshots, GBK or UTF-8 (DESIGN §5.2).

Each row is a snapshot of one work order; each filled time column becomes one event with an
id derived from (order, column), so importing a later snapshot adds only the new events.

This is the feed with the most events per record, so the adapter writes each event's wire
bytes directly (no model per event); `parse_rows` validates those bytes with the model, and a
property test holds the two to the same bytes.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import BinaryIO

import orjson

from producers.base import EncodedRow, FeedAdapter, RowResult, check_event_time, csv_feed, decoded_rows
from producers.privacy import caller_hash, identifier, safe_category
from producers.timeparse import LocalTimes
from schemas.catalog import load_catalog
from schemas.codes import AreaCodes, parse_area_code
from schemas.enums import EventType, Satisfaction, Source, Urgency
from schemas.errors import InvalidRecord
from schemas.event import SCHEMA_VERSION, EncodedEvent, make_case_id, make_event_id
from streams.calendar import CHINA_TZ

FORMAT = "12345"
COLUMNS = ["工单编号", "来电时间", "来电号码", "诉求人", "诉求类型", "诉求内容", "紧急程度",
           "区县编码", "街道编码", "承办单位编码", "承办单位", "派单时间", "签收时间", "办结时间",
           "回访时间", "满意度", "重办次数", "工单状态"]
TIME_COLUMNS: list[tuple[str, EventType]] = [
    ("来电时间", EventType.CREATED),
    ("派单时间", EventType.DISPATCHED),
    ("签收时间", EventType.RESPONDED),
    ("办结时间", EventType.RESOLVED),
    ("回访时间", EventType.FEEDBACK),
]
URGENCIES = {"紧急": Urgency.URGENT, "一般": Urgency.NORMAL, "疑难": Urgency.COMPLEX, "": Urgency.NORMAL}
SATISFACTIONS = {"满意": Satisfaction.SATISFIED, "基本满意": Satisfaction.BASICALLY_SATISFIED,
                 "不满意": Satisfaction.UNSATISFIED}
_HOTLINE = Source.HOTLINE
_SOURCE = _HOTLINE.value
_CASE_PREFIX = make_case_id(Source.HOTLINE, FORMAT, "")


class RowEncoder:
    """One 12345 row -> its events' wire bytes. Holds what is the same for every row of an
    import (column positions, key, clock) and caches of the lookups that repeat."""

    def __init__(self, header: list[str], key: bytes, now: datetime | None) -> None:
        absent = len(header)  # a padded row has "" there
        self.width = absent + 1
        self.index = {name: header.index(name) if name in header else absent for name in COLUMNS}
        self.times = [(self.index[column], column, kind.value) for column, kind in TIME_COLUMNS]
        self.key = key
        self.local_times = LocalTimes(CHINA_TZ,
                                      check=lambda at, column: check_event_time(at, column, now))
        self.areas: dict[str, AreaCodes] = {}
        self.categories: dict[str, str] = {}
        self.units: set[str] = set()  # unit codes already checked for personal data

    def area(self, code: str) -> AreaCodes:
        area = self.areas.get(code)
        if area is None:
            area = self.areas[code] = parse_area_code(code)
        return area

    def category(self, item: str) -> str:
        code = self.categories.get(item)
        if code is None:
            code = load_catalog().code_for(Source.HOTLINE, None, item)
            code = self.categories[item] = safe_category(code)
        return code

    def encode(self, cells: list[str]) -> list[EncodedEvent]:
        if len(cells) < self.width:
            cells = cells + [""] * (self.width - len(cells))
        ix = self.index
        order = cells[ix["工单编号"]].strip()
        if not order:
            raise InvalidRecord("工单编号 is empty: it makes the case id")
        identifier("工单编号", order)
        urgency_text = cells[ix["紧急程度"]].strip()
        urgency = URGENCIES.get(urgency_text)
        if urgency is None:
            raise InvalidRecord(f"紧急程度 {urgency_text!r} is unknown: expected 紧急, 一般 or 疑难")
        district = street = None
        street_code, district_code = cells[ix["街道编码"]].strip(), cells[ix["区县编码"]].strip()
        if street_code:
            area = self.area(street_code)
            district, street = area.district, area.street
        elif district_code:
            district = self.area(district_code).district
        satisfaction_text = cells[ix["满意度"]].strip()
        satisfaction = SATISFACTIONS.get(satisfaction_text) if satisfaction_text else None
        if satisfaction_text and satisfaction is None:
            raise InvalidRecord(f"满意度 {satisfaction_text!r} is unknown: expected 满意, 基本满意 or 不满意")
        reopen_text = cells[ix["重办次数"]].strip() or "0"
        if not reopen_text.isdigit() or not reopen_text.isascii() or int(reopen_text) > 1000:
            raise InvalidRecord(f"重办次数 {reopen_text!r} is not a whole number from 0 to 1000")
        times: list[tuple[str, datetime]] = []
        for index, column, kind in self.times:
            text = cells[index].strip()
            if text:
                times.append((kind, self.local_times.parse(text, column)))
        if not times or times[0][0] != "created":
            raise InvalidRecord("来电时间 is empty: a work order starts with its call")
        if cells[ix["工单状态"]].strip() == "作废":
            times.append(("cancelled", max(at for _, at in times)))
        case_id = _CASE_PREFIX + order
        # the model's field order; a field the model would leave out (None) is not written
        tail: dict[str, object] = {}
        if district is not None:
            tail["district"] = district
        if street is not None:
            tail["street"] = street
        tail["category"] = self.category(cells[ix["诉求类型"]].strip())
        tail["urgency"] = urgency.value
        unit = cells[ix["承办单位编码"]].strip()
        if unit:
            if unit not in self.units:
                self.units.add(identifier("承办单位编码", unit))
            tail["unit"] = unit
        events = []
        for kind, at in times:
            event_id = make_event_id(FORMAT, order, kind)
            fields = {"schema_version": SCHEMA_VERSION, "event_id": event_id, "case_id": case_id,
                      "source": _SOURCE, "system": FORMAT, "type": kind, "occurred_at": at, **tail}
            if kind == "created":
                caller = caller_hash(cells[ix["来电号码"]], self.key)
                if caller is not None:
                    fields["caller_hash"] = caller
                fields["reopen_count"] = int(reopen_text)
            elif kind == "feedback" and satisfaction is not None:
                fields["satisfaction"] = satisfaction.value
            events.append(EncodedEvent(event_id, case_id, _HOTLINE, at, orjson.dumps(fields)))
        return events



class Hotline12345Adapter(FeedAdapter):
    format = FORMAT
    source = Source.HOTLINE

    def __init__(self, caller_key: bytes = b"civicflow-dev-key-change-me") -> None:
        self.caller_key = caller_key

    def parse_rows(self, stream: BinaryIO, file: str, now: datetime | None = None
                   ) -> Iterator[RowResult]:
        """Per source row: (line, its events) or (line, [its reject])."""
        return decoded_rows(self.encode_rows(stream, file, now), FORMAT, Source.HOTLINE, file)

    def encode_rows(self, stream: BinaryIO, file: str, now: datetime | None = None
                    ) -> Iterator[EncodedRow]:
        return csv_feed(stream, file, FORMAT, Source.HOTLINE, ("工单编号", "来电时间"),
                        f"the 12345 export columns {','.join(COLUMNS)}", COLUMNS,
                        lambda header: RowEncoder(header, self.caller_key, now).encode)
