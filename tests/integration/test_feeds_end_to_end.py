"""Real feeds through the whole stack: the NYC 311 export lands whole; ingest prints its
accounting (no personal data anywhere: tests/integration/test_no_personal_data.py)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from civicflow.embedded import embedded_broker
from civicflow.pipeline import replay
from civicflow.settings import Settings
from producers.simulator import hotline_csv, simulate_hotline

pytestmark = pytest.mark.integration
# ../shared next to the checkout (/work/main) or next to the worktrees' folder (/work/wt/NAME)
SHARED = next(p / "shared" for p in Path(__file__).parents if (p / "shared" / "data").is_dir())
EXPORT = SHARED / "data" / "nyc311" / "311_service_requests_2022-05-01_sample.csv"


def test_nyc311_export_lands_924_cases_480_resolved(chdb_var):
    settings = Settings(var_dir=chdb_var, partitions=2, database="it_nyc")
    result, sink = replay(settings, [("nyc311", EXPORT)], None, lambda _m: None)
    assert (result.tally.read, result.tally.rejected) == (924, 0)
    cases, resolved, with_due = sink.client.query(
        "SELECT count(), countIf(resolved_at IS NOT NULL), countIf(resolve_due IS NOT NULL) "
        "FROM it_nyc.cases FINAL").result_rows[0]
    assert (cases, resolved, with_due) == (924, 480, 924)
    # no Due Date in the export: 120 h after creation, so nothing is overdue by 02:06 that night
    assert sink.client.query("SELECT count() FROM it_nyc.alerts FINAL").result_rows[0][0] == 0


def test_ingest_command_prints_the_accounting(tmp_path):
    rows = simulate_hotline(days=1, cases_per_day=10, districts=1)
    export = tmp_path / "h.csv"
    export.write_bytes(hotline_csv(rows, "utf-8"))
    with embedded_broker(tmp_path, 2) as bootstrap:
        proc = subprocess.run(
            [sys.executable, "-m", "civicflow", "ingest", "--format", "12345", str(export),
             "--bootstrap", bootstrap, "--var-dir", str(tmp_path / "var")], capture_output=True,
            text=True, timeout=120,
            env={**os.environ, "COLUMNS": "200"})
    assert proc.returncode == 0, proc.stderr
    line = next(ln for ln in proc.stdout.splitlines() if ln.startswith("records read"))
    numbers = [int(x) for x in line.replace("(", " ").split() if x.isdigit()]
    read, produced, rejected, duplicates = numbers[:4]
    assert (read, rejected, duplicates) == (len(rows), 1, 1)
    assert read == produced + rejected + duplicates
    down = subprocess.run(
        [sys.executable, "-m", "civicflow", "ingest", "--format", "12345", str(export),
         "--bootstrap", "127.0.0.1:1"], capture_output=True, text=True, timeout=120)
    assert down.returncode != 0 and "cannot reach Kafka" in down.stderr
    assert "Traceback" not in down.stderr
