"""12345 circulation log (`12345-flow`, 工单流转记录): CSV, GBK or UTF-8 (DESIGN §5.5).

One row per step of a work order: who dispatched it where, who signed for it, returned it, had
it re-dispatched, suspended or resumed it. The case is the order export's (`hotline:12345:{工单编号}`),
which still brings `created`, category, urgency and area; a step seen in both exports (the 派单时间
of an order row and the 派单 row of its log) has the same type and time, and the worker counts
it once. Like the order export, the adapter writes each event's wire bytes directly; a property
test holds them to the model's serialization.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import BinaryIO

import orjson

from producers.base import EncodedRow, FeedAdapter, RowResult, check_event_time, csv_feed, decoded_rows
from producers.privacy import identifier, stated_reason
from producers.timeparse import LocalTimes
from schemas.enums import EventType, Satisfaction, Source
from schemas.errors import InvalidRecord
from schemas.event import SCHEMA_VERSION, EncodedEvent, make_case_id, make_event_id
from streams.calendar import CHINA_TZ

FORMAT = "12345-flow"
ORDER_FORMAT = "12345"  # the order export: the case id is the order's
COLUMNS = ["工单编号", "操作时间", "操作类型", "操作单位编码", "操作单位", "目标单位编码", "目标单位",
           "延期天数", "满意度", "说明"]
REQUIRED = ["工单编号", "操作时间", "操作类型"]
OPERATOR, TARGET = "操作单位编码", "目标单位编码"


@dataclass(frozen=True, slots=True)
class Step:
    """What one 操作类型 becomes: its event type, which column names the unit, whether the unit
    is required (a dispatch that names no unit says nothing) and whether 说明 is kept."""

    kind: EventType
    unit_column: str | None = None
    unit_required: bool = False
    keeps_reason: bool = False


STEPS: dict[str, Step] = {
    "派单": Step(EventType.DISPATCHED, TARGET, unit_required=True),
    "签收": Step(EventType.RESPONDED, OPERATOR),
    "退单": Step(EventType.RETURNED, OPERATOR, keeps_reason=True),
    "改派": Step(EventType.REASSIGNED, TARGET, unit_required=True),
    "挂起": Step(EventType.SUSPENDED, keeps_reason=True),
    "解挂": Step(EventType.RESUMED),
    "延期": Step(EventType.EXTENDED),
    "办结": Step(EventType.RESOLVED),
    "回访": Step(EventType.FEEDBACK),
    "重办": Step(EventType.REOPENED),
    "督办": Step(EventType.SUPERVISED),
    "作废": Step(EventType.CANCELLED),
}
SATISFACTIONS = {"满意": Satisfaction.SATISFIED, "基本满意": Satisfaction.BASICALLY_SATISFIED,
                 "不满意": Satisfaction.UNSATISFIED}
_HOTLINE = Source.HOTLINE
_SOURCE = _HOTLINE.value
_CASE_PREFIX = make_case_id(Source.HOTLINE, ORDER_FORMAT, "")
# the model's defaults for what the log does not know; the order export's `created` sets them
_CATEGORY, _URGENCY = "other:", "normal"


class FlowRowEncoder:
    """One circulation-log row -> its event's wire bytes."""

    def __init__(self, header: list[str], now: datetime | None) -> None:
        absent = len(header)  # a padded row has "" there
        self.width = absent + 1
        self.index = {name: header.index(name) if name in header else absent for name in COLUMNS}
        self.local_times = LocalTimes(CHINA_TZ,
                                      check=lambda at, column: check_event_time(at, column, now))
        self.units: set[str] = set()  # unit codes already checked for personal data

    def encode(self, cells: list[str]) -> EncodedEvent:
        if len(cells) < self.width:
            cells = cells + [""] * (self.width - len(cells))
        ix = self.index
        order = cells[ix["工单编号"]].strip()
        if not order:
            raise InvalidRecord("工单编号 is empty: it makes the case id")
        identifier("工单编号", order)
        step_text = cells[ix["操作类型"]].strip()
        step = STEPS.get(step_text)
        if step is None:
            raise InvalidRecord(f"操作类型 {step_text!r} is unknown: expected one of {'/'.join(STEPS)}")
        at = self.local_times.parse(cells[ix["操作时间"]].strip(), "操作时间")
        # the model's field order; a field the model would leave out (None) is not written
        fields: dict[str, object] = {}
        if step.unit_column is not None:
            unit = cells[ix[step.unit_column]].strip()
            if unit:
                if unit not in self.units:
                    self.units.add(identifier(step.unit_column, unit))
                fields["unit"] = unit
            elif step.unit_required:
                raise InvalidRecord(f"{step_text} without {step.unit_column}: "
                                    "the step names the unit the order goes to")
        if step.kind is EventType.FEEDBACK:
            verdict = cells[ix["满意度"]].strip()
            if verdict:
                satisfaction = SATISFACTIONS.get(verdict)
                if satisfaction is None:
                    raise InvalidRecord(f"满意度 {verdict!r} is unknown: expected 满意, 基本满意 or 不满意")
                fields["satisfaction"] = satisfaction.value
        elif step.kind is EventType.EXTENDED:
            days = cells[ix["延期天数"]].strip()
            if not days.isascii() or not days.isdigit() or not 0 < int(days) <= 365:
                raise InvalidRecord(f"延期天数 {days!r} is not a whole number of days from 1 to 365")
            fields["extension_days"] = int(days)
        if step.keeps_reason:
            reason = stated_reason(cells[ix["说明"]])
            if reason is not None:
                fields["reason"] = reason
        event_id = make_event_id(FORMAT, order, step_text, at.isoformat())
        case_id = _CASE_PREFIX + order
        payload = orjson.dumps({
            "schema_version": SCHEMA_VERSION, "event_id": event_id, "case_id": case_id,
            "source": _SOURCE, "system": FORMAT, "type": step.kind.value, "occurred_at": at,
            "category": _CATEGORY, "urgency": _URGENCY, **fields})
        return EncodedEvent(event_id, case_id, _HOTLINE, at, payload)


class HotlineFlowAdapter(FeedAdapter):
    format = FORMAT
    source = Source.HOTLINE

    def parse_rows(self, stream: BinaryIO, file: str, now: datetime | None = None
                   ) -> Iterator[RowResult]:
        """Per source row: (line, [its event]) or (line, [its reject])."""
        return decoded_rows(self.encode_rows(stream, file, now), FORMAT, Source.HOTLINE, file)

    def encode_rows(self, stream: BinaryIO, file: str, now: datetime | None = None
                    ) -> Iterator[EncodedRow]:
        def encoder_for(header: list[str]) -> Callable[[list[str]], list[EncodedEvent]]:
            encoder = FlowRowEncoder(header, now)
            return lambda cells: [encoder.encode(cells)]

        return csv_feed(stream, file, FORMAT, Source.HOTLINE, REQUIRED,
                        f"the circulation-log columns {','.join(COLUMNS)}", COLUMNS, encoder_for)
