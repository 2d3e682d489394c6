"""A 12345 order export and its circulation log (GBK) replayed together through the whole
embedded stack: 退单率 and 派单准确率 land in ClickHouse as worked out by hand, a step seen
through both exports counts once, and the reasons land masked."""

from __future__ import annotations

import csv
import io
from datetime import date
from pathlib import Path

import pytest

from civicflow.pipeline import replay
from civicflow.settings import Settings
from producers.hotline12345 import COLUMNS as ORDER_COLUMNS
from producers.hotline_flow import COLUMNS as FLOW_COLUMNS

pytestmark = pytest.mark.integration
PHONE = "13900139000"


def gbk_csv(columns: list[str], rows: list[dict[str, str]]) -> bytes:
    buffer = io.StringIO(newline="")
    writer = csv.DictWriter(buffer, fieldnames=columns, restval="", lineterminator="\r\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue().encode("gbk")


def order(number: str, called: str, dispatched: str, unit: str, signed: str) -> dict[str, str]:
    return {"工单编号": number, "来电时间": called, "来电号码": PHONE, "诉求人": "王伟", "诉求类型": "噪音扰民",
            "诉求内容": f"夜间施工，电话{PHONE}", "紧急程度": "一般", "区县编码": "370102",
            "街道编码": "370102001", "承办单位编码": unit, "承办单位": "某局", "派单时间": dispatched,
            "签收时间": signed, "重办次数": "0", "工单状态": "处理中"}


def step(number: str, at: str, kind: str, operator: str = "", target: str = "",
         said: str = "") -> dict[str, str]:
    return {"工单编号": number, "操作时间": at, "操作类型": kind, "操作单位编码": operator,
            "目标单位编码": target, "说明": said}


def test_order_export_and_circulation_log_replay_into_the_dispatch_views(chdb_var, tmp_path: Path):
    orders = [
        # GD1: dispatched to U1 and signed for; both steps are in both exports
        order("GD1", "2026-10-12 09:00:00", "2026/10/12 9:10", "U1", "2026/10/12 9:40"),
        # GD2: U1 returns it, the centre re-dispatches to U2: the row shows the latest dispatch
        order("GD2", "2026-10-12 09:00:00", "2026-10-12 10:30:00", "U2", "2026-10-12 11:00:00"),
        # GD3: dispatched to U2, suspended while the resident brings papers, resumed next day
        order("GD3", "2026-10-12 09:20:00", "2026-10-12 09:30:00", "U2", "2026/10/12 9:50"),
    ]
    log = [
        step("GD1", "2026-10-12 09:10:00", "派单", "C12345", "U1"),
        step("GD1", "2026/10/12 9:40", "签收", "U1"),
        step("GD2", "2026-10-12 09:05:00", "派单", "C12345", "U1"),
        step("GD2", "2026-10-12 10:00:00", "退单", "U1", said=f"不属于本单位职责，居民电话{PHONE}"),
        step("GD2", "2026/10/12 10:30", "改派", "C12345", "U2"),
        step("GD2", "2026-10-12 11:00:00", "签收", "U2"),
        step("GD3", "2026/10/12 9:30", "派单", "C12345", "U2"),
        step("GD3", "2026/10/12 9:50", "签收", "U2"),
        step("GD3", "2026-10-12 10:00:00", "挂起", "U2", said="等待居民补充材料"),
        step("GD3", "2026-10-13 10:00:00", "解挂", "U2"),
        step("GD3", "2026-10-13 11:00:00", "转发", "U2", said=f"联系{PHONE}"),  # unknown: a dead letter
    ]
    (tmp_path / "orders.csv").write_bytes(gbk_csv(ORDER_COLUMNS, orders))
    (tmp_path / "flow.csv").write_bytes(gbk_csv(FLOW_COLUMNS, log))
    settings = Settings(var_dir=chdb_var, partitions=2, database="it_dispatch")
    result, sink = replay(settings, [("12345", tmp_path / "orders.csv"), ("12345-flow", tmp_path / "flow.csv")],
                          None, lambda _m: None)
    client, db = sink.client, "it_dispatch"
    # 3 order rows (9 events) + 11 log rows, one of them refused
    assert (result.tally.read, result.tally.rejected, result.tally.events) == (14, 1, 19)
    oct12 = date(2026, 10, 12)
    # U1 got GD1 and GD2 and returned GD2; U2 got GD2 (seen as the log's 改派 and the row's
    # 派单时间, one dispatch) and GD3, and returned neither
    assert client.query(f"SELECT day, source, district, unit, dispatched_to, returned_by, return_rate "
                        f"FROM {db}.unit_dispatch_daily ORDER BY unit").result_rows == [
        (oct12, "hotline", "370102", "U1", 2, 1, 0.5), (oct12, "hotline", "370102", "U2", 2, 0, 0.0)]
    # first holders: GD1 U1 kept, GD2 U1 returned, GD3 U2 kept
    assert client.query(f"SELECT day, dispatched, first_holder_kept, accuracy "
                        f"FROM {db}.dispatch_accuracy_daily").result_rows == [(oct12, 3, 2, 2 / 3)]
    # both exports' copies of a step are in `events`; the views count the step once
    assert client.query(f"SELECT count() FROM {db}.events FINAL WHERE case_id = 'hotline:12345:GD1' "
                        f"AND type = 'dispatched'").result_rows == [(2,)]
    assert client.query(f"SELECT case_id, type, reason FROM {db}.events FINAL WHERE reason IS NOT NULL "
                        f"ORDER BY case_id").result_rows == [
        ("hotline:12345:GD2", "returned", "不属于本单位职责，居民电话＊＊＊"),
        ("hotline:12345:GD3", "suspended", "等待居民补充材料")]
    (reason,) = client.query(f"SELECT reason FROM {db}.rejects FINAL WHERE format = '12345-flow'"
                             ).result_rows[0]
    assert reason.startswith("操作类型 '转发' is unknown")
    tables = [r[0] for r in client.query(f"SHOW TABLES FROM {db}").result_rows]
    everything = "\n".join(str(client.query(f"SELECT * FROM {db}.`{t}`").result_rows) for t in tables)
    assert "GD3" in everything and PHONE not in everything and "王伟" not in everything
