"""Event times outside sane bounds are refused at every adapter: before 2000-01-01 (Asia/Shanghai)
or later than the import's clock + 10 minutes."""

from __future__ import annotations

import io
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import orjson
import pytest

from producers.base import Reject
from producers.grid import GridAdapter
from producers.hotline12345 import Hotline12345Adapter
from producers.hotline_flow import HotlineFlowAdapter
from producers.ingest import feed_rows
from producers.nyc311 import Nyc311Adapter
from producers.wuye import WuyeAdapter
from schemas import Event

SHANGHAI = ZoneInfo("Asia/Shanghai")
NEW_YORK = ZoneInfo("America/New_York")
NOW = datetime(2026, 10, 20, 8, 0, tzinfo=SHANGHAI)


def record(format_name: str, at: datetime) -> tuple[object, bytes]:
    """One record of the format whose only event time is `at`."""
    local = at.astimezone(SHANGHAI).strftime("%Y-%m-%d %H:%M:%S")
    if format_name == "jn-grid":
        return GridAdapter(), orjson.dumps({"事件ID": "E1", "工单编号": "W1", "事件类型": "上报",
                                            "发生时间": local, "网格编码": "370102001001003"})
    if format_name == "12345":
        return Hotline12345Adapter(b"k"), f"工单编号,来电时间\nGD1,{local}\n".encode("gbk")
    if format_name == "12345-flow":
        return HotlineFlowAdapter(), f"工单编号,操作时间,操作类型\nGD1,{local},办结\n".encode("gbk")
    if format_name == "wuye":
        return WuyeAdapter(), orjson.dumps({"order_id": "WY1", "community_code": "370102001002",
                                            "event": "报修", "time": at.isoformat(),
                                            "company_code": "C1"})
    new_york = at.astimezone(NEW_YORK).strftime("%m/%d/%Y %I:%M:%S %p")
    return Nyc311Adapter(), (
        "Unique Key,Created Date,Closed Date,Agency,Complaint Type,Status,Due Date,Borough\n"
        f"1,{new_york},,DOT,Pothole,Open,,QUEENS\n").encode()


def outcome(format_name: str, at: datetime) -> Event | Reject:
    adapter, data = record(format_name, at)
    (item,) = list(adapter.parse(io.BytesIO(data), "f", now=NOW))  # type: ignore[attr-defined]
    return item


FORMATS = ["jn-grid", "12345", "12345-flow", "wuye", "nyc311"]
EARLIEST = datetime(2000, 1, 1, tzinfo=SHANGHAI)


@pytest.mark.parametrize("format_name", FORMATS)
def test_the_bounds_hold_to_the_second(format_name):
    assert isinstance(outcome(format_name, EARLIEST), Event)
    too_early = outcome(format_name, EARLIEST - timedelta(seconds=1))
    assert isinstance(too_early, Reject) and "is before 2000-01-01" in too_early.reason
    assert isinstance(outcome(format_name, NOW + timedelta(minutes=10)), Event)
    too_late = outcome(format_name, NOW + timedelta(minutes=10, seconds=1))
    assert isinstance(too_late, Reject) and "in the future" in too_late.reason


@pytest.mark.parametrize("format_name", FORMATS)
def test_a_1900_date_is_refused(format_name):
    reject = outcome(format_name, datetime(1900, 1, 1, 9, tzinfo=SHANGHAI))
    assert isinstance(reject, Reject) and "before 2000-01-01" in reject.reason


def test_every_time_column_of_a_12345_row_is_bounded():
    adapter = Hotline12345Adapter(b"k")
    data = "工单编号,来电时间,派单时间\nGD1,2026-10-03 09:00:00,2199-10-03 09:00:00\n".encode()
    (reject,) = list(adapter.parse(io.BytesIO(data), "f", now=NOW))
    assert isinstance(reject, Reject)
    assert reject.reason.startswith("派单时间 2199-10-03T09:00:00+08:00 is in the future")


def test_imports_check_against_the_wall_clock(tmp_path: Path):
    path = tmp_path / "g.jsonl"
    base = {"事件ID": "E1", "工单编号": "W1", "事件类型": "上报", "网格编码": "370102001001003"}
    path.write_bytes(b"\n".join([orjson.dumps({**base, "发生时间": "2026-10-03 09:00:00"}),
                                 orjson.dumps({**base, "事件ID": "E2", "发生时间": "2099-01-01 00:00:00"})]))
    kinds = [type(items[0]).__name__ for _, _, items in feed_rows([("jn-grid", path)], b"k")]
    assert kinds == ["Event", "Reject"]
