"""Each feed's contract against its adapter: every fixture and simulated feed goes through both,
record by record, and they must agree on what is accepted and what is rejected.

Where they cannot agree, the difference is listed in DIFFERENCES (and in the README) with a
record that shows it; a test holds each listed record to its listed verdicts, so the list stays
true. The contracts are validated with the standard tools a district would use: `jsonschema`
for the JSON feeds, `frictionless` for the CSV feeds (with the Data Package's dialect).
"""

from __future__ import annotations

import codecs
import csv
import io
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import frictionless
import orjson
import pytest
from jsonschema import Draft202012Validator

from producers.base import Reject
from producers.registry import FORMATS, adapter_for
from producers.simulator import (
    hotline_csv,
    simulate_grid,
    simulate_hotline,
    simulate_hotline_exports,
    simulate_property,
)
from tests.conftest import cn

CONTRACTS = Path(__file__).resolve().parents[2] / "schemas" / "json"
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
# shared/ lies beside the checkout (in a worktree, beside the main checkout)
NYC311 = next(folder / "shared" / "data" / "nyc311" / "311_service_requests_2022-05-01_sample.csv"
              for folder in Path(__file__).resolve().parents
              if (folder / "shared" / "data" / "nyc311").is_dir())
JSON_FEEDS = {"jn-grid": "feed-jn-grid.schema.json", "wuye": "feed-wuye.schema.json"}
CSV_FEEDS = {"12345": "feed-12345.tableschema.json", "12345-flow": "feed-12345-flow.tableschema.json",
             "nyc311": "feed-nyc311.tableschema.json"}
FILE_LEVEL = 0  # a verdict about the whole file (a bad header), not about a record
NOW = datetime(2026, 12, 1, tzinfo=UTC)  # the import's clock: every feed here is before it


def load(name: str) -> dict:
    return json.loads((CONTRACTS / name).read_text("utf-8"))


def json_contract_verdicts(format_name: str, data: bytes) -> dict[int, str | None]:
    """Line -> None (accepted) or the first error, for every non-empty line."""
    # `format` is an annotation here, as JSON Schema 2020-12 has it by default (and as the
    # embedded broker reads it): what the contract requires is in its patterns
    validator = Draft202012Validator(load(JSON_FEEDS[format_name]))
    verdicts: dict[int, str | None] = {}
    for number, raw in enumerate(data.splitlines(), start=1):
        if not raw.strip():
            continue
        try:
            value = orjson.loads(raw)  # JSON, in UTF-8, as the contract's description says
        except orjson.JSONDecodeError as exc:
            verdicts[number] = f"not JSON: {exc}"
            continue
        error = next(iter(validator.iter_errors(value)), None)
        verdicts[number] = None if error is None else error.message
    return verdicts


def csv_contract_verdicts(format_name: str, data: bytes, tmp_path: Path) -> dict[int, str | None]:
    """Line where the record ends -> None or the first frictionless error; FILE_LEVEL for a
    header error. The file is read as its resource in datapackage.json says, with the encoding
    the district would state (UTF-8 or GBK, as detected)."""
    text, encoding = stated_encoding(data)
    path = tmp_path / f"{format_name}.csv"
    path.write_bytes(data)
    package = load("datapackage.json")
    descriptor = next(r for r in package["resources"] if r["name"] == format_name)
    resource = frictionless.Resource(
        path=path.name, basepath=str(tmp_path), format="csv", encoding=encoding,
        dialect=frictionless.Dialect.from_descriptor(descriptor["dialect"]),
        schema=frictionless.Schema.from_descriptor(load(CSV_FEEDS[format_name])))
    report = resource.validate(limit_errors=1_000_000)
    ends = [reader_line for reader_line in _record_ends(text)]
    verdicts: dict[int, str | None] = {line: None for line in ends[1:]}
    for error in report.tasks[0].errors if report.tasks else report.errors:
        row = getattr(error, "row_number", None)
        if row is None:
            assert error.type.endswith("-label") or error.type == "header-error", error.message
            verdicts = {FILE_LEVEL: f"{error.type}: {error.message}"}
            break
        line = ends[row - 1]
        verdicts[line] = verdicts.get(line) or f"{error.type}: {error.message}"
    return verdicts


def stated_encoding(data: bytes) -> tuple[str, str]:
    """(text, encoding) as a district would state the file's encoding: UTF-8 (a BOM is dropped),
    else GBK (GB18030, its superset)."""
    if data.startswith(codecs.BOM_UTF8):
        return data[3:].decode("utf-8"), "utf-8-sig"
    try:
        return data.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        return data.decode("gb18030"), "gb18030"


