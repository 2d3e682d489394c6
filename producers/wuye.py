"""Property service events (`wuye`): webhook JSON bodies, or the same JSON in .jsonl files."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any, BinaryIO

import orjson

from producers.base import FeedAdapter, Reject, RowResult, check_event_time, json_lines
from producers.privacy import identifier, redact_record, safe_category
from producers.textfile import Line
from schemas.catalog import load_catalog
from schemas.codes import COMMUNITY_LEN, parse_area_code
from schemas.enums import EventType, Satisfaction, Source, Urgency
from schemas.errors import InvalidRecord
from schemas.event import Event, make_case_id, make_event_id

FORMAT = "wuye"
EVENT_NAMES: dict[str, EventType] = {
    **{t.value: t for t in EventType},
    "报修": EventType.CREATED, "派单": EventType.DISPATCHED, "接单": EventType.RESPONDED,
    "到场": EventType.RESPONDED, "完工": EventType.RESOLVED, "评价": EventType.FEEDBACK,
    "返修": EventType.REOPENED, "延期": EventType.EXTENDED, "督办": EventType.SUPERVISED,
    "取消": EventType.CANCELLED, "关闭": EventType.CLOSED,
}
SATISFACTIONS: dict[str, Satisfaction] = {
    **{s.value: s for s in Satisfaction},
    "满意": Satisfaction.SATISFIED, "基本满意": Satisfaction.BASICALLY_SATISFIED,
    "不满意": Satisfaction.UNSATISFIED,
}
FIELDS = {"order_id", "community_code", "event", "time", "category", "urgent", "company_code",
          "satisfaction", "extension_days", "event_id"}


def _str(body: dict[str, Any], key: str, required: bool = True) -> str | None:
    value = body.get(key)
    if value is None or (isinstance(value, str) and not value.strip()):
        if required:
            raise InvalidRecord(f"{key} is missing")
        return None
    if not isinstance(value, str | int) or isinstance(value, bool):
        raise InvalidRecord(f"{key} must be a string")
    return str(value).strip()


def body_to_event(body: object, now: datetime | None = None) -> Event:
    if not isinstance(body, dict):
        raise InvalidRecord("body is not a JSON object")
    unknown = sorted(set(body) - FIELDS)
    if unknown:
        raise InvalidRecord(f"unknown fields {unknown}: personal data and free text are not accepted")
    order = identifier("order_id", _str(body, "order_id") or "")
    kind_text = _str(body, "event")
    kind = EVENT_NAMES.get(kind_text or "")
    if kind is None:
        names = ", ".join(t.value for t in EventType)
        raise InvalidRecord(f"event {kind_text!r} is unknown: use one of {names}")
    time_text = _str(body, "time")
    try:
        occurred_at = datetime.fromisoformat(time_text or "")
    except ValueError as exc:
        raise InvalidRecord(f"time {time_text!r} is not ISO 8601 (2026-10-03T09:15:00+08:00)") from exc
    if occurred_at.tzinfo is None:
        raise InvalidRecord(f"time {time_text!r} has no UTC offset: add one, e.g. +08:00")
    check_event_time(occurred_at, "time", now)
    community = _str(body, "community_code")
    if community is None or len(community) != COMMUNITY_LEN or not (community.isascii()
                                                                   and community.isdigit()):
        raise InvalidRecord(f"community_code {community!r} is not 12 digits")
    area = parse_area_code(community)
    urgent = body.get("urgent", False)
    if not isinstance(urgent, bool):
        raise InvalidRecord("urgent must be true or false")
    satisfaction = None
    satisfaction_text = _str(body, "satisfaction", required=False)
    if satisfaction_text is not None:
        satisfaction = SATISFACTIONS.get(satisfaction_text)
        if satisfaction is None:
            raise InvalidRecord(f"satisfaction {satisfaction_text!r} is unknown")
    extension = body.get("extension_days")
    if kind is EventType.EXTENDED:
        if not isinstance(extension, int) or isinstance(extension, bool) or not 0 < extension <= 365:
            raise InvalidRecord("extension_days must be a whole number 1..365 on an extended event")
    else:
        extension = None
    native_id = _str(body, "event_id", required=False) or f"{kind.value}@{occurred_at.isoformat()}"
    category = _str(body, "category", required=False) or ""
    company = _str(body, "company_code", required=False)
    return Event.build(
        event_id=make_event_id(FORMAT, str(order), native_id),
        case_id=make_case_id(Source.PROPERTY, FORMAT, str(order)),
        source=Source.PROPERTY,
        system=FORMAT,
        type=kind,
        occurred_at=occurred_at,
        district=area.district,
        street=area.street,
        community=area.community,
        category=safe_category(load_catalog().code_for(Source.PROPERTY, None, category)),
        urgency=Urgency.URGENT if urgent else Urgency.NORMAL,
        unit=identifier("company_code", company) if company else None,
        satisfaction=satisfaction,
        extension_days=extension,
    )


class WuyeAdapter(FeedAdapter):
    format = FORMAT
    source = Source.PROPERTY

    def parse_rows(self, stream: BinaryIO, file: str, now: datetime | None = None
                   ) -> Iterator[RowResult]:
        def line(line: Line) -> Event | Reject:
            try:
                body = orjson.loads(line.data)
            except orjson.JSONDecodeError as exc:
                return Reject(FORMAT, Source.PROPERTY, file, line.number,
                              f"body is not JSON: {exc}", redact_record(line.data), size=line.size)
            try:
                return body_to_event(body, now)
            except InvalidRecord as exc:
                # only the fields a body may have: one refused for carrying personal data
                # does not keep it
                kept = (redact_record(body, keep=FIELDS) if isinstance(body, dict)
                        else redact_record(line.data))
                return Reject(FORMAT, Source.PROPERTY, file, line.number, exc.reason, kept,
                              size=line.size)

        return json_lines(stream, line, FORMAT, Source.PROPERTY, file)
