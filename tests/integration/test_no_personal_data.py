"""No personal data anywhere: realistic values planted in every field of every format (good
and rejected records, malformed ones too) go through the whole embedded pipeline; none of them
is in any topic, table, view, log, webhook reply, or the output of explain and report."""

from __future__ import annotations

import argparse
import asyncio
import csv
import hashlib
import hmac
import io
import logging
import time
from pathlib import Path

import orjson
import pytest
from aiohttp.test_utils import TestClient, TestServer
from confluent_kafka import Consumer, TopicPartition
from rich.console import Console

from civicflow import commands
from civicflow.embedded import embedded_broker
from civicflow.pipeline import replay
from civicflow.settings import Settings
from producers.hotline12345 import COLUMNS
from producers.hotline_flow import COLUMNS as FLOW_COLUMNS
from producers.webhook import PATH, AcknowledgedSender, build_app, signature

pytestmark = pytest.mark.integration

MOBILE, LANDLINE, ID_NUMBER, NAME = "15867302914", "0531-87654329", "370102198506123418", "欧阳秀英"
NUMBERS = (MOBILE, LANDLINE, ID_NUMBER)
# each planted value, and the same digits as they could be written without separators
PLANTED = {MOBILE, LANDLINE, ID_NUMBER, NAME, LANDLINE.replace("-", "")}
KEY = b"it-privacy-key"
SECRET = b"firm-secret"

GRID = {"事件ID": "E", "工单编号": "WG", "事件类型": "上报", "发生时间": "2026-10-12 09:15:00",
        "网格编码": "370102001001003", "事项大类": "环境卫生", "事项小类": "垃圾堆放",
        "紧急程度": "一般", "承办单位编码": "U1", "承办单位": "城管局", "满意度": "满意",
        "延期天数": "3", "说明": "无", "诉求人": NAME, "上报人": NAME, "联系电话": MOBILE}
HOTLINE = {"工单编号": "GD", "来电时间": "2026-10-12 09:07:00", "来电号码": MOBILE, "诉求人": NAME,
           "诉求类型": "噪音扰民", "诉求内容": "楼上装修很吵", "紧急程度": "一般", "区县编码": "370102",
           "街道编码": "370102001", "承办单位编码": "U01", "承办单位": "城管局",
           "派单时间": "2026-10-12 09:30:00", "签收时间": "", "办结时间": "", "回访时间": "",
           "满意度": "", "重办次数": "0", "工单状态": "处理中"}
WUYE = {"order_id": "WY", "community_code": "370102001002", "event": "报修",
        "time": "2026-10-12T09:15:00+08:00", "category": "电梯故障", "urgent": True,
        "company_code": "C001", "satisfaction": "满意"}
FLOW = {"工单编号": "GD", "操作时间": "2026-10-12 10:00:00", "操作类型": "退单", "操作单位编码": "U01",
        "操作单位": "城管局", "目标单位编码": "U02", "目标单位": "住建局", "延期天数": "", "满意度": "",
        "说明": "不属于本单位职责"}
NYC = {"Unique Key": "N", "Created Date": "10/12/2026 09:00:00 AM", "Closed Date": "",
       "Agency": "DOT", "Complaint Type": "Pothole", "Status": "Open", "Due Date": "",
       "Borough": "QUEENS"}


def planted(good: dict, id_field: str, prefix: str) -> list[dict]:
    """The good record once, then with every field holding every planted number, alone and
    inside text; each record its own case (its id field numbered) unless the id is the field."""
    records = [{**good, id_field: f"{prefix}0"}]
    for field in good:
        for value in NUMBERS:
            for text in (value, f"见{value}说"):
                records.append({**good, id_field: f"{prefix}{len(records)}", field: text})
    return records


