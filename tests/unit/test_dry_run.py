"""`civicflow validate`: the figures of a dry run, worked out by hand or by a plain in-memory
count, and the bound on what it keeps in memory."""

from __future__ import annotations

import io
import signal
from pathlib import Path

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from civicflow.cli import main
from producers.dry_run import EXAMPLES_PER_REASON, DuplicateFinder, FeedCheck, check_files
from producers.registry import adapter_for

GOOD = {"事件ID": "E1", "工单编号": "WG1", "事件类型": "上报", "发生时间": "2026-10-03 09:15:00",
        "网格编码": "370102001001003", "事项大类": "环境卫生", "事项小类": "垃圾堆放"}


def grid_file(tmp_path: Path, lines: list[object], name: str = "grid.jsonl") -> Path:
    path = tmp_path / name
    path.write_bytes(b"\n".join(line if isinstance(line, bytes) else orjson.dumps(line)
                                for line in lines) + b"\n")
    return path


def in_memory_duplicates(records: list[list[str]]) -> tuple[int, int]:
    """ImportTally's rule with a set: a record is a duplicate when an earlier one had all its
    events (a record with no event counts as skipped too)."""
    seen: set[str] = set()
    duplicates = 0
    for ids in records:
        new = [i for i in ids if i not in seen]
        if not new:
            duplicates += 1
        seen.update(ids)
    return duplicates, len(seen)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.lists(st.sampled_from([f"{n:024x}" for n in range(12)] + ["not-hex", "x" * 24]),
                         min_size=1, max_size=4), max_size=40),
       st.integers(min_value=1, max_value=7))
def test_duplicates_on_disk_match_a_set_whatever_the_run_size(tmp_path_factory, records, run_size):
    with DuplicateFinder(run_size, tmp_path_factory.mktemp("dups")) as finder:
        for number, ids in enumerate(records, start=1):
            finder.add(number, ids)
        assert finder.count() == in_memory_duplicates(records)


def test_a_dry_run_of_a_small_feed_counts_what_a_person_would(tmp_path):
    lines = [
        GOOD,                                                               # 1 new case
        {**GOOD, "事件ID": "E2", "工单编号": "WG2", "事项小类": "飞碟"},          # 2 unknown item
        {**GOOD, "事件ID": "E3", "事件类型": "派单", "发生时间": "2026-10-03 10:00:00",
         "网格编码": None, "事项大类": None, "事项小类": None},                 # 3 not a new case
        GOOD,                                                               # 4 a re-sent line
        {**GOOD, "事件ID": "E5", "工单编号": "WG5", "网格编码": ""},              # 5 no area
        {**GOOD, "事件ID": "E6", "事件类型": "飞走"},                            # 6 rejected
        b"{not json",                                                       # 7 rejected
        {**GOOD, "事件ID": "E8", "事件类型": "起飞"},                            # 8 rejected
    ]
    path = grid_file(tmp_path, lines)
    report = check_files([("jn-grid", path)], adapter_for, lambda *_: None)
    assert (report.read, report.accepted, report.rejected, report.duplicates, report.events) == (
        8, 4, 3, 1, 4)
    assert report.accounting_line() == (
        "records read 8 = accepted 4 + rejected 3 + duplicates skipped 1 (4 events)")
    assert report.reasons[("jn-grid", "事件类型")].count == 2
    assert [line for _, line, _ in report.reasons[("jn-grid", "事件类型")].examples] == [6, 8]
    assert [line for _, line, _ in report.reasons[("jn-grid", "json")].examples] == [7]
    assert (report.first.isoformat(), report.last.isoformat()) == (
        "2026-10-03T09:15:00+08:00", "2026-10-03T10:00:00+08:00")
    # new cases: lines 1, 2, 4 (the re-sent one is read again), 5
    assert (report.created, report.unknown_category, report.no_area) == (4, 1, 1)
    assert report.reject_rate == 3 / 8


def test_memory_holds_counters_and_a_few_examples_not_the_input(tmp_path):
    lines = [{**GOOD, "事件ID": f"E{n}", "工单编号": f"WG{n}"} for n in range(3000)]
    lines += [{**GOOD, "事件ID": f"B{n}", "事件类型": f"bad{n}"} for n in range(500)]
    path = grid_file(tmp_path, lines)
    with FeedCheck(run_size=256, spill_dir=tmp_path) as check:
        for _, items in adapter_for("jn-grid").parse_rows(io.BytesIO(path.read_bytes()), str(path)):
            check.add("jn-grid", items)
            assert len(check.duplicates._pairs._current) < 256  # noqa: SLF001 - the bound itself
        assert len(check.duplicates._pairs._runs) == 3000 // 256  # noqa: SLF001
        report = check.report()
    assert [len(g.examples) for g in report.reasons.values()] == [EXAMPLES_PER_REASON]
    assert (report.read, report.rejected, report.accepted, report.events) == (3500, 500, 3000, 3000)
    assert not list(tmp_path.glob("civicflow-validate-*")), "the sorted runs are removed"


def test_the_command_prints_the_figures_and_fails_on_rejects(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(signal, "signal", lambda *_: None)  # main() would take over Ctrl-C
    grid = grid_file(tmp_path, [GOOD, {**GOOD, "事件ID": "E2", "事件类型": "飞走"}])
    wuye = tmp_path / "wuye.jsonl"
    wuye.write_bytes(orjson.dumps({"order_id": "WY1", "community_code": "370102001002",
                                   "event": "报修", "time": "2026-10-03T09:15:00+08:00"}) + b"\n")
    argv = ["validate", "--var-dir", str(tmp_path / "var"), "--format", "jn-grid", str(grid),
            "--format", "wuye", str(wuye)]
    assert main(argv) == 1
    printed = capsys.readouterr().out
    assert "records read 3 = accepted 2 + rejected 1 + duplicates skipped 0 (2 events)" in printed
    assert "jn-grid 事件类型: 1 record(s), lines grid.jsonl:2" in printed
    assert "事件类型 '飞走' is unknown" in printed
    assert "FAILED: 1 of 3 records would be rejected (33.33%" in printed
    assert main([*argv, "--max-reject-rate", "40%"]) == 0
    assert "within --max-reject-rate 40.00%" in capsys.readouterr().out
    assert main(["validate", "--var-dir", str(tmp_path / "var"), "--format", "wuye", str(wuye)]) == 0
    assert "OK: every record would be accepted" in capsys.readouterr().out
