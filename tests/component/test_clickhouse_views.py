"""Migrations and BI views on a real chDB: upgrade path, idempotent re-delivery, rankings,
hotspots and repeat calls — expected figures written by hand from the rows inserted."""

from __future__ import annotations

from datetime import date, datetime, timedelta

import orjson
import pytest

from sinks.clickhouse import ClickHouseSink, connect
from sinks.maintenance import optimize, partitions_to_merge
from sinks.migrate import migrate, migration_files

pytestmark = pytest.mark.component


@pytest.fixture(scope="module")
def client(chdb_var):
    return connect(f"chdb://{(chdb_var / 'clickhouse').resolve()}")


def fresh(client, name: str) -> ClickHouseSink:
    client.command(f"DROP DATABASE IF EXISTS {name}")
    migrate(client, name)
    return ClickHouseSink(client, name)


def iso(day: date, hour: int = 10) -> str:
    return datetime(day.year, day.month, day.day, hour).isoformat() + "+08:00"


def case_row(case_id: str, day: date, **extra: object) -> bytes:
    row = {"case_id": case_id, "source": "grid", "system": "jn-grid", "district": "370102",
           "street": "370102001", "category": "G07.01", "urgency": "normal", "unit": "U1",
           "status": "closed", "created_at": iso(day), "reopen_count": 0, "escalation_level": 0,
           "cycle": 0, "version": 1}
    row.update(extra)
    return orjson.dumps(row)


def test_upgrade_from_the_first_migration_keeps_data(client):
    """Rows written under the first migration read right through every view after the rest:
    figures worked out by hand for two cases and three calls."""
    client.command("DROP DATABASE IF EXISTS ct_upgrade")
    assert migrate(client, "ct_upgrade", upto=1) == ["0001_contract_tables.sql"]
    sink = ClickHouseSink(client, "ct_upgrade")
    old = {"event_id": "e1", "case_id": "grid:jn-grid:1", "source": "grid", "system": "jn-grid",
           "type": "created", "occurred_at": "2026-10-03T09:15:00+08:00", "category": "G07.01",
           "urgency": "normal", "schema_version": 1, "district": "370102", "caller_hash": "h1"}
    sink.insert_json("events", [orjson.dumps(old), orjson.dumps(
        {**old, "event_id": "e3", "case_id": "grid:jn-grid:3",  # the same caller 10 days later
         "occurred_at": "2026-10-13T09:15:00+08:00"})])
    day = date(2026, 10, 3)
    sink.insert_json("cases", [
        # answered and resolved in time, satisfied
        case_row("grid:jn-grid:1", day, responded_at=iso(day, 10), respond_due=iso(day, 23),
                 resolved_at=iso(day, 15), resolve_due=iso(day + timedelta(days=2)),
                 satisfaction="satisfied"),
        # still open, never answered: overdue at the clock
        case_row("grid:jn-grid:2", day, status="dispatched", respond_due=iso(day, 23),
                 resolve_due=iso(day + timedelta(days=2))),
    ])
    sink.insert_json("pipeline_clock", [orjson.dumps({"name": "main", "clock": iso(day + timedelta(days=7)),
                                                      "version": 1})])
    applied = migrate(client, "ct_upgrade")
    assert applied == [name for _, name, _ in migration_files()][1:]
    assert migrate(client, "ct_upgrade") == []  # safe to re-run
    sink.insert_json("events", [orjson.dumps({**old, "event_id": "e2", "type": "resolved",
                                              "due_at": "2026-10-05T09:15:00+08:00"})])
    rows = client.query("SELECT event_id, due_at FROM ct_upgrade.events FINAL ORDER BY event_id").result_rows
    assert rows == [("e1", None), ("e2", datetime(2026, 10, 5, 1, 15)), ("e3", None)]

    def view(sql: str) -> list[tuple]:
        return [tuple(r) for r in client.query(sql.replace("{db}", "ct_upgrade")).result_rows]
    # created 2; respond due 2 (one met, one past due), 1 on time; resolve due 2, 1 on time;
    # resolved 1, surveyed 1, satisfied 1; overdue open 1
    assert view(RATE_SUMS.format(db="{db}", view="unit_rates_daily")) == [(2, 2, 1, 2, 1, 1, 1, 1, 1)]
    assert view("SELECT case_id FROM {db}.overdue_open_cases") == [("grid:jn-grid:2",)]
    assert view("SELECT month, unit, cases, response_rate, on_time_rate, satisfaction_rate, unit_rank "
                "FROM {db}.unit_rankings_monthly") == [(date(2026, 10, 1), "U1", 2, 0.5, 0.5, 1.0, 1)]
    assert view("SELECT count() FROM {db}.category_hotspots") == [(0,)]  # no 28-day baseline
    assert view("SELECT day, category, calls, repeat_calls FROM {db}.repeat_calls_daily ORDER BY day") == [
        (day, "G07.01", 1, 0), (date(2026, 10, 13), "G07.01", 1, 1)]