def csv_text(rows: list[dict], columns: list[str]) -> str:
    buffer = io.StringIO(newline="")
    writer = csv.DictWriter(buffer, fieldnames=columns)
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def write_feeds(folder: Path) -> tuple[list[tuple[str, Path]], list[dict]]:
    grid = [{**r, "事件ID": f"E{r['工单编号']}"} if r["事件ID"] == "E" else r
            for r in planted(GRID, "工单编号", "WG-P")]
    grid_lines = [orjson.dumps(r) for r in grid]
    grid_lines += [  # cut off, not UTF-8, and over the record limit
        f'{{"事件ID": "EX1", "诉求人": "{NAME}", "联系电话": "{MOBILE}", "说明": "{ID_NUMBER}'.encode(),
        f'{{"事件ID": "EX2", "说明": "{LANDLINE}"}}'.encode() + b"\xff\xfe",
        orjson.dumps({**GRID, "事件ID": "EX3", "说明": f"{MOBILE} " + "x" * 70_000})]
    (folder / "grid.jsonl").write_bytes(b"\n".join(grid_lines) + b"\n")

    hotline = planted(HOTLINE, "工单编号", "GD-P")
    text = csv_text(hotline, COLUMNS)
    # an unquoted comma inside 来电号码 shifts the name and every cell after it
    text += ",".join(["GD-SHIFT", HOTLINE["来电时间"], MOBILE[:3], MOBILE[3:], NAME]
                     + [HOTLINE[c] for c in COLUMNS[4:]]) + "\n"
    data = text.encode("gbk")
    # a row with a byte neither GBK nor UTF-8, still holding a name and numbers
    data += ",".join(["GD-BYTE", HOTLINE["来电时间"], MOBILE, NAME, "噪音", ID_NUMBER]
                     + [""] * 12).encode("gbk").replace(b"GD-BYTE", b"GD-B\x80\x80") + b"\n"
    (folder / "hotline.csv").write_bytes(data)
    # an export without its header: the first row is a data row with a name in it
    headerless = csv_text([{**HOTLINE, "工单编号": "GD-NOHEAD"}], COLUMNS).split("\n", 1)[1]
    (folder / "hotline_noheader.csv").write_bytes(headerless.encode("gbk"))

    # the circulation log of the same orders: a return (with its stated reason) per order
    flow = planted(FLOW, "工单编号", "GD-P")
    (folder / "hotline_flow.csv").write_bytes(csv_text(flow, FLOW_COLUMNS).encode("gbk"))

    wuye = planted(WUYE, "order_id", "WY-P")
    wuye_lines = [orjson.dumps(r) for r in wuye]
    wuye_lines += [orjson.dumps({**WUYE, "order_id": "WY-PD", "contact_name": NAME, "phone": MOBILE,
                                 "备注": f"{NAME}身份证{ID_NUMBER}"}),
                   f'{{"order_id": "WY-CUT", "category": "{LANDLINE}'.encode()]
    (folder / "wuye.jsonl").write_bytes(b"\n".join(wuye_lines) + b"\n")

    nyc = planted(NYC, "Unique Key", "NY-P")
    (folder / "nyc311.csv").write_text(csv_text(nyc, list(NYC)), encoding="utf-8")

    files = [("jn-grid", folder / "grid.jsonl"), ("12345", folder / "hotline.csv"),
             ("12345", folder / "hotline_noheader.csv"), ("12345-flow", folder / "hotline_flow.csv"),
             ("wuye", folder / "wuye.jsonl"),
             ("nyc311", folder / "nyc311.csv")]
    webhook = [{**r, "order_id": r["order_id"].replace("WY-P", "WH-P")} for r in wuye]
    webhook.append({**WUYE, "order_id": "WH-PD", "contact_name": NAME, "phone": MOBILE})
    return files, webhook


async def post_all(bootstrap: str, bodies: list[dict]) -> tuple[list[int], str]:
    """Every body signed and posted to the webhook in front of `bootstrap`: the statuses and
    all the replies' text."""
    sender = AcknowledgedSender(bootstrap)
    try:
        async with TestClient(TestServer(build_app({"C001": SECRET}, sender))) as client:
            statuses, replies = [], []
            for body in bodies:
                raw = orjson.dumps(body)
                stamp = str(int(time.time()))
                response = await client.post(PATH, data=raw, headers={
                    "Content-Type": "application/json", "X-Timestamp": stamp,
                    "X-Signature": signature(SECRET, stamp, raw)})
                statuses.append(response.status)
                replies.append(await response.text())
            return statuses, "\n".join(replies)
    finally:
        await asyncio.to_thread(sender.close)


