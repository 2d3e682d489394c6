from __future__ import annotations

import io
import json

import orjson
import pytest

from producers.base import Reject
from producers.grid import GridAdapter
from producers.hotline12345 import COLUMNS, Hotline12345Adapter
from producers.hotline_flow import HotlineFlowAdapter
from producers.nyc311 import Nyc311Adapter
from producers.privacy import (
    MASK,
    caller_hash,
    identifier,
    mask_text,
    redact_record,
    safe_category,
)
from producers.wuye import WuyeAdapter
from schemas import Event, InvalidRecord
from schemas.enums import Source

MOBILE, LANDLINE, ID_NUMBER, NAME = "13912345678", "0531-86123456", "37010219850612341X", "王秀英"
PLANTED = (MOBILE, LANDLINE, ID_NUMBER, NAME)


def absent(text: str) -> list[str]:
    """The planted values found in `text` (none, for a test to pass)."""
    return [value for value in PLANTED if value in text]


def test_phone_and_id_numbers_in_free_text_are_masked():
    text = "电话13800138000，另一个+86 139-0013-9000，座机0531-86123456，身份证37010219900101123X，楼号12栋"
    masked = mask_text(text)
    assert masked == f"电话{MASK}，另一个{MASK}，座机{MASK}，身份证{MASK}，楼号12栋"


def test_caller_hash_is_keyed_and_normalized():
    a = caller_hash("138 0013 8000", b"k1")
    assert a == caller_hash("+86-13800138000", b"k1")
    assert a != caller_hash("13800138000", b"k2")
    assert a is not None and "13800138000" not in a and len(a) == 64
    assert caller_hash("", b"k1") is None and caller_hash(None, b"k1") is None


def test_a_json_record_loses_its_personal_fields_and_numbers():
    record = {"事件ID": "E1", "诉求人": NAME, "联系电话": MOBILE, "Phone": LANDLINE,
              "说明": f"住户{ID_NUMBER}反映", "n": 13912345678, "list": [MOBILE, 3]}
    assert json.loads(redact_record(record)) == {
        "事件ID": "E1", "说明": f"住户{MASK}反映", "n": MASK, "list": [MASK, 3]}
    assert json.loads(redact_record(record, keep={"事件ID", "诉求人"})) == {"事件ID": "E1"}


def test_a_csv_row_loses_its_name_and_phone_columns_even_when_a_comma_shifted_them():
    columns = ["工单编号", "来电号码", "诉求人", "诉求内容", "紧急程度"]
    row = ["GD1", MOBILE, NAME, f"回电{LANDLINE}", "一般"]
    assert json.loads(redact_record(row, columns)) == {
        "工单编号": "GD1", "诉求内容": f"回电{MASK}", "紧急程度": "一般"}
    # "139,12345678" unquoted: every cell after it moves one to the right
    shifted = ["GD1", "139", "12345678", NAME, "诉求", "一般"]
    kept = redact_record(shifted, columns)
    assert NAME not in kept and "12345678" not in kept and "GD1" in kept
    # one cell short: the name moved one to the left, into the phone's place
    short = ["GD1", NAME, "诉求", "一般"]
    assert json.loads(redact_record(short, columns)) == {"诉求内容": "一般"}


def test_text_that_did_not_parse_is_masked_and_loses_values_after_name_keys():
    cut_json = f'{{"事件ID": "E1", "诉求人": "{NAME}", "说明": "电话{MOBILE}", "发生时'
    assert redact_record(cut_json) == f'{{"事件ID": "E1", "诉求人": "", "说明": "电话{MASK}", "发生时'
    headerless = ",".join(["GD1", "2026-10-03 09:00:00", MOBILE, NAME, "噪音", ID_NUMBER] + [""] * 12)
    assert absent(redact_record(headerless, COLUMNS)) == []
    assert "GD1" in redact_record(headerless, COLUMNS)


def test_unknown_categories_are_masked_and_cut_to_40_characters():
    assert safe_category("H03") == "H03"
    assert safe_category(f"other:噪音/{MOBILE}") == f"other:噪音/{MASK}"
    long = safe_category("other:" + "很" * 100)
    assert long == "other:" + "很" * 40
    # a number cut at the limit does not keep its first digits
    assert safe_category("other:" + "x" * 35 + "1391234") == "other:" + "x" * 35


def test_ids_holding_a_phone_or_id_number_are_refused():
    assert identifier("工单编号", "GD20261003000123") == "GD20261003000123"
    # numbered orders that only look like numbers: no birth date in them, no dash after a 0
    for order in ("202610030000000123", "0012345678901", "053112345678"):
        assert identifier("工单编号", order) == order
    for value in (MOBILE, f"GD{LANDLINE}", ID_NUMBER):
        with pytest.raises(InvalidRecord, match="工单编号 holds a phone or ID number"):
            identifier("工单编号", value)


