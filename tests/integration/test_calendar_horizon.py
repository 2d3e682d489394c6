"""Issue 11's repro: a 疑难 12345 order created 2026-11-20 reaches 2027, a year chinese-calendar
1.11 does not know. The replay completes (it used to hang with a dead worker agent) and the
instants past the official calendar land marked provisional."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime

import pytest

from tests.conftest import cn

pytestmark = pytest.mark.integration


def test_replay_past_the_official_calendar_completes_with_provisional_instants(tmp_path):
    export = tmp_path / "h.csv"
    export.write_bytes("工单编号,来电时间,紧急程度,区县编码\nGDC001,2026-11-20 09:00:00,疑难,370102\n"
                       .encode("gbk"))
    var = tmp_path / "var"
    done = subprocess.run(
        [sys.executable, "-m", "civicflow", "replay", "--format", "12345", str(export),
         "--var-dir", str(var), "--as-of", "2027-02-01T00:00:00+08:00"],
        capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    # chDB opens one data path per process: read it from another one
    query = ("import json, sys; from sinks.clickhouse import connect; "
             "rows = connect(sys.argv[1]).query('SELECT alert_id, toString(fires_at), provisional "
             "FROM civicflow.alerts FINAL WHERE NOT retracted ORDER BY fires_at').result_rows; "
             "print(json.dumps(rows))")
    read = subprocess.run([sys.executable, "-c", query, f"chdb://{(var / 'clickhouse').resolve()}"],
                          capture_output=True, text=True, timeout=120, check=True)
    rows = [(aid, datetime.fromisoformat(at), provisional)
            for aid, at, provisional in json.loads(read.stdout.splitlines()[-1])]
    official_until = cn(2027, 1, 1).astimezone(UTC).replace(tzinfo=None)
    assert rows, "no alert landed"
    assert all(provisional == (fires_at > official_until) for _, fires_at, provisional in rows)
    suffixes = {aid.split(":", 3)[3]: fires_at for aid, fires_at, _ in rows}
    # 45 working days, counted by hand in tests/unit/test_calendar.py: 24:00 Mon 2027-01-25
    assert suffixes["resolve:0:escalation3"] == cn(2027, 1, 26).astimezone(UTC).replace(tzinfo=None)
