"""DESIGN §6a in ClickHouse (chDB): the 0007 upgrade, 退单率 and 派单准确率 from events written
by hand (steps seen through two exports among them), unit rankings that charge overdue to the
alert's unit, and the report showing it all. Every expected figure is worked out by hand in the
comments next to it."""

from __future__ import annotations

import io
from datetime import date

import orjson
import pytest
from rich.console import Console

from civicflow.html_report import build_html
from civicflow.report import print_report
from sinks.clickhouse import ClickHouseSink, connect
from sinks.migrate import migrate

pytestmark = pytest.mark.component


@pytest.fixture(scope="module")
def client(chdb_var):
    return connect(f"chdb://{(chdb_var / 'clickhouse').resolve()}")


def fresh(client, name: str) -> ClickHouseSink:
    client.command(f"DROP DATABASE IF EXISTS {name}")
    migrate(client, name)
    return ClickHouseSink(client, name)


def at(day: int, hour: int, minute: int = 0, month: int = 10) -> str:
    return f"2026-{month:02d}-{day:02d}T{hour:02d}:{minute:02d}:00+08:00"


def case_row(case_id: str, *, source: str = "hotline", district: str = "370102", unit: str | None = "U1",
             status: str = "responded", created: str = at(3, 8), **extra: object) -> bytes:
    row = {"case_id": case_id, "source": source, "system": "12345", "district": district,
           "category": "H01", "urgency": "normal", "unit": unit, "status": status,
           "created_at": created, "reopen_count": 0, "escalation_level": 0, "cycle": 0, "version": 1}
    row.update(extra)
    return orjson.dumps(row)


def event(event_id: str, case: str, kind: str, when: str, unit: str | None = None,
          source: str = "hotline", **extra: object) -> bytes:
    row = {"event_id": event_id, "case_id": case, "source": source, "system": "12345-flow",
           "type": kind, "occurred_at": when, "category": "other:", "urgency": "normal",
           "unit": unit, "schema_version": 1}
    row.update(extra)
    return orjson.dumps(row)


def alert(case: str, milestone: str, cycle: int, unit: str | None, fires: str,
          retracted: bool = False) -> bytes:
    return orjson.dumps({
        "alert_id": f"{case}:{milestone}:{cycle}:red", "case_id": case, "source": "hotline",
        "district": "370102", "unit": unit, "category": "H01", "milestone": milestone,
        "cycle": cycle, "level": "red", "due_at": fires, "fires_at": fires, "emitted_at": fires,
        "retracted": retracted})


def test_0007_upgrades_existing_rows_and_is_safe_to_re_run(client):
    client.command("DROP DATABASE IF EXISTS ct_up7")
    migrate(client, "ct_up7", upto=6)
    sink = ClickHouseSink(client, "ct_up7")
    sink.insert_json("cases", [case_row("old-1", unit="U7"), case_row("old-2", unit=None)])
    sink.insert_json("alerts", [alert("old-1", "respond", 0, "U7", at(3, 12))])
    sink.insert_json("events", [event("e-old", "old-1", "dispatched", at(3, 9), "U7")])
    assert migrate(client, "ct_up7", upto=7) == ["0007_dispatch_and_suspension.sql"]
    migrate(client, "ct_up7")
    assert migrate(client, "ct_up7") == []
    # rows from before: the holder is the case's unit, nothing returned, re-dispatched or paused
    assert client.query(
        "SELECT case_id, holder_unit, returned_count, reassigned_count, suspended, paused_seconds, "
        "provisional FROM ct_up7.cases FINAL ORDER BY case_id").result_rows == [
        ("old-1", "U7", 0, 0, False, 0, False), ("old-2", None, 0, 0, False, 0, False)]
    assert client.query("SELECT provisional FROM ct_up7.alerts FINAL").result_rows == [(False,)]
    assert client.query("SELECT reason FROM ct_up7.events FINAL").result_rows == [(None,)]
    # a snapshot of today: back with the dispatch centre (no holder), suspended, paused 1 h 30 min
    sink.insert_json("cases", [case_row("old-1", unit="U7", version=2, holder_unit=None,
                                        returned_count=1, reassigned_count=2, suspended=True,
                                        paused_seconds=5400, provisional=True)])
    sink.insert_json("events", [event("e-new", "old-1", "returned", at(3, 10), "U7",
                                      reason="不属于本单位职责")])
    assert client.query(
        "SELECT holder_unit, returned_count, reassigned_count, suspended, paused_seconds, provisional "
        "FROM ct_up7.cases FINAL WHERE case_id = 'old-1'").result_rows == [(None, 1, 2, True, 5400, True)]
    assert client.query("SELECT reason FROM ct_up7.events FINAL WHERE event_id = 'e-new'"
                        ).result_rows == [("不属于本单位职责",)]


