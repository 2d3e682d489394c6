"""12345 hotline work-order export (`12345`): CSV snapshots, GBK or UTF-8 (DESIGN §5.2).

Each row is a snapshot of one work order; each filled time column becomes one event with an
id derived from (order, column), so importing a later snapshot adds only the new events.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from datetime import datetime

from producers.base import FUTURE_TOLERANCE, FeedAdapter, Reject, RowResult
from producers.privacy import caller_hash, mask_text
from producers.textfile import csv_records, decode_feed
from producers.timeparse import parse_local_time
from schemas.catalog import load_catalog
from schemas.codes import parse_area_code
from schemas.enums import EventType, Satisfaction, Source, Urgency
from schemas.errors import InvalidRecord
from schemas.event import Event, make_case_id, make_event_id
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


def safe_raw(row: dict[str, str]) -> str:
    """The row as a dead letter may keep it: no name, no phone, masked free text."""
    kept = {k: v for k, v in row.items() if k not in ("诉求人", "来电号码") and k is not None}
    if "诉求内容" in kept and kept["诉求内容"]:
        kept["诉求内容"] = mask_text(kept["诉求内容"])
    return ",".join(f"{k}={v}" for k, v in kept.items())


def row_to_events(row: dict[str, str], key: bytes, now: datetime | None = None) -> list[Event]:
    order = (row.get("工单编号") or "").strip()
    if not order:
        raise InvalidRecord("工单编号 is empty: it makes the case id")
    if any("\ufffd" in (v or "") for v in row.values()):
        raise InvalidRecord("encoding: row has bytes that are neither UTF-8 nor GBK; re-export the file")
    urgency = URGENCIES.get((row.get("紧急程度") or "").strip())
    if urgency is None:
        raise InvalidRecord(f"紧急程度 {row.get('紧急程度')!r} is unknown: expected 紧急, 一般 or 疑难")
    district = street = None
    if (row.get("街道编码") or "").strip():
        area = parse_area_code(row["街道编码"])
        district, street = area.district, area.street
    elif (row.get("区县编码") or "").strip():
        district = parse_area_code(row["区县编码"]).district
    satisfaction_text = (row.get("满意度") or "").strip()
    satisfaction = SATISFACTIONS.get(satisfaction_text) if satisfaction_text else None
    if satisfaction_text and satisfaction is None:
        raise InvalidRecord(f"满意度 {satisfaction_text!r} is unknown: expected 满意, 基本满意 or 不满意")
    reopen_text = (row.get("重办次数") or "0").strip() or "0"
    if not reopen_text.isdigit() or int(reopen_text) > 1000:
        raise InvalidRecord(f"重办次数 {reopen_text!r} is not a whole number from 0 to 1000")
    times: list[tuple[EventType, datetime]] = []
    for column, kind in TIME_COLUMNS:
        text = (row.get(column) or "").strip()
        if text:
            times.append((kind, parse_local_time(text, CHINA_TZ, column)))
    if not times or times[0][0] is not EventType.CREATED:
        raise InvalidRecord("来电时间 is empty: a work order starts with its call")
    if now is not None:
        for kind, at in times:
            if at > now + FUTURE_TOLERANCE:
                raise InvalidRecord(f"{kind} time {at.isoformat()} is in the future (now {now.isoformat()})")
    status = (row.get("工单状态") or "").strip()
    if status == "作废":
        times.append((EventType.CANCELLED, max(at for _, at in times)))
    common = {
        "case_id": make_case_id(Source.HOTLINE, FORMAT, order),
        "source": Source.HOTLINE,
        "system": FORMAT,
        "district": district,
        "street": street,
        "category": load_catalog().code_for(Source.HOTLINE, None, (row.get("诉求类型") or "").strip()),
        "urgency": urgency,
        "unit": (row.get("承办单位编码") or "").strip() or None,
    }
    events = []
    for kind, at in times:
        extra: dict[str, object] = {}
        if kind is EventType.CREATED:
            extra["caller_hash"] = caller_hash(row.get("来电号码"), key)
            extra["reopen_count"] = int(reopen_text)
        if kind is EventType.FEEDBACK:
            extra["satisfaction"] = satisfaction
        events.append(Event.build(event_id=make_event_id(FORMAT, order, kind.value), type=kind,
                            occurred_at=at, **common, **extra))
    return events


class Hotline12345Adapter(FeedAdapter):
    format = FORMAT
    source = Source.HOTLINE

    def __init__(self, caller_key: bytes = b"civicflow-dev-key-change-me") -> None:
        self.caller_key = caller_key

    def parse_rows(self, data: bytes, file: str, now: datetime | None = None) -> Iterator[RowResult]:
        """Per source row: (line, its events) or (line, [its reject])."""
        text, _encoding = decode_feed(data)
        reader = csv.DictReader(io.StringIO(text, newline=""))
        header = [h.strip() for h in (reader.fieldnames or [])]
        missing = [c for c in ("工单编号", "来电时间") if c not in header]
        if missing:
            yield 1, [Reject(FORMAT, Source.HOTLINE, file, 1,
                             f"header: columns {missing} missing; expected the 12345 export columns "
                             f"{','.join(COLUMNS)}", text.splitlines()[0][:500] if text else "")]
            return
        reader.fieldnames = header
        for line, row, problem in csv_records(reader):
            if row is None:
                yield line, [Reject(FORMAT, Source.HOTLINE, file, line, problem, "")]
                continue
            if None in row:  # more cells than header columns
                yield line, [Reject(FORMAT, Source.HOTLINE, file, line,
                                    "csv: row has more cells than the header", safe_raw(row))]
                continue
            try:
                yield line, row_to_events(row, self.caller_key, now)
            except InvalidRecord as exc:
                yield line, [Reject(FORMAT, Source.HOTLINE, file, line, exc.reason, safe_raw(row))]
