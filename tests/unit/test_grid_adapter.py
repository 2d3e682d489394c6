from __future__ import annotations

import io
import json
from datetime import datetime

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from producers.base import Reject
from producers.grid import GridAdapter
from schemas import Event
from tests.conftest import CN, cn

GOOD = {
    "事件ID": "E1", "工单编号": "WG001", "事件类型": "上报", "发生时间": "2026-10-03 09:15:00",
    "网格编码": "370102001001003", "事项大类": "环境卫生", "事项小类": "垃圾堆放",
    "紧急程度": "紧急", "承办单位编码": "U1", "承办单位": "城管局",
}


def parse_one(record: dict) -> Event | Reject:
    items = list(GridAdapter().parse(io.BytesIO(json.dumps(record, ensure_ascii=False).encode()), "f.jsonl"))
    assert len(items) == 1
    return items[0]


def test_a_good_line_becomes_the_canonical_event():
    event = parse_one(GOOD)
    assert isinstance(event, Event)
    assert event.case_id == "grid:jn-grid:WG001"
    assert event.type == "created" and event.urgency == "urgent"
    assert event.occurred_at == cn(2026, 10, 3, 9, 15)
    assert (event.district, event.street, event.community, event.grid) == (
        "370102", "370102001", "370102001001", "370102001001003")
    assert event.category == "G07.01" and event.unit == "U1"
    assert parse_one(GOOD).event_id == event.event_id  # re-import gives the same id
    assert parse_one({**GOOD, "事件ID": "E2"}).event_id != event.event_id


def test_event_type_mapping_follows_the_design():
    expected = {"上报": "created", "受理": "responded", "派单": "dispatched", "报到": "responded",
                "办结": "resolved", "反馈": "feedback", "回访": "feedback", "重办": "reopened",
                "结案": "closed", "作废": "cancelled", "督办": "supervised"}
    for native, kind in expected.items():
        assert parse_one({**GOOD, "事件类型": native}).type == kind
    extended = parse_one({**GOOD, "事件类型": "延期", "延期天数": 3})
    assert extended.type == "extended" and extended.extension_days == 3
    assert parse_one({**GOOD, "发生时间": "2026/10/3 9:07"}).occurred_at == cn(2026, 10, 3, 9, 7)
    assert parse_one({**GOOD, "事项小类": "外星人"}).category == "other:环境卫生/外星人"


def test_bad_lines_are_rejects_with_a_reason_and_where_they_were():
    cases = [
        ({**GOOD, "事件类型": "飞走"}, "事件类型"),
        ({**GOOD, "发生时间": "yesterday"}, "发生时间"),
        ({**GOOD, "网格编码": "3701020010010"}, "15 digits"),
        ({k: v for k, v in GOOD.items() if k != "工单编号"}, "工单编号"),
        ({**GOOD, "事件类型": "延期", "延期天数": "two"}, "延期天数"),
        ({**GOOD, "满意度": "还行"}, "满意度"),
    ]
    for record, reason in cases:
        reject = parse_one(record)
        assert isinstance(reject, Reject) and reason in reject.reason
        assert (reject.file, reject.line) == ("f.jsonl", 1)
        assert orjson.loads(reject.raw) == record
    data = b"\n".join([orjson.dumps(GOOD), b"{broken", "caf\xe9".encode("latin-1")])
    items = list(GridAdapter().parse(io.BytesIO(data), "f.jsonl"))
    assert [type(i).__name__ for i in items] == ["Event", "Reject", "Reject"]
    assert items[1].line == 2 and items[1].reason.startswith("json")
    assert items[2].line == 3 and items[2].reason.startswith("encoding")


def test_future_times_beyond_tolerance_are_rejected():
    now = cn(2026, 10, 3, 9, 0)
    items = list(GridAdapter().parse(io.BytesIO(orjson.dumps(GOOD)), "f", now=now))
    assert isinstance(items[0], Reject) and "future" in items[0].reason


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=400))
def test_arbitrary_bytes_never_raise_and_every_line_is_accounted(data):
    items = list(GridAdapter().parse(io.BytesIO(data), "fuzz"))
    # JSON Lines end at "\n" (a "\r" before it is whitespace)
    lines = [line for line in data.split(b"\n") if line.strip()]
    assert len(items) == len(lines)


# per field: values it accepts (so a mutation also makes other valid events), then junk
VALID = {"事件ID": ["E7", " E8 ", 17], "工单编号": ["WG9", 42], "事件类型": ["上报", "受理", "派单", "办结",
         "回访", "延期", "改派", "挂起", "退回", "结案"],
         "发生时间": ["2026-10-05 08:30:00", "2026/10/5 8:30"], "网格编码": ["370102002003004"],
         "事项大类": ["环境卫生", "城市管理"], "事项小类": ["垃圾堆放"], "紧急程度": ["紧急", "一般", "疑难"],
         "承办单位编码": ["U9", " U8 "], "承办单位": ["环卫所"], "满意度": ["满意", "基本满意", "不满意"],
         "延期天数": [3, "12", 365], "说明": ["需补材料"]}