@pytest.fixture(scope="module")
def dispatch_db(client):
    """One day of dispatch steps in district 370102 (hotline) and one grid case in 370103."""
    sink = fresh(client, "ct_dispatch")
    events = [
        # H1: dispatched to U1, seen in the order export and in the circulation log
        event("h1-export", "H1", "dispatched", at(3, 9), "U1"),
        event("h1-flow", "H1", "dispatched", at(3, 9), "U1"),
        event("h1-sign", "H1", "responded", at(3, 9, 30), "U1"),
        # H2: U1 returns it (seen twice, once without a unit), the centre re-dispatches to U2
        event("h2-d", "H2", "dispatched", at(3, 9, 10), "U1"),
        event("h2-r", "H2", "returned", at(3, 10), "U1"),
        event("h2-r-again", "H2", "returned", at(3, 10)),
        event("h2-re", "H2", "reassigned", at(3, 10, 30), "U2"),
        # H3: the centre moves it from U2 to U3 itself; U2 never returned it
        event("h3-d", "H3", "dispatched", at(3, 11), "U2"),
        event("h3-re", "H3", "reassigned", at(3, 12), "U3"),
        # H4: U1 returns it the instant it arrives; U3 returns it (the event names no unit);
        # it goes back to U1
        event("h4-d", "H4", "dispatched", at(3, 13), "U1"),
        event("h4-r1", "H4", "returned", at(3, 13), "U1"),
        event("h4-re1", "H4", "reassigned", at(3, 14), "U3"),
        event("h4-r2", "H4", "returned", at(3, 15)),
        event("h4-re2", "H4", "reassigned", at(3, 16), "U1"),
        # H5: dispatched to U2, then cancelled: out of every rate
        event("h5-d", "H5", "dispatched", at(3, 9), "U2"),
        event("h5-r", "H5", "returned", at(3, 9, 5), "U2"),
        # H7: U2 returns it and the centre re-dispatches to U3 at the same instant: U2 returned it
        event("h7-d", "H7", "dispatched", at(3, 17), "U2"),
        event("h7-r", "H7", "returned", at(3, 18), "U2"),
        event("h7-re", "H7", "reassigned", at(3, 18), "U3"),
        # H6: dispatched 00:30 on 4 October (16:30 UTC on the 3rd), returned on the 5th: day 4th
        event("h6-d", "H6", "dispatched", at(4, 0, 30), "U1"),
        event("h6-r", "H6", "returned", at(5, 10), "U1"),
        # G1: a grid case in 370103, dispatched and kept
        event("g1-d", "G1", "dispatched", at(3, 9), "U9", source="grid"),
        event("g1-s", "G1", "responded", at(3, 10), "U9", source="grid"),
    ]
    sink.insert_json("events", events)
    sink.insert_json("events", events[:5])  # re-delivered: changes nothing
    sink.insert_json("cases", [case_row(c) for c in ("H1", "H2", "H3", "H4", "H6", "H7")]
                     + [case_row("H5", status="cancelled"),
                        case_row("G1", source="grid", district="370103", unit="U9")])
    return client, "ct_dispatch"


