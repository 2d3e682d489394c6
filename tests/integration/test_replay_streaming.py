"""The streaming replay (sorted runs on disk, merged into the producer) lands exactly what the
in-memory replay of before landed, and its process does not grow with the input."""

from __future__ import annotations

import contextlib
import gzip
import json
import os
import signal
import subprocess
import sys
import time
from datetime import date, timedelta
from pathlib import Path

import pytest

import schemas
from civicflow.pipeline import read_feeds
from civicflow.settings import Settings
from producers.simulator import hotline_csv, simulate_hotline
from sinks.clickhouse import connect
from tests.fixtures.recorded.record import dump, month_feeds

pytestmark = pytest.mark.integration
RECORDED = Path(__file__).parent.parent / "fixtures" / "recorded"
SMALL_GRID = Path(__file__).parent.parent / "fixtures" / "grid_small.jsonl"


def test_month_replay_in_many_sort_runs_lands_what_the_in_memory_replay_landed(chdb_var, tmp_path,
                                                                                 capsys, calendar):
    """Every column of cases FINAL and alerts FINAL, as recorded from the in-memory replay
    (tests/fixtures/recorded/month_grid.json.gz, commit 6f59cae). Sort runs of 400 events make
    the ~3,400 events of the month spill into 9 runs, so the merge and the de-duplication across
    runs (the feed repeats ~1% of its lines, some many lines apart) are what is tested. Run as
    `civicflow replay --policy` with a copy of the default policy (so what lands is what was
    recorded): the what-if table, from case-grouped runs on disk in chunks, has the figures
    computed over every event in memory."""
    from civicflow import commands
    from civicflow.cli import build_parser
    from schemas.policy import load_policy
    from streams.whatif import compare_policies

    recorded = json.loads(gzip.decompress((RECORDED / "month_grid.json.gz").read_bytes()))
    db = "it_month_streaming"
    same = tmp_path / "same.toml"
    same.write_bytes((Path(schemas.__file__).parent / "default_policy.toml").read_bytes())
    settings = Settings(var_dir=chdb_var, partitions=3, database=db, sort_run_events=400,
                        policy=same)
    feeds = month_feeds(tmp_path)
    args = build_parser().parse_args(["replay", "--format", "jn-grid", str(feeds[0][1])])
    assert commands.cmd_replay(settings, args) == 0
    printed = capsys.readouterr()
    assert "in 9 runs on disk" in printed.err
    events, _, tally = read_feeds(feeds)  # the in-memory reading of before: one set of all ids
    assert f"{tally.line()}" in printed.err.replace("\n", " ") and tally.duplicates > 20
    assert f"replayed {len(events):,} events as of {recorded['as_of']}" in printed.err

    landed = json.loads(json.dumps(dump(connect(settings.clickhouse_dsn()), db)))
    for table in ("cases", "alerts"):
        columns = recorded[table]["columns"]  # the worker may have added columns since
        index = [landed[table]["columns"].index(column) for column in columns]
        rows = [[row[i] for i in index] for row in landed[table]["rows"]]
        assert len(rows) == len(recorded[table]["rows"]) > 500
        assert rows == recorded[table]["rows"]

    as_of = events[-1].occurred_at
    whole = compare_policies(events, [load_policy()], calendar, as_of)
    overdue = sum(r.overdue[0] for r in whole)
    assert overdue > 20
    total = next(line for line in printed.out.splitlines() if line.strip("│ ").startswith("all"))
    assert [cell.strip() for cell in total.strip("│ ").split("│")][-4:] == [
        str(sum(r.cases for r in whole)), str(overdue), str(overdue), "+0"]
    for row in whole[:5]:  # per district and unit too
        assert any(line.split("│")[1:6] and [c.strip() for c in line.split("│")[1:6]] == [
            row.district, row.unit, str(row.cases), str(row.overdue[0]), str(row.overdue[0])]
            for line in printed.out.splitlines())


def _civicflow(args: list[str], env: dict[str, str]) -> subprocess.Popen[str]:
    # a session of its own: the whole stack (CLI, broker, worker) is killed at once at the end
    return subprocess.Popen([sys.executable, "-m", "civicflow", *args], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True, env={**os.environ, **env},
                            start_new_session=True)