def _record_ends(text: str) -> list[int]:
    reader = csv.reader(io.StringIO(text, newline=""))
    ends = []
    for _ in reader:
        ends.append(reader.line_num)
    return ends


def adapter_verdicts(format_name: str, data: bytes) -> dict[int, str | None]:
    verdicts: dict[int, str | None] = {}
    for line, items in adapter_for(format_name).parse_rows(io.BytesIO(data), "feed", NOW):
        rejects = [item for item in items if isinstance(item, Reject)]
        if rejects and rejects[0].reason.startswith("header"):
            return {FILE_LEVEL: rejects[0].reason}
        verdicts[line] = rejects[0].reason if rejects else None
    return verdicts


def contract_verdicts(format_name: str, data: bytes, tmp_path: Path) -> dict[int, str | None]:
    if format_name in JSON_FEEDS:
        return json_contract_verdicts(format_name, data)
    return csv_contract_verdicts(format_name, data, tmp_path)


def disagreements(format_name: str, data: bytes, tmp_path: Path) -> list[str]:
    """Lines one side accepts and the other refuses (or sees no record at)."""
    no_record = "no record here"
    by_contract = contract_verdicts(format_name, data, tmp_path)
    by_adapter = adapter_verdicts(format_name, data)
    found = []
    for line in sorted(set(by_contract) | set(by_adapter)):
        contract, adapter = by_contract.get(line, no_record), by_adapter.get(line, no_record)
        if (contract is None) != (adapter is None):
            found.append(f"line {line}: contract {contract!r}, adapter {adapter!r}")
    return found


# ---- the corpus: every fixture and simulated feed ---------------------------------------------

def corpus() -> list[tuple[str, str, bytes]]:
    start = cn(2026, 9, 28).date()
    hotline_rows = simulate_hotline(seed=11, start=start, days=4, cases_per_day=40)
    exports = simulate_hotline_exports(seed=12, start=start, days=4, cases_per_day=40)
    feeds = [
        ("jn-grid", "simulated grid, with faults",
         b"\n".join(simulate_grid(seed=11, start=start, days=4, cases_per_day=40))),
        ("jn-grid", "simulated grid with returns, re-dispatches and suspensions",
         b"\n".join(simulate_grid(seed=12, start=start, days=4, cases_per_day=40, dispatch=True))),
        ("12345", "simulated 12345 export beside a circulation log", hotline_csv(exports.orders)),
        ("12345-flow", "simulated circulation log, GBK, with faults", hotline_csv(exports.flow)),
        ("12345-flow", "the same, UTF-8", hotline_csv(exports.flow, "utf-8")),
        ("jn-grid", "tests/fixtures/grid_small.jsonl", (FIXTURES / "grid_small.jsonl").read_bytes()),
        ("12345", "simulated 12345 export, GBK, with faults", hotline_csv(hotline_rows, "gbk")),
        ("12345", "the same, UTF-8", hotline_csv(hotline_rows, "utf-8")),
        ("12345", "the same, UTF-8 with BOM", hotline_csv(hotline_rows, "utf-8-sig")),
        ("wuye", "simulated property feed, with faults",
         b"\n".join(simulate_property(seed=11, start=start, days=4, cases_per_day=40))),
        ("nyc311", "the real NYC 311 sample", NYC311.read_bytes()),
    ]
    examples = {"jn-grid": ["jn-grid.jsonl"], "wuye": ["wuye.jsonl"],
                "12345": ["12345.csv", "12345-gbk.csv"], "12345-flow": ["12345-flow.csv"],
                "nyc311": ["nyc311.csv"]}
    for format_name, names in examples.items():
        feeds += [(format_name, f"schemas/json/examples/{name}",
                   (CONTRACTS / "examples" / name).read_bytes()) for name in names]
    return [feed for feed in feeds if feed[0] in FORMATS]


@pytest.mark.parametrize(("format_name", "label", "data"), corpus(),
                         ids=lambda v: v if isinstance(v, str) else "")
def test_contract_and_adapter_agree_on_every_record(format_name, label, data, tmp_path):
    by_adapter = adapter_verdicts(format_name, data)
    assert by_adapter, f"{label}: no records"
    assert disagreements(format_name, data, tmp_path) == []


