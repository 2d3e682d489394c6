"""Grid platform feed (`jn-grid`): JSON Lines, one lifecycle event per line (DESIGN §5.1)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any, BinaryIO

import orjson

from producers.base import FeedAdapter, Reject, RowResult, check_event_time, json_lines
from producers.privacy import identifier, redact_record, safe_category, stated_reason
from producers.textfile import Line
from producers.timeparse import parse_local_time
from schemas.catalog import load_catalog
from schemas.codes import parse_grid_code
from schemas.enums import EventType, Satisfaction, Source, Urgency
from schemas.errors import InvalidRecord
from schemas.event import Event, make_case_id, make_event_id
from streams.calendar import CHINA_TZ

FORMAT = "jn-grid"

EVENT_TYPES: dict[str, EventType] = {
    "上报": EventType.CREATED,
    "受理": EventType.RESPONDED,
    "派单": EventType.DISPATCHED,
    "报到": EventType.RESPONDED,
    "办结": EventType.RESOLVED,
    "反馈": EventType.FEEDBACK,
    "回访": EventType.FEEDBACK,
    "重办": EventType.REOPENED,
    "延期": EventType.EXTENDED,
    "结案": EventType.CLOSED,
    "作废": EventType.CANCELLED,
    "督办": EventType.SUPERVISED,
    "退回": EventType.RETURNED,
    "改派": EventType.REASSIGNED,
    "挂起": EventType.SUSPENDED,
    "解挂": EventType.RESUMED,
}
# event types whose `说明` is kept, masked, as the event's reason (DESIGN §4)
WITH_REASON = frozenset({EventType.RETURNED, EventType.SUSPENDED})
URGENCIES: dict[str, Urgency] = {"紧急": Urgency.URGENT, "一般": Urgency.NORMAL, "疑难": Urgency.COMPLEX}
SATISFACTIONS: dict[str, Satisfaction] = {
    "满意": Satisfaction.SATISFIED,
    "基本满意": Satisfaction.BASICALLY_SATISFIED,
    "不满意": Satisfaction.UNSATISFIED,
}


def _text(record: dict[str, Any], key: str) -> str | None:
    value = record.get(key)
    if value is None:
        return None
    if isinstance(value, int | float) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str):
        raise InvalidRecord(f"{key} must be text, got {type(value).__name__}")
    value = value.strip()
    return value or None


def record_to_event(record: object, now: datetime | None = None) -> Event:
    """One decoded JSON line -> one canonical event, or InvalidRecord with the reason."""
    if not isinstance(record, dict):
        raise InvalidRecord("line is not a JSON object")
    native_event = _text(record, "事件ID")
    if native_event is None:
        raise InvalidRecord("事件ID is missing: the source event id makes the event id")
    order = _text(record, "工单编号")
    if order is None:
        raise InvalidRecord("工单编号 is missing: it makes the case id")
    identifier("工单编号", order)
    kind_text = _text(record, "事件类型")
    kind = EVENT_TYPES.get(kind_text or "")
    if kind is None:
        raise InvalidRecord(
            f"事件类型 {kind_text!r} is unknown: expected one of {'/'.join(EVENT_TYPES)}"
        )
    occurred_at = check_event_time(parse_local_time(record.get("发生时间"), CHINA_TZ, "发生时间"),
                                   "发生时间", now)
    grid_text = _text(record, "网格编码")
    area = parse_grid_code(grid_text) if grid_text else None
    urgency_text = _text(record, "紧急程度")
    urgency = URGENCIES.get(urgency_text or "一般")
    if urgency is None:
        raise InvalidRecord(f"紧急程度 {urgency_text!r} is unknown: expected 紧急, 一般 or 疑难")
    satisfaction_text = _text(record, "满意度")
    satisfaction = None
    if satisfaction_text is not None:
        satisfaction = SATISFACTIONS.get(satisfaction_text)
        if satisfaction is None:
            raise InvalidRecord(
                f"满意度 {satisfaction_text!r} is unknown: expected 满意, 基本满意 or 不满意"
            )
    extension_days = None
    if kind is EventType.EXTENDED:
        raw_days = record.get("延期天数")
        try:
            extension_days = int(raw_days)  # type: ignore[arg-type]
        except (TypeError, ValueError) as exc:
            raise InvalidRecord(f"延期天数 {raw_days!r} is not a whole number of days") from exc
        if not 0 < extension_days <= 365:
            raise InvalidRecord(f"延期天数 {extension_days} is outside 1..365")
    unit = _text(record, "承办单位编码")
    if kind is EventType.REASSIGNED and unit is None:
        raise InvalidRecord("改派 without 承办单位编码: a re-dispatch names the unit it goes to")
    reason = stated_reason(_text(record, "说明")) if kind in WITH_REASON else None
    category = safe_category(
        load_catalog().code_for(Source.GRID, _text(record, "事项大类"), _text(record, "事项小类")))
    return Event.build(
        event_id=make_event_id(FORMAT, native_event),
        case_id=make_case_id(Source.GRID, FORMAT, order),
        source=Source.GRID,
        system=FORMAT,
        type=kind,
        occurred_at=occurred_at,
        district=area.district if area else None,
        street=area.street if area else None,
        community=area.community if area else None,
        grid=area.grid if area else None,
        category=category,
        urgency=urgency,
        unit=identifier("承办单位编码", unit) if unit else None,
        satisfaction=satisfaction,
        extension_days=extension_days,
        reason=reason,
    )


class GridAdapter(FeedAdapter):
    format = FORMAT
    source = Source.GRID

    def parse_rows(self, stream: BinaryIO, file: str, now: datetime | None = None
                   ) -> Iterator[RowResult]:
        return json_lines(stream, lambda line: self._line(line, file, now), FORMAT, Source.GRID, file)

    @staticmethod
    def _line(line: Line, file: str, now: datetime | None) -> Event | Reject:
        raw, number = line.data, line.number
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError:
            return Reject(FORMAT, Source.GRID, file, number,
                          "encoding: line is not UTF-8 (jn-grid files are UTF-8 JSON Lines)",
                          redact_record(raw), size=line.size)
        try:
            record = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            return Reject(FORMAT, Source.GRID, file, number, f"json: {exc}", redact_record(raw),
                          size=line.size)
        try:
            return record_to_event(record, now)
        except InvalidRecord as exc:
            kept = redact_record(record) if isinstance(record, dict) else redact_record(raw)
            return Reject(FORMAT, Source.GRID, file, number, exc.reason, kept, size=line.size)
