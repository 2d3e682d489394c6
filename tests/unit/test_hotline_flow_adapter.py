from __future__ import annotations

import codecs
import csv
import io
from datetime import datetime

from hypothesis import given, settings
from hypothesis import strategies as st

from producers.base import ImportTally, Reject
from producers.hotline12345 import Hotline12345Adapter
from producers.hotline_flow import COLUMNS, HotlineFlowAdapter
from producers.registry import adapter_for
from schemas import Event
from schemas.event import make_event_id
from tests.conftest import cn
from tests.unit.test_hotline_adapter import ROW as ORDER_ROW
from tests.unit.test_hotline_adapter import csv_bytes as order_csv

STEP = {"工单编号": "GD001", "操作时间": "2026/10/3 9:30", "操作类型": "派单",
        "操作单位编码": "C12345", "操作单位": "市热线中心", "目标单位编码": "U01", "目标单位": "城管局",
        "延期天数": "", "满意度": "", "说明": ""}


def flow_bytes(rows: list[dict[str, str]], encoding: str = "utf-8") -> bytes:
    buffer = io.StringIO(newline="")
    writer = csv.DictWriter(buffer, fieldnames=COLUMNS)
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue().encode(encoding)


def parse(rows: list[dict[str, str]], encoding: str = "utf-8") -> list[Event | Reject]:
    return list(HotlineFlowAdapter().parse(io.BytesIO(flow_bytes(rows, encoding)), "flow.csv"))


def one(**changes: str) -> Event | Reject:
    (item,) = parse([{**STEP, **changes}])
    return item


def test_every_step_type_maps_as_the_design_says():
    # (操作类型, extra cells) -> (type, unit, extension_days, satisfaction, reason), by DESIGN §5.5
    operator, target = "U01", "U02"
    cases = {
        "派单": ({}, ("dispatched", target, None, None, None)),
        "签收": ({}, ("responded", operator, None, None, None)),
        "退单": ({"说明": "不属于本单位职责"}, ("returned", operator, None, None, "不属于本单位职责")),
        "改派": ({}, ("reassigned", target, None, None, None)),
        "挂起": ({"说明": "等待居民补充材料"}, ("suspended", None, None, None, "等待居民补充材料")),
        "解挂": ({}, ("resumed", None, None, None, None)),
        "延期": ({"延期天数": "3"}, ("extended", None, 3, None, None)),
        "办结": ({}, ("resolved", None, None, None, None)),
        "回访": ({"满意度": "基本满意"}, ("feedback", None, None, "basically_satisfied", None)),
        "重办": ({}, ("reopened", None, None, None, None)),
        "督办": ({}, ("supervised", None, None, None, None)),
        "作废": ({}, ("cancelled", None, None, None, None)),
    }
    for step, (extra, expected) in cases.items():
        event = one(操作类型=step, 操作单位编码=operator, 目标单位编码=target,
                    **{"说明": "随便说说"} | extra)
        assert isinstance(event, Event), (step, event)
        got = (event.type.value, event.unit, event.extension_days,
               event.satisfaction.value if event.satisfaction else None, event.reason)
        assert got == expected, step
        assert (event.source, event.system, event.case_id) == ("hotline", "12345-flow", "hotline:12345:GD001")
        assert event.occurred_at == cn(2026, 10, 3, 9, 30)


def test_the_log_and_the_order_export_are_one_case():
    (step,) = parse([STEP])
    order_events = [e for e in Hotline12345Adapter(b"k").parse(io.BytesIO(order_csv([ORDER_ROW])), "h.csv")
                    if isinstance(e, Event)]
    assert {e.case_id for e in order_events} == {step.case_id}
    # the order row's 派单时间 is this step: same type and time, another event id
    dispatched = next(e for e in order_events if e.type == "dispatched")
    assert (dispatched.type, dispatched.occurred_at) == (step.type, step.occurred_at)
    assert dispatched.event_id != step.event_id


def test_event_id_is_order_step_and_iso_time_whatever_the_time_format():
    slashes, dashes = one(操作时间="2026/10/3 9:07"), one(操作时间="2026-10-03 09:07:00")
    assert isinstance(slashes, Event) and isinstance(dashes, Event)
    assert slashes == dashes
    assert slashes.event_id == make_event_id("12345-flow", "GD001", "派单", "2026-10-03T09:07:00+08:00")
    assert one(操作时间="2026-10-03 09:07:01").event_id != slashes.event_id  # type: ignore[union-attr]


def test_gbk_utf8_and_bom_read_the_same():
    rows = [STEP, {**STEP, "操作类型": "退单", "操作时间": "2026-10-03 11:00:00", "说明": "非本单位职责"}]
    plain = parse(rows)
    assert all(isinstance(e, Event) for e in plain)
    assert parse(rows, "gbk") == plain
    assert list(HotlineFlowAdapter().parse(io.BytesIO(codecs.BOM_UTF8 + flow_bytes(rows)), "flow.csv")) == plain


def test_reasons_are_masked_and_limited():
    said = "居民王先生电话13900139000，身份证370102199001011234，固话0531-88886666"
    event = one(操作类型="退单", 说明=said)
    assert isinstance(event, Event)
    assert event.reason == "居民王先生电话＊＊＊，身份证＊＊＊，固话＊＊＊"
    # a phone number across the 500-character cut is masked, not cut in half
    long = "说" * 495 + "13900139000" + "完"
    event = one(操作类型="挂起", 说明=long)
    assert isinstance(event, Event) and event.reason == "说" * 495 + "＊＊＊" + "完"
    event = one(操作类型="挂起", 说明="说" * 600)
    assert isinstance(event, Event) and event.reason == "说" * 500
    assert one(操作类型="挂起", 说明="  ").reason is None  # type: ignore[union-attr]