def _kill_group(proc: subprocess.Popen[str]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def _peak_kb(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmHWM:")))


def _replay_peaks(files: list[Path], var: Path) -> tuple[int, int, int]:
    """The replay CLI's peak RSS (kB) once every input is read and sorted (before anything is
    produced: where the replay of before held every event), and once every event is produced;
    and the number of sort runs. The stack is killed then: the worker's pace is not the point."""
    env = {"CIVICFLOW_SORT_RUN_EVENTS": "20000", "CIVICFLOW_SINK_BATCH_ROWS": "20000",
           "CIVICFLOW_PARTITIONS": "2"}
    proc = _civicflow(["replay", "--var-dir", str(var), "--format", "12345", *map(str, files)], env)
    sorted_peak = runs = 0
    try:
        assert proc.stderr is not None
        for line in proc.stderr:
            if " runs on disk" in line:
                sorted_peak = _peak_kb(proc.pid)
                runs = int(line.split(" in ")[1].split()[0])
            if "waiting for the worker" in line:
                return sorted_peak, _peak_kb(proc.pid), runs
        raise AssertionError(f"the replay ended before producing everything (exit {proc.wait()})")
    finally:
        _kill_group(proc)


def test_replay_process_memory_does_not_grow_with_the_input(tmp_path):
    """~23 k events (one 4-week 12345 export) and ~230 k (ten of them): the replay CLI holds
    one sort run of 20 k events, not the input. The replay of before held ~2.6 KB per event:
    ~540 MB more for the larger input."""
    exports = []
    for month in range(10):
        rows = simulate_hotline(seed=month + 1, start=date(2026, 1, 5) + timedelta(days=28 * month),
                                days=28, cases_per_day=49, districts=4)
        exports.append(tmp_path / f"orders-{month:02d}.csv")
        exports[-1].write_bytes(hotline_csv(rows, "gbk"))
    small_sorted, small_produced, small_runs = _replay_peaks(exports[:1], tmp_path / "small")
    large_sorted, large_produced, large_runs = _replay_peaks(exports, tmp_path / "large")
    assert (small_runs, large_runs) == (2, 12)
    # read and sorted: the same memory for ten times the events
    assert large_sorted <= small_sorted * 1.1, (small_sorted, large_sorted)
    # produced, with the sink thread and its chDB at work in the same process: under the bound
    # issue 17 sets whatever the input (chDB's caches and merges warm up, then level off)
    assert large_produced < 1024 * 1024, (small_produced, large_produced)


def test_a_stalled_worker_fails_the_replay_naming_it_and_a_dead_one_at_once(tmp_path):
    """A stopped worker: the replay fails once nothing moved for --stall-timeout, naming the
    worker and its log. A killed one: the replay fails at once (not after its 10 minutes of
    stall timeout) with the worker's exit code and log."""
    for stop, stall_timeout, expected in (
            (signal.SIGSTOP, "4", "replay stalled: the worker has not moved for"),
            (signal.SIGKILL, "600", "the worker exited (code -9)")):
        var = tmp_path / stop.name
        proc = _civicflow(["replay", "--var-dir", str(var), "--stall-timeout", stall_timeout,
                           "--format", "jn-grid", str(SMALL_GRID)], {"CIVICFLOW_PARTITIONS": "1"})
        try:
            os.kill(_wait_for_child(proc.pid, b"civicflow worker"), stop)
            stopped = time.monotonic()
            assert proc.stderr is not None
            error = next(line for line in proc.stderr if line.startswith("civicflow:"))
            noticed = time.monotonic() - stopped
            error += proc.stderr.read()
            assert proc.wait(60) == 2
        finally:
            _kill_group(proc)
        assert "Traceback" not in error
        assert expected in error and str(var / "worker.log") in error.replace("\n", ""), error
        assert noticed >= 4 if stop is signal.SIGSTOP else noticed < 60


def _wait_for_child(parent: int, command: bytes) -> int:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        for entry in Path("/proc").iterdir():
            try:
                stat = (entry / "stat").read_text()
                if int(stat.rsplit(")", 1)[1].split()[1]) == parent and \
                        command in (entry / "cmdline").read_bytes().replace(b"\0", b" "):
                    return int(entry.name)
            except (OSError, ValueError, IndexError):
                continue
        time.sleep(0.05)
    raise AssertionError(f"no {command.decode()} process started")
