from __future__ import annotations

import codecs
import csv
import io
from datetime import datetime

from hypothesis import given, settings
from hypothesis import strategies as st

from producers.base import ImportTally, Reject
from producers.hotline12345 import COLUMNS, TIME_COLUMNS, Hotline12345Adapter
from producers.simulator import hotline_csv, simulate_hotline
from schemas import Event
from schemas.event import make_event_id
from tests.conftest import cn

ROW = {
    "工单编号": "GD001", "来电时间": "2026/10/3 9:07", "来电号码": "13800138000", "诉求人": "王伟",
    "诉求类型": "噪音扰民", "诉求内容": "楼上装修很吵，回电13900139000，身份证370102199001011234",
    "紧急程度": "紧急", "区县编码": "370102", "街道编码": "370102001", "承办单位编码": "U01",
    "承办单位": "城管局", "派单时间": "2026-10-03 09:30:00", "签收时间": "2026/10/3 10:00",
    "办结时间": "", "回访时间": "", "满意度": "", "重办次数": "0", "工单状态": "处理中",
}


def csv_bytes(rows: list[dict[str, str]], encoding: str = "utf-8") -> bytes:
    buffer = io.StringIO(newline="")
    writer = csv.DictWriter(buffer, fieldnames=COLUMNS)
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue().encode(encoding)


def events_of(data: bytes) -> list[Event]:
    return [e for e in Hotline12345Adapter(b"k").parse(io.BytesIO(data), "h.csv") if isinstance(e, Event)]


def test_a_snapshot_row_becomes_one_event_per_filled_time():
    events = events_of(csv_bytes([ROW]))
    assert [(e.type, e.occurred_at) for e in events] == [
        ("created", cn(2026, 10, 3, 9, 7)), ("dispatched", cn(2026, 10, 3, 9, 30)),
        ("responded", cn(2026, 10, 3, 10, 0))]
    created = events[0]
    assert created.case_id == "hotline:12345:GD001" and created.urgency == "urgent"
    assert (created.district, created.street, created.unit, created.category) == (
        "370102", "370102001", "U01", "H03")
    assert created.caller_hash and len(created.caller_hash) == 64


def test_gbk_utf8_and_bom_read_the_same():
    plain = events_of(csv_bytes([ROW]))
    assert events_of(csv_bytes([ROW], "gbk")) == plain
    assert events_of(codecs.BOM_UTF8 + csv_bytes([ROW])) == plain


def test_later_snapshot_adds_only_the_new_events():
    seen: set[str] = set()
    tally = ImportTally()
    first = tally.add(events_of(csv_bytes([ROW])), seen)
    later = {**ROW, "办结时间": "2026-10-03 15:00:00", "回访时间": "2026/10/4 9:00", "满意度": "满意"}
    second = tally.add(events_of(csv_bytes([later])), seen)
    assert [e.type for e in first] == ["created", "dispatched", "responded"]
    assert [(e.type, e.satisfaction) for e in second] == [("resolved", None), ("feedback", "satisfied")]
    again = tally.add(events_of(csv_bytes([later])), seen)
    assert again == [] and (tally.read, tally.produced, tally.duplicates, tally.events) == (3, 2, 1, 5)


def test_cancelled_order_is_cancelled_at_its_latest_time():
    events = events_of(csv_bytes([{**ROW, "工单状态": "作废"}]))
    assert (events[-1].type, events[-1].occurred_at) == ("cancelled", cn(2026, 10, 3, 10, 0))


def test_reopen_count_is_kept_without_an_event():
    events = events_of(csv_bytes([{**ROW, "重办次数": "2"}]))
    assert events[0].reopen_count == 2 and "reopened" not in {e.type for e in events}


def test_personal_data_never_leaves_the_adapter():
    bad = {**ROW, "来电时间": "2026/13/3 9:07"}
    items = list(Hotline12345Adapter(b"k").parse(io.BytesIO(csv_bytes([ROW, bad])), "h.csv"))
    blob = "".join(i.to_json().decode() for i in items)
    for secret in ("13800138000", "王伟", "13900139000", "370102199001011234"):
        assert secret not in blob
    reject = items[-1]
    assert isinstance(reject, Reject) and reject.line == 3 and "来电时间" in reject.reason


def test_rejects_name_the_problem():
    cases = [({**ROW, "工单编号": ""}, "工单编号"), ({**ROW, "来电时间": ""}, "来电时间"),
             ({**ROW, "紧急程度": "很急"}, "紧急程度"), ({**ROW, "满意度": "还行"}, "满意度"),
             ({**ROW, "街道编码": "37"}, "area code"), ({**ROW, "重办次数": "x"}, "重办次数")]
    for row, needle in cases:
        (item,) = list(Hotline12345Adapter(b"k").parse(io.BytesIO(csv_bytes([row])), "h.csv"))
        assert isinstance(item, Reject) and needle in item.reason
    (header,) = list(Hotline12345Adapter(b"k").parse(io.BytesIO(b"a,b\n1,2\n"), "h.csv"))
    assert isinstance(header, Reject) and "header" in header.reason