def test_the_corpus_has_rejects_of_every_feed_it_can(tmp_path):
    """The agreement above is worth something only if the corpus holds bad records too."""
    rejected = {}
    for format_name, label, data in corpus():
        verdicts = adapter_verdicts(format_name, data)
        rejected[label] = sum(v is not None for v in verdicts.values())
    assert rejected["simulated grid, with faults"] >= 1
    assert rejected["simulated 12345 export, GBK, with faults"] == 1  # the 2026-13-45 row
    assert rejected["simulated property feed, with faults"] >= 3  # no offset, a phone, cut off...
    assert rejected["tests/fixtures/grid_small.jsonl"] >= 1
    assert rejected["simulated circulation log, GBK, with faults"] == 2  # 内部转办, 2026-10-32


# ---- what a contract cannot say: the listed differences ---------------------------------------

@dataclass(frozen=True)
class Difference:
    format: str
    what: str
    why: str
    record: Callable[[], bytes]  # a whole file (CSV: header and row) that shows it
    contract_accepts: bool
    adapter_accepts: bool


GRID_LINE = {"事件ID": "E1", "工单编号": "WG1", "事件类型": "上报", "发生时间": "2026-10-03 09:15:00"}
WUYE_BODY = {"order_id": "WY1", "community_code": "370102001002", "event": "报修",
             "time": "2026-10-03T09:15:00+08:00", "company_code": "C001"}


def grid(**changes: object) -> Callable[[], bytes]:
    return lambda: orjson.dumps({**GRID_LINE, **changes})


def wuye(**changes: object) -> Callable[[], bytes]:
    return lambda: orjson.dumps({**WUYE_BODY, **changes})


def csv_file(header: str, row: str) -> Callable[[], bytes]:
    return lambda: f"{header}\r\n{row}\r\n".encode()


H12345 = "工单编号,来电时间,紧急程度,区县编码,街道编码"
HFLOW = "工单编号,操作时间,操作类型,操作单位编码,目标单位编码,延期天数"
HNYC = "Unique Key,Created Date,Closed Date,Agency,Complaint Type,Status,Due Date,Borough"

DIFFERENCES = [
    Difference("jn-grid", "whitespace around a value",
               "the adapter trims every value; the contract lists the exact values",
               grid(事件类型=" 上报 "), contract_accepts=False, adapter_accepts=True),
    Difference("jn-grid", "a fractional or boolean 延期天数",
               "the adapter takes int() of it (3.5 → 3, true → 1); the contract wants a whole "
               "number 1..365", grid(事件类型="延期", 延期天数=3.5), False, True),
    Difference("jn-grid", "a day the month does not have",
               "a pattern cannot know month lengths: 2026-02-30 matches it, the adapter refuses it",
               grid(发生时间="2026-02-30 09:15:00"), True, False),
    Difference("jn-grid", "a time before 2000 or after the import's clock",
               "a schema has no clock; the adapter refuses times before 2000-01-01 and later than "
               "now + 10 minutes", grid(发生时间="1999-12-31 09:15:00"), True, False),
    Difference("jn-grid", "an id that holds a phone number",
               "personal data cannot be an id: the adapter refuses it; a pattern that forbids every "
               "phone and ID number shape inside any text would be unreadable",
               grid(工单编号="WG13800138000"), True, False),
    Difference("jn-grid", "a line over 64 KiB", "the adapter does not read a record that long; a "
               "JSON Schema cannot bound the size of a whole line",
               grid(承办单位="x" * 70_000), True, False),
    Difference("wuye", "a time after the import's clock", "as for jn-grid",
               wuye(time="2031-10-03T09:15:00+08:00"), True, False),
    Difference("12345", "a time before 2000", "as for jn-grid",
               csv_file(H12345, "GD1,1999-10-03 09:07:00,一般,370102,"), True, False),
    Difference("wuye", "ISO 8601 forms other than 2026-10-03T09:15:00+08:00",
               "the adapter reads every form Python's datetime.fromisoformat does (basic format "
               "20261003T091500+0800, week dates); the contract names the extended form only",
               wuye(time="20261003T091500+0800"), False, True),
    Difference("wuye", "a day the month does not have", "as for jn-grid",
               wuye(time="2026-02-30T09:15:00+08:00"), True, False),
    Difference("wuye", "whitespace around a value", "the adapter trims text values",
               wuye(event=" 报修 "), False, True),
    Difference("wuye", "a whole number written as 2.0",
               "JSON Schema counts 2.0 as an integer; the adapter wants a JSON integer",
               wuye(event="extended", extension_days=2.0), True, False),
    Difference("12345", "whitespace around a value", "the adapter trims every cell",
               csv_file(H12345, "GD1,2026-10-03 09:07:00, 一般 ,370102,"), False, True),
    Difference("12345", "a row shorter than the header",
               "the adapter reads missing trailing cells as empty; frictionless reports "
               "missing-cell", csv_file(H12345, "GD1,2026-10-03 09:07:00"), False, True),
    Difference("12345", "a bad 区县编码 beside a good 街道编码",
               "the adapter takes the district from 街道编码 and never reads 区县编码; a Table "
               "Schema checks every column on its own",
               csv_file(H12345, "GD1,2026-10-03 09:07:00,一般,37,370102001"), False, True),
    Difference("12345", "a day the month does not have", "as for jn-grid",
               csv_file(H12345, "GD1,2026-02-30 09:07:00,一般,370102,"), True, False),
    Difference("12345", "a blank line", "frictionless reports blank-row; the adapter skips it",
               lambda: f"{H12345}\r\n\r\nGD1,2026-10-03 09:07:00,一般,370102,\r\n".encode(),
               False, True),
    Difference("12345-flow", "延期 without 延期天数",
               "one column required by another's value: a Table Schema cannot say it",
               csv_file(HFLOW, "GD1,2026-10-03 09:07:00,延期,U1,,"), True, False),
    Difference("12345-flow", "派单 or 改派 without 目标单位编码", "the same: required by 操作类型",
               csv_file(HFLOW, "GD1,2026-10-03 09:07:00,派单,C1,,"), True, False),
    Difference("12345-flow", "a 满意度 outside the list on a step other than 回访",
               "the adapter reads 满意度 on 回访 only; the contract checks the column on every row",
               csv_file(HFLOW + ",满意度", "GD1,2026-10-03 09:07:00,签收,U1,,,很好"), False, True),
    Difference("nyc311", "Status Closed with an empty Closed Date",
               "one column required by another's value: a Table Schema cannot say it",
               csv_file(HNYC, "1,05/01/2022 12:00:03 AM,,NYPD,Noise,Closed,,BRONX"), True, False),
]