def read_every_topic(bootstrap: str) -> str:
    """Every record (key, value, headers) of every topic, partition by partition to its end."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "privacy-check",
                         "enable.auto.commit": False, "enable.partition.eof": True})
    topics = consumer.list_topics(timeout=10).topics
    assignment = [TopicPartition(t, p, 0) for t in topics for p in topics[t].partitions]
    consumer.assign(assignment)
    blobs: list[bytes] = []
    ended: set[tuple[str, int]] = set()
    deadline = time.monotonic() + 120
    while len(ended) < len(assignment) and time.monotonic() < deadline:
        for message in consumer.consume(5000, 0.5):
            if message.error() is not None:
                ended.add((message.topic(), message.partition()))
                continue
            blobs.append((message.key() or b"") + b"\t" + (message.value() or b""))
            blobs.extend(value or b"" for _, value in message.headers() or [])
    consumer.close()
    assert len(ended) == len(assignment), "not every partition was read to its end"
    return b"\n".join(blobs).decode("utf-8", "replace")


class Recorded(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


def test_no_planted_value_reaches_any_topic_table_log_or_output(chdb_var, tmp_path, capfd,
                                                                monkeypatch):
    feeds = tmp_path / "feeds"
    feeds.mkdir()
    files, webhook_bodies = write_feeds(feeds)
    var = tmp_path / "var"
    settings = Settings(var_dir=var, partitions=2, database="it_privacy",
                        clickhouse=f"chdb://{(chdb_var / 'clickhouse').resolve()}",
                        caller_hash_key=KEY.decode())  # type: ignore[arg-type]
    progress: list[str] = []
    logs = Recorded()
    root = logging.getLogger()
    level = root.level
    root.addHandler(logs)
    root.setLevel(logging.DEBUG)
    try:
        with embedded_broker(tmp_path / "broker", 2) as bootstrap:
            statuses, replies = asyncio.run(post_all(bootstrap, webhook_bodies))
            settings = settings.model_copy(update={"bootstrap": bootstrap})
            result, sink = replay(settings, files, None, progress.append)
            kafka = read_every_topic(bootstrap)
    finally:
        root.removeHandler(logs)
        root.setLevel(level)
    client, db = sink.client, settings.database

    relations = [r[0] for r in client.query(f"SHOW TABLES FROM {db}").result_rows]
    clickhouse = {name: client.query(f"SELECT * FROM {db}.`{name}`").result_rows
                  for name in relations}
    out = io.StringIO()
    monkeypatch.setattr(commands, "out", Console(file=out, width=200))
    # explain shows what the events table holds (searched whole above): per feed, a case
    # whose events carry text that came from a planted field (masked), and its first case
    case_ids = sorted({case_id for row in client.query(
        f"SELECT minIf(case_id, category LIKE 'other:%' OR reason IS NOT NULL), min(case_id) "
        f"FROM {db}.events GROUP BY system").result_rows for case_id in row if case_id})
    assert len(case_ids) >= 6
    for case_id in case_ids:
        commands.cmd_explain(settings, argparse.Namespace(case_id=case_id, as_of=None))
    explained = out.getvalue()
    out.seek(0)
    out.truncate()
    commands.cmd_report(settings, argparse.Namespace(html=tmp_path / "report.html"))
    reported = out.getvalue() + (tmp_path / "report.html").read_text("utf-8")
    captured = capfd.readouterr()

    haystacks = {
        "kafka": kafka,
        **{f"clickhouse {name}": str(rows) for name, rows in clickhouse.items()},
        "worker log": (var / "worker.log").read_text("utf-8", "replace"),
        "broker log": (tmp_path / "broker" / "broker.log").read_text("utf-8", "replace"),
        "sink and webhook logs": "\n".join(logs.lines),
        "process output": captured.out + captured.err + "\n".join(progress),
        "webhook replies": replies,
        "explain": explained,
        "report": reported,
    }
    found = {(value, where): text.count(value)
             for where, text in haystacks.items() for value in PLANTED if value in text}
    assert found == {}

    # the search finds what is there: ids of good records, and the caller hash of MOBILE
    caller = hmac.new(KEY, MOBILE.encode(), hashlib.sha256).hexdigest()
    assert "WG-P0" in kafka and "GD-P0" in kafka and "WY-P0" in kafka and "WH-P0" in kafka
    assert "NY-P0" in kafka and caller in kafka and "NY-P0" in str(clickhouse["events"])
    assert caller in str(clickhouse["events"]) and "hotline:12345:GD-P0" in explained
    assert "370102" in reported and "QUEENS" in reported
    assert "＊＊＊" in str(clickhouse["rejects"]) and "＊＊＊" in str(clickhouse["events"])
    assert "不属于本单位职责" in str(clickhouse["events"])  # a stated reason, kept masked
    assert len(haystacks["worker log"]) > 0 and len(haystacks["broker log"]) > 0

    # every kind of record went through: good ones, rejected ones, malformed ones
    tally = result.tally
    assert tally.balanced and tally.rejected > 100 and tally.produced > 100
    assert 202 in statuses and 422 in statuses
    rejects = clickhouse["rejects"]
    reasons = " ".join(str(row) for row in rejects)
    for needle in ("json:", "encoding:", "size:", "more cells than the header", "header:",
                   "unknown fields", "holds a phone or ID number"):
        assert needle in reasons, needle