def test_reject_reasons_and_raw_text_are_masked_whatever_the_adapter_passed():
    reject = Reject("12345", Source.HOTLINE, "f", 1, f"紧急程度 '{MOBILE}' is unknown", f"x {ID_NUMBER}")
    assert absent(reject.to_json().decode()) == []
    assert reject.reason == f"紧急程度 '{MASK}' is unknown"


GRID = {"事件ID": "E1", "工单编号": "WG001", "事件类型": "上报", "发生时间": "2026-10-03 09:15:00",
        "网格编码": "370102001001003", "事项大类": "环境卫生", "事项小类": "垃圾堆放",
        "紧急程度": "紧急", "承办单位编码": "U1", "承办单位": "城管局"}
HOTLINE = {"工单编号": "GD001", "来电时间": "2026/10/3 9:07", "来电号码": MOBILE, "诉求人": NAME,
           "诉求类型": "噪音扰民", "诉求内容": "楼上装修很吵", "紧急程度": "紧急", "区县编码": "370102",
           "街道编码": "370102001", "承办单位编码": "U01", "承办单位": "城管局",
           "派单时间": "2026-10-03 09:30:00", "签收时间": "", "办结时间": "", "回访时间": "",
           "满意度": "", "重办次数": "0", "工单状态": "处理中"}
WUYE = {"order_id": "WY1", "community_code": "370102001002", "event": "报修",
        "time": "2026-10-03T09:15:00+08:00", "category": "电梯故障", "urgent": True,
        "company_code": "C001"}
FLOW = {"工单编号": "GD001", "操作时间": "2026/10/3 9:30", "操作类型": "派单", "操作单位编码": "C1",
        "操作单位": "市热线中心", "目标单位编码": "U01", "目标单位": "城管局", "延期天数": "",
        "满意度": "", "说明": ""}
NYC = {"Unique Key": "1", "Created Date": "05/01/2022 01:00:00 PM", "Closed Date": "",
       "Agency": "DOT", "Complaint Type": "Pothole", "Status": "Open", "Due Date": "",
       "Borough": "QUEENS"}


def csv_file(rows: list[dict[str, str]]) -> bytes:
    header = list(rows[0])
    lines = [",".join(header)] + [",".join(row[c] for c in header) for row in rows]
    return ("\n".join(lines) + "\n").encode()


def planted_variants(good: dict, fields: list[str]) -> list[dict]:
    """The good record with each field in turn holding each planted number (alone, and inside
    text), and the name in a field that names a person."""
    variants = []
    for field in fields:
        for value in (MOBILE, LANDLINE, ID_NUMBER):
            variants += [{**good, field: value}, {**good, field: f"见{value}说"}]
    return variants


@pytest.mark.parametrize("format_name", ["jn-grid", "12345", "12345-flow", "wuye", "nyc311"])
def test_no_planted_value_leaves_any_adapter(format_name):
    """Every field of every format holds each planted value in turn: whatever becomes an event
    or a dead letter holds none of them, and the good records still make events."""
    if format_name == "jn-grid":
        records = planted_variants(GRID, list(GRID)) + [{**GRID, "诉求人": NAME, "上报人": NAME}]
        cut_off = f'{{"诉求人": "{NAME}", "x'.encode()
        data = b"\n".join(orjson.dumps(r) for r in records) + b"\n" + cut_off
        adapter: object = GridAdapter()
    elif format_name == "12345":
        records = planted_variants(HOTLINE, COLUMNS)
        # an unquoted comma in 来电号码 moves the name and every cell after it one column right
        shifted = {**HOTLINE, "工单编号": "GD9", "来电号码": f"{MOBILE[:3]},{MOBILE[3:]}"}
        data = csv_file(records + [shifted])
        adapter = Hotline12345Adapter(b"k")
    elif format_name == "12345-flow":
        returned = {**FLOW, "操作类型": "退单", "说明": "不属于本单位职责"}
        records = planted_variants(FLOW, list(FLOW)) + planted_variants(returned, list(FLOW))
        data = csv_file(records)
        adapter = HotlineFlowAdapter()
    elif format_name == "wuye":
        records = planted_variants(WUYE, list(WUYE)) + [{**WUYE, "contact_name": NAME, "phone": MOBILE}]
        data = b"\n".join(orjson.dumps(r) for r in records) + b'\n{"order_id": "' + MOBILE.encode()
        adapter = WuyeAdapter()
    else:
        records = planted_variants(NYC, list(NYC))
        data = csv_file(records)
        adapter = Nyc311Adapter()
    items = list(adapter.parse(io.BytesIO(data), "f"))  # type: ignore[attr-defined]
    blob = "\n".join(i.to_json().decode() for i in items)
    assert absent(blob) == []
    assert len(items) >= len(records)
    assert any(isinstance(i, Event) for i in items) and any(isinstance(i, Reject) for i in items)
    if format_name == "12345":
        assert isinstance(items[-1], Reject) and "more cells" in items[-1].reason