@pytest.mark.parametrize("difference", [d for d in DIFFERENCES if d.format in FORMATS],
                         ids=lambda d: f"{d.format}: {d.what}")
def test_each_listed_difference_is_what_it_says(difference, tmp_path):
    data = difference.record()
    by_contract = contract_verdicts(difference.format, data, tmp_path)
    by_adapter = adapter_verdicts(difference.format, data)
    contract_ok = all(v is None for v in by_contract.values()) and bool(by_contract)
    adapter_ok = all(v is None for v in by_adapter.values()) and bool(by_adapter)
    assert (contract_ok, adapter_ok) == (difference.contract_accepts, difference.adapter_accepts), (
        by_contract, by_adapter)


def test_a_bad_header_is_refused_by_both(tmp_path):
    for format_name, data in [("12345", "工单编号,诉求类型\r\nGD1,噪音扰民\r\n".encode()),
                              ("nyc311", b"Unique Key,Created Date\r\n1,05/01/2022 12:00:03 AM\r\n")]:
        assert set(contract_verdicts(format_name, data, tmp_path)) == {FILE_LEVEL}
        assert set(adapter_verdicts(format_name, data)) == {FILE_LEVEL}


@pytest.mark.parametrize(("format_name", "line"), [
    ("jn-grid", {**GRID_LINE, "事件类型": "飞走"}),
    ("jn-grid", {**GRID_LINE, "网格编码": "37010200100100"}),
    ("jn-grid", {**GRID_LINE, "事件类型": "延期"}),
    ("jn-grid", {**GRID_LINE, "紧急程度": "特急"}),
    ("jn-grid", {key: value for key, value in GRID_LINE.items() if key != "工单编号"}),
    ("jn-grid", {**GRID_LINE, "发生时间": "2026-10-03T09:15:00+08:00"}),
    ("jn-grid", {**GRID_LINE, "事项小类": ["a list"]}),
    ("jn-grid", {**GRID_LINE, "承办单位": ["ignored, any value"]}),
    ("wuye", {**WUYE_BODY, "phone": "13800138000"}),
    ("wuye", {**WUYE_BODY, "time": "2026-10-03T09:15:00"}),
    ("wuye", {**WUYE_BODY, "community_code": "370102"}),
    ("wuye", {**WUYE_BODY, "community_code": 370102001002}),
    ("wuye", {**WUYE_BODY, "urgent": "yes"}),
    ("wuye", {**WUYE_BODY, "urgent": None}),
    ("wuye", {**WUYE_BODY, "event": "extended"}),
    ("wuye", {**WUYE_BODY, "event": "extended", "extension_days": 400}),
    ("wuye", {**WUYE_BODY, "satisfaction": "超满意"}),
    ("wuye", {**WUYE_BODY, "order_id": 17.5}),
    ("wuye", {**WUYE_BODY, "order_id": " "}),
    ("wuye", {**WUYE_BODY, "order_id": 17, "category": 5, "event_id": None}),
    ("wuye", {**WUYE_BODY, "time": "2026-10-03 09:15:00+08:00"}),
    ("wuye", {**WUYE_BODY, "time": "2026-10-03T01:15:00Z"}),
    ("wuye", {**WUYE_BODY, "time": "2026-10-03T09:15:00.250+0800"}),
    ("wuye", {**WUYE_BODY, "time": 1791000000}),
    ("jn-grid", {**GRID_LINE, "事件ID": 1001, "工单编号": 7, "网格编码": 370102001001003}),
    ("jn-grid", {**GRID_LINE, "事件ID": True}),
    ("jn-grid", {**GRID_LINE, "网格编码": "", "紧急程度": None, "满意度": ""}),
    ("jn-grid", {**GRID_LINE, "事件类型": "延期", "延期天数": "3"}),
    ("jn-grid", {**GRID_LINE, "事件类型": "延期", "延期天数": 0}),
    ("jn-grid", {**GRID_LINE, "发生时间": "2026/10/3 9:07"}),
])
def test_hand_made_records_get_the_same_verdict(format_name, line, tmp_path):
    """Records written to hit one rule each: both sides agree, accept or refuse."""
    assert disagreements(format_name, orjson.dumps(line), tmp_path) == []