def test_return_rate_per_unit_and_day_of_the_dispatch(dispatch_db):
    client, db = dispatch_db
    got = client.query(f"SELECT day, source, district, unit, dispatched_to, returned_by, return_rate "
                       f"FROM {db}.unit_dispatch_daily ORDER BY day, source, unit").result_rows
    oct3, oct4 = date(2026, 10, 3), date(2026, 10, 4)
    assert got == [
        (oct3, "grid", "370103", "U9", 1, 0, 0.0),
        # U1 got H1, H2, H4 (H4 twice: one case); it returned H2 and H4
        (oct3, "hotline", "370102", "U1", 3, 2, 2 / 3),
        # U2 got H2, H3, H7 (H5 is cancelled); it returned H7 only
        (oct3, "hotline", "370102", "U2", 3, 1, 1 / 3),
        # U3 got H3, H4, H7; it returned H4 (the return without a unit came while U3 held it)
        (oct3, "hotline", "370102", "U3", 3, 1, 1 / 3),
        # H6 counts on the day of its dispatch in Asia/Shanghai, not the day of its return
        (oct4, "hotline", "370102", "U1", 1, 1, 1.0),
    ]


def test_dispatch_accuracy_per_district_and_day(dispatch_db):
    client, db = dispatch_db
    got = client.query(f"SELECT day, source, district, dispatched, first_holder_kept, accuracy "
                       f"FROM {db}.dispatch_accuracy_daily ORDER BY day, source").result_rows
    assert got == [
        (date(2026, 10, 3), "grid", "370103", 1, 1, 1.0),
        # first holders: H1 U1 kept, H2 U1 returned, H3 U2 kept (moved by the centre, never
        # returned), H4 U1 returned, H7 U2 returned -> 2 of 5
        (date(2026, 10, 3), "hotline", "370102", 5, 2, 0.4),
        (date(2026, 10, 4), "hotline", "370102", 1, 0, 0.0),
    ]


@pytest.fixture(scope="module")
def ranking_db(client):
    """October 2026, hotline, pipeline clock 1 November: every case's respond and resolve are
    decided. Due and met times by hand; the alerts are the red alerts the worker would send."""
    sink = fresh(client, "ct_charge")
    d = 12
    cases = [
        # R1: U1 let the respond run out (red with U1 at 12:00), the centre re-dispatched to U2
        # (respond cycle 1), U2 answered and resolved on time
        case_row("R1", unit="U2", holder_unit="U2", reassigned_count=1, created=at(d, 8),
                 responded_at=at(d, 13, 30), respond_due=at(d + 1, 23, 59),
                 resolved_at=at(d + 1, 10), resolve_due=at(d + 5, 23, 59)),
        # R2: U2 answered late (red with U2)
        case_row("R2", unit="U2", created=at(d, 8), responded_at=at(d + 2, 9),
                 respond_due=at(d + 1, 23, 59)),
        # R3: U1 returned it, it sat with the centre when the respond ran out (red without a
        # unit), then was dispatched to U2, which answered after the due: charged to nobody
        case_row("R3", unit="U2", returned_count=1, created=at(d, 8), responded_at=at(d + 2, 15),
                 respond_due=at(d + 1, 23, 59)),
        # R4: U3 answered late and no alert landed: the late respond stays with the case's unit
        case_row("R4", unit="U3", created=at(d, 8), responded_at=at(d + 3, 9),
                 respond_due=at(d + 1, 23, 59)),
        # R5: reopened (cycle 1); cycle 0's resolve ran out under U3, the current one is on time
        case_row("R5", unit="U3", cycle=1, reopen_count=1, created=at(d, 8),
                 responded_at=at(d, 9), respond_due=at(d + 1, 23, 59),
                 resolved_at=at(d + 9, 10), resolve_due=at(d + 12, 23, 59)),
        # R6: a red later retracted (the answer arrived late but was on time): not charged
        case_row("R6", unit="U3", created=at(d, 8), responded_at=at(d, 10),
                 respond_due=at(d + 1, 23, 59)),
        # R7: cancelled: out of every rate, its red included
        case_row("R7", unit="U1", status="cancelled", created=at(d, 8), respond_due=at(d, 12)),
    ]
    sink.insert_json("cases", cases)
    sink.insert_json("alerts", [
        alert("R1", "respond", 0, "U1", at(d, 12)),
        alert("R2", "respond", 0, "U2", at(d + 1, 23, 59)),
        alert("R3", "respond", 0, None, at(d + 1, 23, 59)),
        alert("R5", "resolve", 0, "U3", at(d + 5, 23, 59)),
        alert("R6", "respond", 0, "U3", at(d + 1, 23, 59), retracted=True),
        alert("R7", "respond", 0, "U1", at(d, 12)),
    ])
    sink.insert_json("pipeline_clock", [orjson.dumps(
        {"name": "main", "clock": at(1, 0, month=11), "version": 1})])
    return client, "ct_charge"