def test_rejects_name_the_problem_and_keep_no_phone_number():
    cases = [
        ({"操作类型": "转发"}, "操作类型 '转发' is unknown"),
        ({"操作类型": ""}, "操作类型 '' is unknown"),
        ({"工单编号": ""}, "工单编号 is empty"),
        ({"操作时间": ""}, "操作时间 is empty"),
        ({"操作时间": "2026/13/3 9:07"}, "操作时间 '2026/13/3 9:07' is not a real time"),
        ({"操作时间": "昨天"}, "操作时间 '昨天' is not a time"),
        ({"目标单位编码": ""}, "派单 without 目标单位编码"),
        ({"操作类型": "改派", "目标单位编码": " "}, "改派 without 目标单位编码"),
        ({"操作类型": "延期", "延期天数": "两天"}, "延期天数 '两天'"),
        ({"操作类型": "延期", "延期天数": "0"}, "延期天数 '0'"),
        ({"操作类型": "延期", "延期天数": "366"}, "延期天数 '366'"),
        ({"操作类型": "回访", "满意度": "还行"}, "满意度 '还行' is unknown"),
    ]
    for changes, needle in cases:
        item = one(**changes, 说明="联系13900139000")
        assert isinstance(item, Reject), changes
        assert needle in item.reason, (changes, item.reason)
        assert (item.format, item.file, item.line) == ("12345-flow", "flow.csv", 2)
        assert "13900139000" not in item.raw and "联系＊＊＊" in item.raw
    no_header = io.BytesIO("工单编号,时间\nGD1,13900139000\n".encode())
    (header,) = list(HotlineFlowAdapter().parse(no_header, "f.csv"))
    assert isinstance(header, Reject) and "['操作时间', '操作类型'] missing" in header.reason
    data = flow_bytes([STEP]) + "GD002,2026/10/3 9:07,签收,U1,,,,,,说明,多出来的\n".encode()
    first, extra = HotlineFlowAdapter().parse(io.BytesIO(data), "f.csv")
    assert isinstance(first, Event) and isinstance(extra, Reject) and "more cells" in extra.reason


def test_a_future_step_is_refused():
    now = cn(2026, 10, 3, 9, 0)
    (item,) = list(HotlineFlowAdapter().parse(io.BytesIO(flow_bytes([STEP])), "flow.csv", now=now))
    assert isinstance(item, Reject) and "in the future" in item.reason
    (item,) = list(HotlineFlowAdapter().parse(io.BytesIO(flow_bytes([STEP])), "flow.csv",
                                              now=cn(2026, 10, 3, 9, 25)))
    assert isinstance(item, Event)  # within the 10-minute tolerance


def test_registry_knows_the_format_and_duplicates_are_counted_once():
    adapter = adapter_for("12345-flow")
    assert isinstance(adapter, HotlineFlowAdapter) and adapter.source == "hotline"
    rows = [STEP, {**STEP, "操作类型": "签收", "操作单位编码": "U01", "操作时间": "2026/10/3 10:00"},
            STEP, {**STEP, "操作类型": "飞走"}]
    tally, seen = ImportTally(), set[str]()
    for _, items in adapter.parse_rows(io.BytesIO(flow_bytes(rows)), "flow.csv"):
        tally.add(items, seen)
    assert (tally.read, tally.produced, tally.rejected, tally.duplicates, tally.events) == (4, 2, 1, 1, 2)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=600))
def test_arbitrary_bytes_never_raise(data):
    rows = list(HotlineFlowAdapter().parse_rows(io.BytesIO(flow_bytes([]) + data), "fuzz"))
    assert all(len(items) == 1 for _, items in rows)


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.sampled_from(COLUMNS), st.text(max_size=25)))
def test_mutated_rows_are_one_event_or_one_reject(mutation):
    rows = list(HotlineFlowAdapter().parse_rows(io.BytesIO(flow_bytes([{**STEP, **mutation}])), "fuzz"))
    assert len(rows) == 1
    (item,) = rows[0][1]
    assert isinstance(item, Event | Reject)
    if isinstance(item, Reject):
        assert item.reason and "13900139000" not in item.raw


def local_time_text(at: datetime, slashes: bool) -> str:
    if slashes:
        return f"{at.year}/{at.month}/{at.day} {at.hour}:{at.minute:02d}"
    return at.strftime("%Y-%m-%d %H:%M:%S")


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(["派单", "签收", "退单", "改派", "挂起", "解挂", "延期", "办结", "回访", "重办",
                        "督办", "作废"]),
       st.datetimes(datetime(1980, 1, 1), datetime(2099, 12, 31)), st.booleans(),
       st.sampled_from(["", "满意", "基本满意", "不满意"]), st.integers(1, 365),
       st.text(max_size=600), st.dictionaries(st.sampled_from(COLUMNS), st.text(max_size=25)))
def test_wire_form_is_what_the_model_would_write(step, at, slashes, verdict, days, said, mutation):
    row = {**STEP, "操作类型": step, "操作时间": local_time_text(at, slashes), "满意度": verdict,
           "延期天数": str(days), "说明": said}
    for variant in (row, {**row, **mutation}):
        for _, items in HotlineFlowAdapter().encode_rows(io.BytesIO(flow_bytes([variant])), "wire"):
            for item in items:
                if isinstance(item, Reject):
                    continue
                model = Event.from_json(item.payload)
                assert model.to_json() == item.payload
                assert (item.event_id, item.case_id, item.source, item.occurred_at) == (
                    model.event_id, model.case_id, model.source, model.occurred_at)
