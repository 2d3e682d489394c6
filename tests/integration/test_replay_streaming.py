"""The streaming replay (sorted runs on disk, merged into the producer) lands exactly what the
in-memory replay of before landed, and its process does not grow with the input."""

from __future__ import annotations

import gzip
import json
import os
import signal
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

import pytest

from civicflow.pipeline import replay
from civicflow.settings import Settings
from tests.fixtures.recorded.record import dump, month_feeds

pytestmark = pytest.mark.integration
RECORDED = Path(__file__).parent.parent / "fixtures" / "recorded"


def test_month_replay_in_many_sort_runs_lands_what_the_in_memory_replay_landed(chdb_var, tmp_path):
    """Every column of cases FINAL and alerts FINAL, as recorded from the in-memory replay
    (tests/fixtures/recorded/month_grid.json.gz, commit 6f59cae). Sort runs of 400 events make
    the ~3,400 events of the month spill into 9 runs, so the merge and the de-duplication across
    runs (the feed repeats ~1% of its lines, some many lines apart) are what is tested."""
    recorded = json.loads(gzip.decompress((RECORDED / "month_grid.json.gz").read_bytes()))
    db = "it_month_streaming"
    settings = Settings(var_dir=chdb_var, partitions=3, database=db, sort_run_events=400)
    messages: list[str] = []
    result, sink = replay(settings, month_feeds(tmp_path), None, messages.append)
    assert any("in 9 runs on disk" in m for m in messages), messages
    assert result.as_of.isoformat() == recorded["as_of"]
    landed = json.loads(json.dumps(dump(sink.client, db)))
    for table in ("cases", "alerts"):
        assert landed[table]["columns"] == recorded[table]["columns"]
        assert len(landed[table]["rows"]) == len(recorded[table]["rows"]) > 500
        assert landed[table]["rows"] == recorded[table]["rows"]