def test_rankings_charge_overdue_to_the_unit_that_held_the_case(ranking_db):
    client, db = ranking_db
    got = client.query(f"SELECT unit, cases, response_rate, on_time_rate, satisfaction_rate, score, "
                       f"unit_rank, overdue FROM {db}.unit_rankings_monthly "
                       f"ORDER BY unit_rank").result_rows
    assert got == [
        # U3: respond R4 late (no alert: its own), R5 and R6 on time -> 2/3; resolve R5's
        # current cycle on time -> 1/1 (the late cycle 0 was reopened away, as in the 三率)
        ("U3", 3, pytest.approx(2 / 3), 1.0, None, pytest.approx((2 / 3 + 1) / 2), 1, 1),
        # U2: respond R1 on time, R2 late (its red), R3 late but charged to nobody -> 1/2;
        # resolve R1 on time -> 1/1
        ("U2", 3, 0.5, 1.0, None, 0.75, 2, 1),
        # U1 holds no case now, but R1's respond ran out while it held it -> 0/1
        ("U1", 0, 0.0, None, None, 0.0, 3, 1),
    ]


def test_report_and_page_show_return_rate_and_dispatch_accuracy(dispatch_db):
    client, db = dispatch_db
    client.command(f"INSERT INTO {db}.pipeline_clock VALUES ('main', '2026-10-06 00:00:00', 1)")
    buffer = io.StringIO()
    print_report(client, db, Console(file=buffer, width=240, color_system=None))
    text = buffer.getvalue()
    # 370102 over both days: accuracy 2 of 6 first dispatches; returns 5 of 10 dispatches
    assert "派单准确率" in text and "退单率" in text
    row = next(line for line in text.splitlines() if "370102" in line)
    assert [c.strip() for c in row.split("│")[-3:-1]] == ["33.3%", "50.0%"]
    row = next(line for line in text.splitlines() if "370103" in line)
    assert [c.strip() for c in row.split("│")[-3:-1]] == ["100.0%", "0.0%"]
    # units by returns: U1 3 of 4, then U2 and U3 1 of 3 each
    units = [line.split("│")[1:6] for line in text.splitlines()
             if line.startswith("│") and line.split("│")[1].strip() in ("U1", "U2", "U3", "U9")]
    assert [[c.strip() for c in u] for u in units] == [
        ["U1", "hotline", "4", "3", "75.0%"], ["U2", "hotline", "3", "1", "33.3%"],
        ["U3", "hotline", "3", "1", "33.3%"]]
    page = build_html(client, db)
    assert "<td>370102</td>" in page and "<td>33.3%</td><td>50.0%</td></tr>" in page
    assert "<tr><td>U1</td><td>hotline</td><td>4</td><td>3</td><td>75.0%</td></tr>" in page



def test_report_lists_the_units_charged_with_overdue(ranking_db):
    client, db = ranking_db
    buffer = io.StringIO()
    print_report(client, db, Console(file=buffer, width=240, color_system=None))
    text = buffer.getvalue()
    assert "units charged with the most overdue milestones, 2026-10" in text
    rows = [[c.strip() for c in line.split("│")[1:6]] for line in text.splitlines()
            if line.startswith("│") and line.split("│")[1].strip() in ("U1", "U2", "U3")]
    # one late milestone each (see the ranking test); U1 first: the lowest score
    assert rows == [["U1", "hotline", "3", "0.0%", "1"], ["U2", "hotline", "2", "75.0%", "1"],
                    ["U3", "hotline", "1", "83.3%", "1"]]
