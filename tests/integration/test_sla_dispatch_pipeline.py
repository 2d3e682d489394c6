"""DESIGN §6a through the whole embedded pipeline, checked in ClickHouse to the second: a 12345
order export with its circulation log (a return and re-dispatch; a suspension on the hours
clock) and grid lines (a suspension starting on a National Day holiday, one that ends by itself
at max_suspension, a milestone met while suspended). Every figure is worked out by hand in
tests/unit/test_sla_dispatch_suspension.py (same cases, same instants)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from civicflow.pipeline import replay
from civicflow.settings import Settings
from producers.hotline12345 import COLUMNS as ORDER_COLUMNS
from producers.hotline_flow import COLUMNS as FLOW_COLUMNS
from tests.conftest import cn
from tests.integration.test_dispatch_feeds import gbk_csv, step

pytestmark = pytest.mark.integration
AS_OF = cn(2026, 11, 10, 12, 0)


def order(number: str, **times: str) -> dict[str, str]:
    row = {"工单编号": number, "来电号码": "13900139000", "诉求人": "王伟", "诉求类型": "噪音扰民",
           "诉求内容": "夜间施工", "区县编码": "370102", "街道编码": "370102001", "重办次数": "0",
           "工单状态": "办结", "承办单位": "某局"}
    return {**row, **times}


def grid(event_id: str, order_id: str, kind: str, at: str, **extra: str) -> str:
    line = {"事件ID": event_id, "工单编号": order_id, "事件类型": kind, "发生时间": at,
            "网格编码": "370102001001003", "事项大类": "环境卫生", "事项小类": "垃圾堆放",
            "紧急程度": "一般", **extra}
    return json.dumps(line, ensure_ascii=False)


def utc(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(tzinfo=None)


EXPECTED_ALERTS = {
    "hotline:12345:GDA": {
        "respond:0:yellow": (cn(2026, 10, 13, 19, 12), "U1"),
        "respond:0:red": (cn(2026, 10, 14), None),
        "respond:0:escalation1": (cn(2026, 10, 14, 12, 0), None),
        "respond:0:escalation2": (cn(2026, 10, 15), None),
        "respond:0:escalation3": (cn(2026, 10, 16), None),
        "respond:1:yellow": (cn(2026, 10, 19, 19, 12), "U2"),
        "respond:1:red": (cn(2026, 10, 20), "U2"),
        "resolve:0:yellow": (cn(2026, 10, 17), "U2"),
        "resolve:0:red": (cn(2026, 10, 20), "U2"),
        "feedback:0:yellow": (cn(2026, 10, 20, 14, 24), "U2"),
    },
    "hotline:12345:GDC": {"resolve:0:yellow": (cn(2026, 10, 18, 7, 12), "U3")},
    "grid:jn-grid:D": {
        "resolve:0:yellow": (cn(2026, 10, 12, 23, 24), "U4"),
        "feedback:0:yellow": (cn(2026, 10, 13, 18, 36), "U4"),
        "feedback:0:red": (cn(2026, 10, 14, 9, 0), "U4"),
    },
    "grid:jn-grid:E": {  # feedback never came: 2.4 / 3 / 4.5 wd + the 15.625 wd paused
        "resolve:0:yellow": (cn(2026, 11, 5, 5, 24), "U5"),
        "feedback:0:yellow": (cn(2026, 11, 6, 0, 36), "U5"),
        "feedback:0:red": (cn(2026, 11, 6, 15, 0), "U5"),
        "feedback:0:escalation1": (cn(2026, 11, 10, 3, 0), "U5"),
    },
    "grid:jn-grid:F": {
        "feedback:0:yellow": (cn(2026, 10, 19, 9, 36), "U6"),
        "feedback:0:red": (cn(2026, 10, 20), "U6"),
    },
}


def test_returns_redispatch_and_suspensions_land_as_worked_out_by_hand(chdb_var, tmp_path: Path):
    orders = [
        # the row shows the latest dispatch (the 改派) and its unit
        order("GDA", 来电时间="2026-10-12 09:00:00", 紧急程度="一般", 承办单位编码="U2",
              派单时间="2026-10-16 15:00:00", 签收时间="2026/10/20 9:00", 办结时间="2026-10-21 10:00:00",
              回访时间="2026-10-21 15:00:00", 满意度="满意"),
        order("GDC", 来电时间="2026-10-17 08:00:00", 紧急程度="紧急", 承办单位编码="U3",
              派单时间="2026-10-17 08:10:00", 签收时间="2026-10-17 08:40:00", 办结时间="2026-10-18 11:00:00",
              回访时间="2026-10-20 10:00:00", 满意度="满意"),
    ]
    log = [
        step("GDA", "2026-10-12 09:30:00", "派单", "C12345", "U1"),
        step("GDA", "2026-10-13 20:00:00", "退单", "U1", said="不属本单位职责"),
        step("GDA", "2026-10-16 15:00:00", "改派", "C12345", "U2"),
        step("GDA", "2026-10-20 09:00:00", "签收", "U2"),  # also the row's 签收时间: one step
        step("GDC", "2026-10-17 08:10:00", "派单", "C12345", "U3"),
        step("GDC", "2026-10-17 10:00:00", "挂起", "U3", said="等待申请人补充材料"),
        step("GDC", "2026-10-17 14:00:00", "解挂", "U3"),
    ]
    lines = [
        grid("D1", "D", "上报", "2026-09-29 10:00:00", 承办单位编码="U4"),
        grid("D2", "D", "受理", "2026-09-30 11:00:00"),
        grid("D3", "D", "挂起", "2026-10-02 09:00:00", 说明="节日期间无法入户"),
        grid("D4", "D", "解挂", "2026-10-12 09:00:00"),
        grid("D5", "D", "办结", "2026-10-13 08:00:00"),
        grid("D6", "D", "回访", "2026-10-14 10:00:00", 满意度="满意"),
        grid("E1", "E", "上报", "2026-10-12 09:00:00", 承办单位编码="U5"),
        grid("E2", "E", "受理", "2026-10-12 10:00:00"),
        grid("E3", "E", "挂起", "2026-10-13 09:00:00"),
        grid("E4", "E", "办结", "2026-11-05 10:00:00"),
        grid("E5", "E", "解挂", "2026-11-10 09:00:00"),  # after it ended by itself: changes nothing
        grid("F1", "F", "上报", "2026-10-12 09:00:00", 承办单位编码="U6"),
        grid("F2", "F", "受理", "2026-10-12 10:00:00"),
        grid("F3", "F", "挂起", "2026-10-13 09:00:00"),
        grid("F4", "F", "办结", "2026-10-14 10:00:00"),
        grid("F5", "F", "解挂", "2026-10-15 09:00:00"),
        grid("F6", "F", "回访", "2026-10-20 08:00:00"),
    ]
    (tmp_path / "orders.csv").write_bytes(gbk_csv(ORDER_COLUMNS, orders))
    (tmp_path / "flow.csv").write_bytes(gbk_csv(FLOW_COLUMNS, log))
    (tmp_path / "grid.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    db = "it_sla_6a"
    _, sink = replay(Settings(var_dir=chdb_var, partitions=2, database=db),
                     [("12345", tmp_path / "orders.csv"), ("12345-flow", tmp_path / "flow.csv"),
                      ("jn-grid", tmp_path / "grid.jsonl")], AS_OF, lambda _m: None)
    client = sink.client
    rows = client.query(f"SELECT case_id, alert_id, fires_at, unit FROM {db}.alerts FINAL "
                        "WHERE NOT retracted ORDER BY alert_id").result_rows
    got: dict[str, dict] = {}
    for case_id, aid, fires_at, unit in rows:
        got.setdefault(case_id, {})[aid.removeprefix(case_id + ":")] = (fires_at, unit)
    expected = {case: {k: (utc(at), unit) for k, (at, unit) in alerts.items()}
                for case, alerts in EXPECTED_ALERTS.items()}
    assert got == expected
    # every alert landed once as a fire (raw rows, no FINAL)
    assert client.query(f"SELECT count(), uniqExact(alert_id) FROM {db}.alerts").result_rows == [
        (sum(len(a) for a in expected.values()),) * 2]
    ends = dict((r[0], r[1]) for r in client.query(
        f"SELECT alert_id, (ended_at, end_reason) FROM {db}.alert_ends FINAL").result_rows)
    assert ends["hotline:12345:GDA:respond:0:escalation3"] == (utc(cn(2026, 10, 16, 15, 0)), "restarted")
    assert ends["hotline:12345:GDA:respond:1:red"] == (utc(cn(2026, 10, 20, 9, 0)), "met")
    assert ends["grid:jn-grid:D:feedback:0:red"] == (utc(cn(2026, 10, 14, 10, 0)), "met")
    assert "grid:jn-grid:E:feedback:0:escalation1" not in ends  # still active as of the clock
    cases = {r[0]: r[1:] for r in client.query(
        f"SELECT case_id, holder_unit, returned_count, reassigned_count, suspended, paused_seconds, "
        f"resolve_due FROM {db}.cases FINAL").result_rows}
    assert cases["hotline:12345:GDA"] == ("U2", 1, 1, False, 0, utc(cn(2026, 10, 20)))
    assert cases["hotline:12345:GDC"] == ("U3", 0, 0, False, 4 * 3600, utc(cn(2026, 10, 18, 12, 0)))
    assert cases["grid:jn-grid:D"] == ("U4", 0, 0, False, 81 * 3600, utc(cn(2026, 10, 13, 9, 0)))
    assert cases["grid:jn-grid:F"][4:] == (48 * 3600, utc(cn(2026, 10, 17)))
    # E: 15 h of Tue 10-13 and 15 working days, then it ended by itself
    assert cases["grid:jn-grid:E"][3:] == (False, (15 + 15 * 24) * 3600, utc(cn(2026, 11, 5, 15, 0)))
