"""The worker lands exactly what the worker before the rewrite of issue 12 landed: cases and
alerts, every column, on a simulated month of grid events and a 14-day city with all three
feeds (recorded by tests/fixtures/recorded/record.py with commit 6f59cae)."""

from __future__ import annotations

import gzip
import json
import sys
from pathlib import Path

import pytest

from civicflow.pipeline import replay
from civicflow.settings import Settings

pytestmark = pytest.mark.integration
RECORDED = Path(__file__).parent.parent / "fixtures" / "recorded"
sys.path.insert(0, str(RECORDED))
import record  # noqa: E402


@pytest.mark.parametrize("which", ["month", "city"])
def test_replay_lands_exactly_the_recorded_cases_and_alerts(which, chdb_var, tmp_path):
    name = "month_grid" if which == "month" else "city"
    expected = json.loads(gzip.decompress((RECORDED / f"{name}.json.gz").read_bytes()))
    feeds = (record.month_feeds if which == "month" else record.city_feeds)(tmp_path)
    db = f"it_recorded_{which}"
    result, sink = replay(Settings(var_dir=chdb_var, partitions=3, database=db), feeds, None,
                          lambda _m: None)
    assert result.as_of.isoformat() == expected["as_of"]
    got = record.dump(sink.client, db)
    for table in ("cases", "alerts"):
        columns = expected[table]["columns"]
        assert set(columns) <= set(got[table]["columns"]), f"{table} lost a column"
        index = [got[table]["columns"].index(c) for c in columns]
        rows = [[row[i] for i in index] for row in got[table]["rows"]]
        assert len(rows) == len(expected[table]["rows"]) > 100
        assert rows == expected[table]["rows"], f"{table} differs from the recorded replay"
