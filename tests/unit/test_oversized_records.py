"""A record over the 64 KiB limit (a 50 MB line) becomes a truncated dead letter: its first
4 KiB, masked, with `truncated` and its size; the records around it are read as usual."""

from __future__ import annotations

import io

import orjson
import pytest

from producers.base import DEAD_LETTER_RAW_BYTES, Reject
from producers.grid import GridAdapter
from producers.hotline12345 import Hotline12345Adapter
from producers.nyc311 import Nyc311Adapter
from producers.privacy import MASK
from producers.wuye import WuyeAdapter
from schemas import Event
from schemas.enums import Source

PHONE = "13912345678"
GRID = {"事件ID": "E1", "工单编号": "W1", "事件类型": "上报", "发生时间": "2026-10-03 09:00:00",
        "网格编码": "370102001001003"}
WUYE = {"order_id": "WY1", "community_code": "370102001002", "event": "报修",
        "time": "2026-10-03T09:15:00+08:00", "company_code": "C1"}
HOTLINE_HEADER = "工单编号,来电时间,诉求内容\n"
NYC_HEADER = "Unique Key,Created Date,Closed Date,Agency,Complaint Type,Status,Due Date,Borough\n"


def huge_text(size: int) -> str:
    """`size` bytes of text: a phone number near the start, and one across the 4 KiB mark."""
    head = f"回电{PHONE}" + "x" * (DEAD_LETTER_RAW_BYTES - 20 - len(f"回电{PHONE}".encode()))
    head += PHONE  # its first digits fall before the 4 KiB cut, the rest after it
    return head + "y" * (size - len(head.encode()))


def three_records(format_name: str, size: int) -> tuple[object, bytes, int]:
    """A file of a good record, one of `size` bytes, and a good record; and that record's line."""
    filler = huge_text(size)
    if format_name == "jn-grid":
        lines = [orjson.dumps(GRID), orjson.dumps({**GRID, "事件ID": "E2", "说明": filler}),
                 orjson.dumps({**GRID, "事件ID": "E3"})]
        return GridAdapter(), b"\n".join(lines) + b"\n", 2
    if format_name == "wuye":
        lines = [orjson.dumps(WUYE), orjson.dumps({**WUYE, "category": filler}),
                 orjson.dumps({**WUYE, "order_id": "WY3"})]
        return WuyeAdapter(), b"\n".join(lines) + b"\n", 2
    if format_name == "12345":
        text = (HOTLINE_HEADER + "GD1,2026-10-03 09:00:00,a\n" + f"GD2,2026-10-03 09:00:00,{filler}\n"
                + "GD3,2026-10-03 09:00:00,c\n")
        return Hotline12345Adapter(b"k"), text.encode("gbk"), 3
    text = (NYC_HEADER + "1,05/01/2022 01:00:00 PM,,DOT,Pothole,Open,,QUEENS\n"
            + f"2,05/01/2022 01:00:00 PM,,DOT,{filler},Open,,QUEENS\n"
            + "3,05/01/2022 01:00:00 PM,,DOT,Pothole,Open,,QUEENS\n")
    return Nyc311Adapter(), text.encode(), 3


@pytest.mark.parametrize(("format_name", "size"), [
    ("jn-grid", 50 * 1024 * 1024), ("wuye", 300_000), ("12345", 300_000), ("nyc311", 70_000)])
def test_an_oversized_record_is_a_truncated_masked_dead_letter(format_name, size):
    adapter, data, line = three_records(format_name, size)
    record_size = len(data.split(b"\n")[line - 1])
    rows = list(adapter.parse_rows(io.BytesIO(data), "f"))  # type: ignore[attr-defined]
    assert [(n, type(items[0]).__name__) for n, items in rows] == [
        (line - 1, "Event"), (line, "Reject"), (line + 1, "Event")]
    reject = rows[1][1][0]
    assert reject.truncated and reject.size == record_size
    assert reject.reason.startswith("size:") and f"{record_size} bytes" in reject.reason
    assert len(reject.raw.encode()) <= DEAD_LETTER_RAW_BYTES
    assert MASK in reject.raw and PHONE not in reject.raw and PHONE[:5] not in reject.raw
    assert len(reject.to_json()) < 2 * DEAD_LETTER_RAW_BYTES  # fits any Kafka message


def test_records_under_the_limit_are_read_whole():
    adapter, data, _ = three_records("jn-grid", 60_000)
    items = list(adapter.parse(io.BytesIO(data), "f"))
    assert [type(i) for i in items] == [Event, Event, Event]


def test_an_open_quote_in_a_12345_export_costs_the_lines_up_to_the_limit_only():
    rows = "".join(f"GD{n},2026-10-03 09:00:00,ok\n" for n in range(3000))
    text = HOTLINE_HEADER + 'GDX,2026-10-03 09:00:00,"open quote\n' + rows
    results = list(Hotline12345Adapter(b"k").parse_rows(io.BytesIO(text.encode()), "f"))
    rejects = [items[0] for _, items in results if isinstance(items[0], Reject)]
    assert len(rejects) == 1 and rejects[0].truncated and rejects[0].reason.startswith("size:")
    last = int(rejects[0].reason.split("lines 2-")[1].split(")")[0])
    lines_cut = last - 2  # the ok rows of lines 3..last went with the open quote
    events = [i for _, items in results for i in items if isinstance(i, Event)]
    assert len(events) == 3000 - lines_cut
    assert lines_cut * len("GD1000,2026-10-03 09:00:00,ok\n") < 70 * 1024


def test_a_dead_letter_keeps_4_kib_of_whatever_it_is_given():
    reject = Reject("x", Source.GRID, "f", 1, "r" * 5000, "中" * 10_000)
    assert reject.truncated and reject.size == 30_000
    assert reject.raw == "中" * (DEAD_LETTER_RAW_BYTES // 3) and len(reject.reason) <= 1000
    small = Reject("x", Source.GRID, "f", 1, "r", "abc")
    assert (small.truncated, small.size, small.raw) == (False, 3, "abc")