def test_a_batch_delivered_twice_leaves_one_row_per_key_everywhere(client):
    sink = fresh(client, "ct_dupes")
    day = date(2026, 10, 12)
    cases = [case_row(f"grid:jn-grid:{i}", day, responded_at=iso(day, 11), respond_due=iso(day, 23))
             for i in range(50)]
    alert = orjson.dumps({"alert_id": "a:respond:0:red", "case_id": "a", "source": "grid",
                          "category": "G07.01", "milestone": "respond", "cycle": 0, "level": "red",
                          "due_at": iso(day), "fires_at": iso(day), "emitted_at": iso(day),
                          "retracted": False})
    clock = orjson.dumps({"name": "main", "clock": iso(day + timedelta(days=3)), "version": 1})
    for _ in range(2):
        sink.insert_json("cases", cases)
        sink.insert_json("alerts", [alert])
        sink.insert_json("pipeline_clock", [clock])
    assert client.query("SELECT count() FROM ct_dupes.cases").result_rows[0][0] == 100  # before merge
    assert client.query("SELECT count() FROM ct_dupes.cases FINAL").result_rows[0][0] == 50
    assert client.query("SELECT count() FROM ct_dupes.alerts FINAL").result_rows[0][0] == 1
    assert client.query(
        "SELECT sum(created), sum(respond_due_count), sum(responded_on_time) "
        "FROM ct_dupes.unit_rates_daily").result_rows[0] == (50, 50, 50)


def test_monthly_ranking_and_rank_change(client):
    sink = fresh(client, "ct_rank")
    rows = []
    # September: U1 answers all on time, U2 none. October: the other way round.
    for month, good, bad in ((date(2026, 9, 10), "U1", "U2"), (date(2026, 10, 10), "U2", "U1")):
        for i in range(4):
            rows.append(case_row(f"{month}-{good}-{i}", month, unit=good, responded_at=iso(month, 11),
                                 respond_due=iso(month, 12)))
            rows.append(case_row(f"{month}-{bad}-{i}", month, unit=bad, respond_due=iso(month, 12)))
    sink.insert_json("cases", rows)
    sink.insert_json("pipeline_clock", [orjson.dumps({"name": "main", "clock": iso(date(2026, 11, 1)),
                                                      "version": 1})])
    got = client.query("SELECT month, unit, response_rate, unit_rank, previous_rank, rank_change "
                       "FROM ct_rank.unit_rankings_monthly ORDER BY month, unit").result_rows
    assert got == [
        (date(2026, 9, 1), "U1", 1.0, 1, None, None),
        (date(2026, 9, 1), "U2", 0.0, 2, None, None),
        (date(2026, 10, 1), "U1", 0.0, 2, 1, -1),
        (date(2026, 10, 1), "U2", 1.0, 1, 2, 1),
    ]


def test_category_hotspot_against_its_28_day_baseline(client):
    sink = fresh(client, "ct_hot")
    start = date(2026, 9, 1)
    rows = []
    for offset in range(0, 28, 4):  # 7 cases in 28 days: baseline mean 0.25 a day
        rows.append(case_row(f"b{offset}", start + timedelta(days=offset)))
    spike = start + timedelta(days=28)
    rows += [case_row(f"s{i}", spike) for i in range(5)]  # 5 > 0.25 + 3 * 0.5
    for offset in range(29):  # a busy category: 2 a day every day, never a hotspot
        rows += [case_row(f"n{offset}-{i}", start + timedelta(days=offset), category="G05.01")
                 for i in range(2)]
    sink.insert_json("cases", rows)
    got = client.query("SELECT day, category, cases, baseline_mean FROM ct_hot.category_hotspots").result_rows
    assert got == [(spike, "G07.01", 5, 0.25)]


def test_repeat_calls_are_counted_never_shown(client):
    sink = fresh(client, "ct_repeat")

    def call(event_id: str, day: date, caller: str, category: str = "H03") -> bytes:
        return orjson.dumps({"event_id": event_id, "case_id": f"hotline:12345:{event_id}",
                             "source": "hotline", "system": "12345", "type": "created",
                             "occurred_at": iso(day), "district": "370102", "category": category,
                             "urgency": "normal", "caller_hash": caller, "schema_version": 1})
    d0 = date(2026, 9, 1)
    sink.insert_json("events", [
        call("1", d0, "h1"), call("2", d0 + timedelta(days=10), "h1"),  # repeat (10 days)
        call("3", d0 + timedelta(days=50), "h1"),  # 40 days after the last one: not a repeat
        call("4", d0 + timedelta(days=12), "h1", "H05"),  # another category: not a repeat
        call("5", d0 + timedelta(days=10), "h2"),
    ])
    rows = client.query("SELECT * FROM ct_repeat.repeat_calls_daily ORDER BY day, category").result_rows
    assert [(r[0], r[3], r[4], r[5]) for r in rows] == [
        (d0, "H03", 1, 0), (d0 + timedelta(days=10), "H03", 2, 1), (d0 + timedelta(days=12), "H05", 1, 0),
        (d0 + timedelta(days=50), "H03", 1, 0)]
    columns = [c[0] for c in client.query("DESCRIBE ct_repeat.repeat_calls_daily").result_rows]
    assert "caller_hash" not in columns