@pytest.mark.parametrize("row", [
    "1,05/01/2022 12:00:03 AM,,NYPD,Noise,In Progress,,BRONX",
    "1,05/01/2022 12:00:03 AM,05/01/2022 01:00:03 AM,NYPD,Noise,Closed,05/03/2022 12:00:00 AM,Unspecified",
    "1,2022-05-01 00:00:03,,NYPD,Noise,Open,,BRONX",
    "1,05/01/2022 12:00:03 AM,,NYPD,Noise,Open,tomorrow,BRONX",
    ",05/01/2022 12:00:03 AM,,NYPD,Noise,Open,,BRONX",
    "1,,,NYPD,Noise,Open,,BRONX",
])
def test_hand_made_nyc311_rows_get_the_same_verdict(row, tmp_path):
    assert disagreements("nyc311", f"{HNYC}\r\n{row}\r\n".encode(), tmp_path) == []


@pytest.mark.parametrize("row", [
    "GD1,2026/10/3 9:07,一般,370102001,370102001",
    "GD1,2026-10-03 9:07,特急,370102,",
    "GD1,2026-10-03 24:00,一般,370102,",
    "GD1,,一般,370102,",
    ",2026-10-03 09:07:00,一般,370102,",
    "GD1,2026-10-03 09:07:00,一般,3701020011,",
    "GD1,2026-10-03 09:07:00,,,",
    "GD1,2026-10-03 09:07,,370102,370102001",
    "GD1,2026-10-03 09:07:00,疑难,370102001001003,",
])
def test_hand_made_12345_rows_get_the_same_verdict(row, tmp_path):
    assert disagreements("12345", f"{H12345}\r\n{row}\r\n".encode(), tmp_path) == []


@pytest.mark.parametrize("row", [
    "GD1,2026-10-03 09:07:00,派单,C1,U1,",
    "GD1,2026/10/3 9:07,签收,U1,,",
    "GD1,2026-10-03 09:07:00,内部转办,U1,,",
    "GD1,2026-10-03 09:07:00,延期,U1,,3",
    "GD1,2026-10-03 09:07:00,延期,U1,,+3",
    "GD1,2026-10-03 09:07:00,延期,U1,,366",
    "GD1,2026-10-03 09:07:00,延期,U1,,003",
    "GD1,2026-13-03 09:07:00,签收,U1,,",
    ",2026-10-03 09:07:00,签收,U1,,",
    "GD1,,签收,U1,,",
])
def test_hand_made_flow_rows_get_the_same_verdict(row, tmp_path):
    assert disagreements("12345-flow", f"{HFLOW}\r\n{row}\r\n".encode(), tmp_path) == []

