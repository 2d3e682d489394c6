"""Issue 13's takeover scenario, as a user would run it: two replay workers (default batching) in
one group, `civicflow ingest` of the 28-day simulated grid feed (175,032 events) running meanwhile,
one worker SIGKILLed 15-38 s after the ingest starts. Every 5 s it prints the group's committed
lag on events.grid; a run stalls when that lag stays above 0 without falling for 60 s.

    python -m bench.takeover [runs]

Exits 1 when a run stalled or did not finish within 15 minutes. Logs stay under the printed
directory. (Tansu reports a partition's end as the first offset of its last record batch + 1, so
a finished partition shows a lag below 0.)"""

from __future__ import annotations

import os
import random
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

from confluent_kafka import Consumer, KafkaException, TopicPartition

from civicflow.pipeline import broker_for, sink_thread
from civicflow.settings import Settings
from producers.simulator import simulate_grid, write_lines
from sinks.clickhouse import ClickHouseSink, connect
from sinks.migrate import migrate
from streams.app import APP_ID
from tests.stack import start_worker, stop_workers, wait_until_assigned

PARTITIONS = 4
STALL_SECONDS = 60
GIVE_UP_SECONDS = 900


def committed_lag(bootstrap: str) -> int | None:
    """High watermarks minus the worker group's committed offsets on events.grid (no join)."""
    probe = Consumer({"bootstrap.servers": bootstrap, "group.id": APP_ID, "enable.auto.commit": False})
    try:
        partitions = [TopicPartition("events.grid", p) for p in range(PARTITIONS)]
        lag = 0
        for tp in probe.committed(partitions, timeout=5):
            end = probe.get_watermark_offsets(TopicPartition("events.grid", tp.partition), timeout=5)[1]
            lag += end - max(tp.offset, 0)
        return lag
    except KafkaException:
        return None
    finally:
        probe.close()


def one_run(run: int, root: Path, feed: Path) -> bool:
    """True when the run finished without a stall."""
    folder = root / f"run{run}"
    folder.mkdir()
    settings = Settings(var_dir=folder, partitions=PARTITIONS, database=f"takeover{run}",
                        clickhouse=f"chdb://{root / 'clickhouse'}")
    sink = ClickHouseSink(connect(settings.clickhouse_dsn()), settings.database)
    migrate(sink.client, settings.database)
    with broker_for(settings) as bootstrap, sink_thread(settings, bootstrap, sink):
        workers = [start_worker(settings, bootstrap, "replay", i, folder) for i in range(2)]
        try:
            wait_until_assigned(workers)
            env = {k: v for k, v in os.environ.items() if not k.startswith("CIVICFLOW_")}
            env.update({"CIVICFLOW_VAR_DIR": str(folder), "CIVICFLOW_PARTITIONS": str(PARTITIONS)})
            started = time.monotonic()
            ingest = subprocess.Popen(
                [sys.executable, "-m", "civicflow", "ingest", "--bootstrap", bootstrap, "--format",
                 "jn-grid", str(feed)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            kill_at = random.uniform(15, 38)
            killed_at: float | None = None
            ingested_at: float | None = None
            lowest, lowest_since = None, time.monotonic()
            while True:
                time.sleep(5)
                elapsed = time.monotonic() - started
                if killed_at is None and elapsed >= kill_at:
                    workers[0].proc.kill()
                    workers[0].proc.wait()
                    killed_at = elapsed
                if ingested_at is None and ingest.poll() is not None:
                    ingested_at = elapsed
                lag = committed_lag(bootstrap)
                print(f"run {run}: {elapsed:5.0f} s  lag {lag}  "
                      f"{'ingest done' if ingested_at else 'ingesting'}"
                      f"{f', worker 0 killed at {killed_at:.0f} s' if killed_at else ''}", flush=True)
                if lag is None:
                    continue
                if lowest is None or lag < lowest or ingested_at is None:
                    lowest, lowest_since = lag, time.monotonic()
                if lag <= 0 and ingested_at is not None and killed_at is not None:
                    print(f"run {run}: done {elapsed:.0f} s after the ingest began, "
                          f"{elapsed - ingested_at:.0f} s after it ended", flush=True)
                    return True
                if lag > 0 and time.monotonic() - lowest_since > STALL_SECONDS:
                    print(f"run {run}: STALLED, lag {lag} has not fallen for {STALL_SECONDS} s",
                          flush=True)
                    return False
                if elapsed > GIVE_UP_SECONDS:
                    print(f"run {run}: not done after {GIVE_UP_SECONDS} s", flush=True)
                    return False
        finally:
            stop_workers(workers)


def main() -> int:
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 3
    root = Path(tempfile.mkdtemp(prefix="takeover-"))
    feed = root / "grid.jsonl"
    write_lines(str(feed), simulate_grid(seed=5, start=date(2026, 10, 12), days=28, cases_per_day=300,
                                         districts=4))
    print(f"logs under {root}", flush=True)
    results = [one_run(run, root, feed) for run in range(runs)]
    print(f"{sum(results)} of {runs} runs finished without a stall")
    return 0 if all(results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