# integers within int64: orjson reads a bigger JSON number as a float (its digits lost)
JUNK = st.one_of(st.none(), st.text(max_size=20), st.integers(-(2**63), 2**63 - 1), st.booleans(),
                 st.lists(st.integers(), max_size=2))
MUTATIONS = st.lists(st.sampled_from(sorted(VALID)), unique=True, max_size=4).flatmap(
    lambda keys: st.fixed_dictionaries({k: st.one_of(st.sampled_from(VALID[k]), JUNK) for k in keys}))


@settings(max_examples=400, deadline=None)
@given(MUTATIONS)
def test_mutated_records_are_an_event_with_their_values_or_a_reject_naming_the_field(mutation):
    """GOOD is a valid record: after changing some of its fields, a reject must blame one of the
    changed fields, and an event must carry the record's values (worked out here from DESIGN §5.1,
    not by the adapter)."""
    record = {**GOOD, **mutation}
    item = parse_one(record)
    if isinstance(item, Reject):
        # a changed 事件类型 may call for a field GOOD lacks: 延期 its days, 改派 its unit
        blamed = set(mutation) | {{"延期": "延期天数", "改派": "承办单位编码"}.get(
            str(mutation.get("事件类型", "")).strip(), "")}
        named = {key for key in blamed if key and key in item.reason}
        if "grid code" in item.reason:
            named.add("网格编码")
        assert named, f"reject {item.reason!r} names none of the changed fields {sorted(mutation)}"
        assert (item.file, item.line) == ("f.jsonl", 1)
        return

    def text(key: str) -> str | None:
        value = record.get(key)
        value = str(value).strip() if value is not None else None
        return value or None

    kinds = {"上报": "created", "受理": "responded", "派单": "dispatched", "报到": "responded",
             "办结": "resolved", "反馈": "feedback", "回访": "feedback", "重办": "reopened",
             "延期": "extended", "结案": "closed", "作废": "cancelled", "督办": "supervised",
             "退回": "returned", "改派": "reassigned", "挂起": "suspended", "解挂": "resumed"}
    urgencies = {"紧急": "urgent", "一般": "normal", "疑难": "complex"}
    satisfactions = {"满意": "satisfied", "基本满意": "basically_satisfied", "不满意": "unsatisfied"}
    assert item.case_id == f"grid:jn-grid:{text('工单编号')}"
    assert item.type == kinds[text("事件类型") or ""]
    assert item.urgency == urgencies[text("紧急程度") or "一般"]
    assert item.satisfaction == (satisfactions[text("满意度")] if text("满意度") else None)  # type: ignore[index]
    assert item.unit == text("承办单位编码")
    when = str(record["发生时间"]).strip().replace("/", "-")
    assert item.occurred_at.astimezone(CN).replace(tzinfo=None) == datetime.fromisoformat(
        "-".join(part.zfill(2) for part in when.split(" ")[0].split("-"))
        + " " + ":".join(part.zfill(2) for part in when.split(" ")[1].split(":")))
    area = text("网格编码")
    assert (item.district, item.grid) == ((area[:6], area) if area else (None, None))
    if item.type == "extended":
        assert item.extension_days == int(record["延期天数"])


def test_dispatch_and_suspension_steps_follow_the_design():
    # DESIGN §5.1: 退回 -> returned, 改派 -> reassigned, 挂起 -> suspended, 解挂 -> resumed; 说明 ->
    # reason on returned and suspended (§4), phone and ID numbers masked
    said = "居民电话13900139000，身份证370102199001011234，需补材料"
    masked = "居民电话＊＊＊，身份证＊＊＊，需补材料"
    expected = {"退回": ("returned", masked), "改派": ("reassigned", None),
                "挂起": ("suspended", masked), "解挂": ("resumed", None), "办结": ("resolved", None)}
    for native, (kind, reason) in expected.items():
        event = parse_one({**GOOD, "事件类型": native, "说明": said})
        assert isinstance(event, Event), native
        assert (event.type, event.reason, event.unit) == (kind, reason, "U1")
    event = parse_one({**GOOD, "事件类型": "挂起", "说明": "短" * 499 + "13900139000"})
    assert isinstance(event, Event) and event.reason == "短" * 499 + "＊"  # masked, then cut to 500
    assert parse_one({**GOOD, "事件类型": "退回"}).reason is None
    assert parse_one({**GOOD, "事件类型": "退回", "说明": " "}).reason is None


def test_a_re_dispatch_names_its_unit_and_rejects_keep_no_phone_number():
    reject = parse_one({**GOOD, "事件类型": "改派", "承办单位编码": "", "说明": "电话13900139000"})
    assert isinstance(reject, Reject) and reject.reason.startswith("改派 without 承办单位编码")
    assert "13900139000" not in reject.raw and "电话＊＊＊" in reject.raw
    reject = parse_one({**GOOD, "事件类型": "挂起", "发生时间": "明天", "说明": "电话13900139000"})
    assert isinstance(reject, Reject) and "13900139000" not in reject.raw