RATE_SUMS = ("SELECT sum(created), sum(respond_due_count), sum(responded_on_time), "
             "sum(resolve_due_count), sum(resolved_on_time), sum(resolved), sum(surveyed), "
             "sum(satisfied), sum(overdue_open) FROM {db}.{view}")


def rate_cases(day: date) -> list[bytes]:
    """One case per branch of the 三率 counting (pipeline clock: day + 3, 10:00)."""
    return [
        case_row("on-time", day, responded_at=iso(day, 11), respond_due=iso(day, 12),
                 resolved_at=iso(day, 15), resolve_due=iso(day, 18), satisfaction="satisfied"),
        case_row("late", day, responded_at=iso(day, 13), respond_due=iso(day, 12),
                 resolved_at=iso(day + timedelta(days=2), 9), resolve_due=iso(day, 18),
                 satisfaction="unsatisfied"),
        case_row("overdue", day, status="dispatched", respond_due=iso(day, 12),
                 resolve_due=iso(day + timedelta(days=1))),
        case_row("not-due-yet", day, status="responded", responded_at=iso(day, 11),
                 respond_due=iso(day, 12), resolve_due=iso(day + timedelta(days=9))),
        case_row("no-due", day, satisfaction="basically_satisfied"),
        case_row("cancelled", day, status="cancelled", respond_due=iso(day, 12)),
    ]


def test_rate_columns_answer_the_same_for_rows_written_before_them(client):
    day = date(2026, 10, 12)
    clock = orjson.dumps({"name": "main", "clock": iso(day + timedelta(days=3)), "version": 1})
    client.command("DROP DATABASE IF EXISTS ct_rates_old")
    migrate(client, "ct_rates_old", upto=5)
    old = ClickHouseSink(client, "ct_rates_old")
    old.insert_json("cases", rate_cases(day))
    old.insert_json("pipeline_clock", [clock])
    before = client.query(RATE_SUMS.format(db="ct_rates_old", view="unit_rates_daily")).result_rows
    # by hand: 5 cases not cancelled; respond due: on-time, late, overdue, not-due-yet (met);
    # resolve due: on-time, late, overdue (past due); not-due-yet's resolve due is after the clock
    assert before == [(5, 4, 2, 3, 1, 2, 3, 2, 1)]
    migrate(client, "ct_rates_old")  # the rate columns arrive after the rows
    new = fresh(client, "ct_rates_new")  # the rate columns are written with the rows
    new.insert_json("cases", rate_cases(day))
    new.insert_json("pipeline_clock", [clock])
    for db in ("ct_rates_old", "ct_rates_new"):
        for view in ("unit_rates_daily", "district_rates_daily"):
            assert client.query(RATE_SUMS.format(db=db, view=view)).result_rows == before, (db, view)
    new.insert_json("cases", rate_cases(day))  # a second version of every row
    assert partitions_to_merge(client, "ct_rates_new", "cases") == [("all", 2, 12)]
    assert optimize(client, "ct_rates_new", lambda _m: None) == 1
    assert partitions_to_merge(client, "ct_rates_new", "cases") == []
    assert client.query("SELECT count() FROM ct_rates_new.cases").result_rows[0][0] == 6
    assert client.query(RATE_SUMS.format(db="ct_rates_new", view="unit_rates_daily")).result_rows == before


def test_a_truncated_dead_letter_keeps_its_flag_and_size(client):
    from producers.base import Reject
    from schemas.enums import Source

    sink = fresh(client, "cv_rejects")
    big = Reject("jn-grid", Source.GRID, "g.jsonl", 2, "size: line of 52428800 bytes", "x" * 9000,
                 True, 52_428_800)
    small = Reject("jn-grid", Source.GRID, "g.jsonl", 3, "json: bad", "{")
    old_style = orjson.dumps({"format": "sink", "source": "events", "file": "events", "line": 0,
                              "reason": "refused", "raw": "{}"})
    sink.insert_json("rejects", [big.to_json(), small.to_json(), old_style])
    rows = client.query("SELECT line, truncated, size, length(raw) FROM cv_rejects.rejects "
                        "ORDER BY line, reason").result_rows
    assert rows == [(0, False, 0, 2), (2, True, 52_428_800, 4096), (3, False, 1, 1)]
