"""A hand-written grid feed through the real embedded stack (Tansu, Faust worker, sink, chDB).

Every expected figure below was worked out by hand from the "123" rule and the 2026 calendar
(Mon 10-19 .. Fri 10-23 are working days; 10-17/18 a weekend), as of Wed 10-21 12:00.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from civicflow.pipeline import replay
from civicflow.settings import Settings
from tests.conftest import cn

pytestmark = pytest.mark.integration
FIXTURE = Path(__file__).parent.parent / "fixtures" / "grid_small.jsonl"
AS_OF = cn(2026, 10, 21, 12, 0)


def utc(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(tzinfo=None)


@pytest.fixture(scope="module")
def landed(chdb_var):
    settings = Settings(var_dir=chdb_var, partitions=2, database="it_grid_small")
    messages: list[str] = []
    result, sink = replay(settings, [("jn-grid", FIXTURE)], AS_OF, messages.append)
    return result, sink.client, settings.database


def test_accounting_line(landed):
    result, _, _ = landed
    t = result.tally
    assert (t.read, t.produced, t.rejected, t.duplicates) == (20, 18, 1, 1)


def test_events_and_rejects_landed_once(landed):
    _, client, db = landed
    assert client.query(f"SELECT count() FROM {db}.events FINAL").result_rows[0][0] == 18
    reasons = client.query(f"SELECT line, reason FROM {db}.rejects FINAL").result_rows
    assert len(reasons) == 1 and reasons[0][0] == 20 and "事件类型" in reasons[0][1]


def test_cases_match_hand_worked_state(landed):
    _, client, db = landed
    rows = client.query(
        f"SELECT case_id, status, reopen_count, escalation_level, respond_due, resolve_due, "
        f"satisfaction, responded_at FROM {db}.cases FINAL ORDER BY case_id").result_rows
    got = {r[0].rsplit(":", 1)[1]: r[1:] for r in rows}
    assert set(got) == {"A", "B", "C", "D", "E"}
    assert got["A"][:3] == ("closed", 0, 0)
    assert got["B"][:5] == ("dispatched", 0, 2, utc(cn(2026, 10, 20)), utc(cn(2026, 10, 21)))
    assert got["C"][:2] == ("reopened", 1)
    assert got["C"][4] == utc(cn(2026, 10, 23))  # cycle 1 from Tue 13:00: Wed + Thu
    assert got["C"][5] == "unsatisfied"
    assert got["D"][0] == "cancelled"
    assert got["E"][0] == "responded" and got["E"][4] == utc(cn(2026, 10, 22))  # 2 + 2 extended


def test_alerts_match_hand_worked_instants(landed):
    _, client, db = landed
    rows = client.query(
        f"SELECT alert_id, fires_at, due_at, retracted FROM {db}.alerts FINAL ORDER BY alert_id"
    ).result_rows
    got = {r[0].split(":", 2)[2]: (r[1], r[2]) for r in rows}
    expected = {
        "B:respond:0:yellow": (cn(2026, 10, 19, 19, 12), cn(2026, 10, 20)),
        "B:respond:0:red": (cn(2026, 10, 20), cn(2026, 10, 20)),
        "B:respond:0:escalation1": (cn(2026, 10, 20, 12, 0), cn(2026, 10, 20)),
        "B:respond:0:escalation2": (cn(2026, 10, 21), cn(2026, 10, 20)),
        "B:resolve:0:yellow": (cn(2026, 10, 20, 14, 24), cn(2026, 10, 21)),
        "B:resolve:0:red": (cn(2026, 10, 21), cn(2026, 10, 21)),
        "B:feedback:0:yellow": (cn(2026, 10, 21, 9, 36), cn(2026, 10, 22)),
        "C:respond:0:yellow": (cn(2026, 10, 19, 19, 12), cn(2026, 10, 20)),
        "E:resolve:0:yellow": (cn(2026, 10, 21, 4, 48), cn(2026, 10, 22)),
        "E:feedback:0:yellow": (cn(2026, 10, 20, 9, 36), cn(2026, 10, 21)),
        "E:feedback:0:red": (cn(2026, 10, 21), cn(2026, 10, 21)),
    }
    assert got == {k: (utc(f), utc(d)) for k, (f, d) in expected.items()}
    assert not any(r[3] for r in rows)


def test_unit_rates_daily_gives_the_three_rates(landed):
    _, client, db = landed
    row = client.query(
        f"SELECT sum(created), sum(respond_due_count), sum(responded_on_time), "
        f"sum(resolve_due_count), sum(resolved_on_time), sum(resolved), sum(surveyed), "
        f"sum(satisfied), sum(overdue_open) FROM {db}.unit_rates_daily WHERE district = '370102'"
    ).result_rows[0]
    # A, B, C, E count (D cancelled); B is the one overdue open case
    assert tuple(row) == (4, 4, 3, 2, 1, 1, 2, 1, 1)
    clock = client.query(f"SELECT clock FROM {db}.current_clock").result_rows[0][0]
    assert clock == utc(AS_OF)


def test_overdue_list_names_the_unanswered_case(landed):
    _, client, db = landed
    rows = client.query(
        f"SELECT case_id, milestone, overdue_seconds FROM {db}.overdue_open_cases "
        "ORDER BY overdue_seconds DESC").result_rows
    # B: respond due 10-20 00:00, 36 h before the clock. E: feedback due 10-21 00:00, 12 h.
    assert [(r[0].rsplit(":", 1)[1], r[1], r[2]) for r in rows] == [
        ("B", "respond", 36 * 3600), ("E", "feedback", 12 * 3600)]



def test_explain_tells_why_each_alert_fired(landed, chdb_var, capsys):
    from civicflow import commands
    from civicflow.cli import build_parser

    _, _, db = landed
    args = build_parser().parse_args(["explain", "grid:jn-grid:E"])
    assert commands.cmd_explain(Settings(var_dir=chdb_var, database=db), args) == 0
    text = capsys.readouterr().out
    assert "extended to 4 working day(s) at 2026-10-16 12:00:00" in text
    assert ("working days counted (start day not counted, each ends at 24:00): "
            "2026-10-16, 2026-10-19, 2026-10-20, 2026-10-21\n") in text
    assert "yellow       2026-10-21 04:48:00  FIRED: milestone still unmet at that instant" in text
    assert "red          2026-10-22 00:00:00  not yet reached" in text
    assert "not fired: met at 2026-10-15 10:00:00, before the instant" in text
    assert "alerts in ClickHouse: 3" in text


def test_explain_unknown_case_is_a_clear_error(landed, chdb_var):
    from civicflow import commands
    from civicflow.cli import build_parser
    from schemas import ConfigError

    _, _, db = landed
    args = build_parser().parse_args(["explain", "grid:jn-grid:NOPE"])
    with pytest.raises(ConfigError, match="no events for case"):
        commands.cmd_explain(Settings(var_dir=chdb_var, database=db), args)