def test_simulated_export_round_trips():
    rows = simulate_hotline(days=3, cases_per_day=20, districts=2)
    tally = ImportTally()
    seen: set[str] = set()
    for _, items in Hotline12345Adapter(b"k").parse_rows(io.BytesIO(hotline_csv(rows, "gbk")), "h.csv"):
        tally.add(items, seen)
    assert tally.read == len(rows) and tally.balanced
    assert tally.duplicates == 1 and tally.rejected == 1  # the simulator's two faults


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=600))
def test_arbitrary_bytes_never_raise(data):
    rows = list(Hotline12345Adapter(b"k").parse_rows(io.BytesIO(csv_bytes([]) + data), "fuzz"))
    assert all(items for _, items in rows)


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.sampled_from(COLUMNS), st.text(max_size=25)))
def test_mutated_rows_are_events_or_one_reject(mutation):
    rows = list(Hotline12345Adapter(b"k").parse_rows(io.BytesIO(csv_bytes([{**ROW, **mutation}])), "fuzz"))
    assert len(rows) == 1
    items = rows[0][1]
    assert all(isinstance(i, Event) for i in items) or (len(items) == 1 and isinstance(items[0], Reject))


def wire_form_matches_the_model(data: bytes) -> int:
    """Every event the fast path encodes is byte for byte the model's serialization of itself,
    and its routing fields are the model's. Returns how many events were checked."""
    checked = 0
    for _, items in Hotline12345Adapter(b"k").encode_rows(io.BytesIO(data), "wire"):
        for item in items:
            if isinstance(item, Reject):
                continue
            model = Event.from_json(item.payload)
            assert model.to_json() == item.payload
            assert (item.event_id, item.case_id, item.source, item.occurred_at) == (
                model.event_id, model.case_id, model.source, model.occurred_at)
            order = model.case_id.removeprefix("hotline:12345:")
            assert model.event_id == make_event_id("12345", order, model.type)
            checked += 1
    return checked


def local_time_text(at: datetime, slashes: bool) -> str:
    if slashes:
        return f"{at.year}/{at.month}/{at.day} {at.hour}:{at.minute:02d}"
    return at.strftime("%Y-%m-%d %H:%M:%S")


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.sampled_from(COLUMNS), st.text(max_size=25)),
       st.lists(st.tuples(st.datetimes(datetime(2000, 1, 1), datetime(2099, 12, 31)), st.booleans()),
                min_size=5, max_size=5),
       st.sampled_from(["", "满意", "基本满意", "不满意"]), st.sampled_from(["处理中", "作废"]))
def test_wire_form_is_what_the_model_would_write(mutation, times, satisfaction, status):
    row = {**ROW, "满意度": satisfaction, "工单状态": status,
           **{column: local_time_text(at, slashes)
              for (column, _), (at, slashes) in zip(TIME_COLUMNS, times, strict=True)}}
    # every filled time column is one event (DESIGN §5.2), and 作废 adds the cancellation
    assert wire_form_matches_the_model(csv_bytes([row])) == len(TIME_COLUMNS) + (status == "作废")
    wire_form_matches_the_model(csv_bytes([{**row, **mutation}]))


def test_wire_form_of_a_simulated_export_is_what_the_model_would_write():
    rows = simulate_hotline(days=3, cases_per_day=40, districts=2)
    assert wire_form_matches_the_model(hotline_csv(rows, "gbk")) > 3 * len(rows)


def twelve_rows() -> list[dict[str, str]]:
    return [{**ROW, "工单编号": f"GD{n:03d}"} for n in range(1, 13)]


def test_a_stray_byte_costs_its_row_only_in_a_gbk_export():
    data = csv_bytes(twelve_rows(), "gbk")
    lines = data.split(b"\n")
    # line 8 is row 7: a byte that is neither GBK nor UTF-8 inside its 诉求内容
    lines[7] = lines[7].replace("楼上".encode("gbk"), b"\x80\x80", 1)
    rows = list(Hotline12345Adapter(b"k").parse_rows(io.BytesIO(b"\n".join(lines)), "h.csv"))
    events = [(line, i) for line, items in rows for i in items if isinstance(i, Event)]
    rejects = [i for _, items in rows for i in items if isinstance(i, Reject)]
    assert len(rows) == 12 and len(rejects) == 1
    assert {e.case_id for _, e in events} == {f"hotline:12345:GD{n:03d}" for n in range(1, 13)} - {
        "hotline:12345:GD007"}
    assert len(events) == 11 * 3
    reject = rejects[0]
    assert reject.line == 8
    column = COLUMNS.index("诉求内容") + 1
    assert reject.reason == (
        f"encoding: line 8: bytes b'\\x80\\x80\\xd7\\xb0' at column {column} (诉求内容) are neither "
        "UTF-8 nor GBK: re-export the file as UTF-8 or GBK")


def test_a_stray_byte_costs_its_row_only_in_a_utf8_export_with_bom():
    data = codecs.BOM_UTF8 + csv_bytes(twelve_rows())
    lines = data.split(b"\n")
    lines[3] = lines[3].replace(b"GD003", b"GD\xff03")
    rows = list(Hotline12345Adapter(b"k").parse_rows(io.BytesIO(b"\n".join(lines)), "h.csv"))
    rejected = [(line, items[0].reason) for line, items in rows if isinstance(items[0], Reject)]
    assert len(rows) == 12
    assert [line for line, _ in rejected] == [4]
    assert "at column 1 (工单编号)" in rejected[0][1] and "bytes b'\\xff03,'" in rejected[0][1]
    assert events_of(b"\n".join(lines[:3] + lines[4:])) == [
        e for e in events_of(data) if e.case_id != "hotline:12345:GD003"]
