"""The worker (issue 12, DESIGN §9b), every figure beside a baseline measured in the same run:

- the case processor alone (pure, no Kafka) on the 28-day simulated grid feed issue 12 names
  (~175k events), and on 56 days of it (~357k events);
- stored state per case, and worker memory per open case at 1 M open cases;
- how rate and memory grow: 10^4, 10^5, 10^6 events;
- end-to-end replay (broker -> Faust worker -> sink -> chDB) of the same feed, timed from the
  first landed snapshot (start-up printed apart), vs a bare Faust agent over as many messages;
- live: 10,000 alert instants due within a minute, instant -> row landed in ClickHouse;
- failover: one of two workers SIGKILLed mid-replay, time until the survivor runs its partitions.

Absolute figures on this 2-core machine drift with load; the ratios are what to compare.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from bench.bench_faust import bare_faust_rate
from bench.common import Result
from civicflow.pipeline import broker_for, sink_thread
from civicflow.settings import Settings
from producers.kafka import EventProducer
from schemas.topics import EVENT_TOPICS
from sinks.clickhouse import ClickHouseSink, connect
from sinks.migrate import migrate

FEED = {"seed": 5, "start": date(2026, 10, 12), "cases_per_day": 300, "districts": 4}
PARTITIONS = 4

FEED_SCRIPT = r'''
import io, json, struct, sys, zlib
from datetime import date
from producers.grid import GridAdapter
from producers.simulator import simulate_grid
from producers.base import Reject
from schemas.event import event_time_order
days, limit, path, feed = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], json.loads(sys.argv[4])
lines = simulate_grid(days=days, **{**feed, "start": date.fromisoformat(feed["start"])})
events = [e for e in GridAdapter().parse(io.BytesIO(b"\n".join(lines)), "sim") if not isinstance(e, Reject)]
events.sort(key=event_time_order)
with open(path, "wb") as out:
    for e in events[:limit]:
        key, value = e.case_id.encode(), e.to_json()
        out.write(struct.pack("<BHI", zlib.crc32(key) % 4, len(key), len(value)) + key + value)
'''

# the feed is built in a process of its own and read back record by record: the processor's
# process then holds no freed memory of the build, which the processor would reuse unseen
PROCESSOR = r'''
import json, resource, struct, sys, time
from datetime import date, timedelta
from schemas.policy import load_policy
from streams.calendar import WorkingDayCalendar
from streams.processor import CaseProcessor, Mode, Record, tune_gc
tune_gc()  # as the worker does
path, archive_days = sys.argv[1], int(sys.argv[2])
records = []
with open(path, "rb") as feed:
    while head := feed.read(7):
        partition, key_length, value_length = struct.unpack("<BHI", head)
        key = feed.read(key_length)
        records.append(Record("events.grid", partition, key, feed.read(value_length)))
def rss_kib():  # resident now (ru_maxrss is the peak)
    return int(open("/proc/self/statm").read().split()[1]) * resource.getpagesize() // 1024
store = {}
calendar = WorkingDayCalendar()
calendar.prepare(date(2027, 12, 31))  # start-up, as the worker does: the day tables of the feed's years
before = rss_kib()
processor = CaseProcessor(load_policy(), calendar, store, mode=Mode.REPLAY,
                          archive_after=timedelta(days=archive_days))
started = time.perf_counter()
for i in range(0, len(records), 10_000):
    processor.process(records[i:i + 10_000])
seconds = time.perf_counter() - started
cases = [v for k, v in store.items() if not k.startswith("\x00")]
whole = [len(v) for v in cases if not v.startswith(b"A")]
import streams
print(json.dumps({"form": streams.FORM, "events": len(records), "seconds": seconds, "cases": len(cases),
                  "state_bytes": sum(whole) / max(1, len(whole)), "store_bytes": sum(map(len, cases)),
                  "archived": processor.counts["archived"], "rss_kib": rss_kib() - before}))
'''

OPEN_CASES = r'''
import json, resource, sys
from datetime import UTC, datetime, timedelta
from schemas.event import Event
from schemas.policy import load_policy
from streams.calendar import WorkingDayCalendar
from streams.processor import CaseProcessor, Mode, Record, tune_gc
tune_gc()
count = int(sys.argv[1])
start = datetime(2026, 10, 12, tzinfo=UTC)
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
store = {}
processor = CaseProcessor(load_policy(), WorkingDayCalendar(), store, mode=Mode.REPLAY)
batch = []
for i in range(count):
    event = Event(event_id=f"e{i}", case_id=f"grid:jn-grid:O{i}", source="grid", system="jn-grid",
                  type="created", occurred_at=start + timedelta(seconds=i % 86400),
                  district="370102", street="370102001", community="370102001001",
                  grid="370102001001003", category="环境卫生", unit="U01")
    batch.append(Record("events.grid", i % 4, event.case_id.encode(), event.to_json()))
    if len(batch) == 20_000:
        processor.process(batch)
        batch = []
processor.process(batch)
print(json.dumps({"cases": count, "rss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before}))
'''


def _python(code: str, *args: object, env: dict[str, str] | None = None) -> dict:
    done = subprocess.run([sys.executable, "-c", code, *map(str, args)], capture_output=True,
                          text=True, timeout=3600, check=False, env={**os.environ, **(env or {})})
    if done.returncode:
        raise RuntimeError(f"benchmark child failed: {done.stderr[-1500:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


SOURCE = {"CIVICFLOW_COMPILED": "0"}  # the worker's modules as Python source (streams/native.py)


def processor_figures() -> tuple[list[Result], dict]:
    # the compiled modules against their Python source, interleaved, best of 2 each (drift)
    folder = Path(tempfile.mkdtemp(prefix="civicflow-bench-feeds-"))

    def feed(days: int, limit: int = 10**9) -> Path:
        path = folder / f"grid-{days}d-{limit}.bin"
        if not path.exists():
            settings = json.dumps({**FEED, "start": FEED["start"].isoformat()})  # type: ignore[attr-defined]
            subprocess.run([sys.executable, "-c", FEED_SCRIPT, str(days), str(limit), str(path),
                            settings], check=True, timeout=3600)
        return path

    def best_pair(days: int) -> tuple[dict, dict]:
        pairs = [(_python(PROCESSOR, feed(days), 30), _python(PROCESSOR, feed(days), 30, env=SOURCE))
                 for _ in range(2)]
        return (min((compiled for compiled, _ in pairs), key=lambda row: row["seconds"]),
                min((interpreted for _, interpreted in pairs), key=lambda row: row["seconds"]))

    try:
        # the feed issue 12 names for the target (28 days), then twice as long (more cases kept)
        month, month_source = best_pair(28)
        whole, source = best_pair(56)
        rows = [_python(PROCESSOR, feed(days, limit), 30)
                for days, limit in ((2, 10**4), (17, 10**5), (160, 10**6))]
        kept = _python(PROCESSOR, feed(160, 10**6), 0)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    opened = _python(OPEN_CASES, 1_000_000)
    results = [
        Result(f"processor alone, 28-day grid feed ({month['events']:,} events, {month['cases']:,} "
               f"cases, batches of 10,000; modules {month['form']})", "events/s",
               month["events"] / month["seconds"],
               f"the same modules as Python source ({month_source['form']})",
               month_source["events"] / month_source["seconds"], ">= 50,000 events/s"),
        Result(f"processor alone, 56-day grid feed ({whole['events']:,} events, {whole['cases']:,} "
               f"cases, batches of 10,000; modules {whole['form']})", "events/s",
               whole["events"] / whole["seconds"],
               f"the same modules as Python source ({source['form']})",
               source["events"] / source["seconds"], "reported (more cases kept than in 28 days)"),
        Result(f"worker state per case (stored bytes, {whole['cases']:,} cases)", "bytes",
               whole["state_bytes"], "the 512 B target", 512, "<= 512 B per case"),
        Result("worker memory per open case at 1,000,000 open cases (processor + its store)",
               "bytes", opened["rss_kib"] * 1024 / opened["cases"], "the stored state per case",
               whole["state_bytes"], "reported"),
    ]
    for row in rows:
        results.append(Result(
            f"processor alone, {row['events']:,} events ({row['cases']:,} cases; memory held "
            f"after: +{row['rss_kib'] / 1024:,.0f} MiB)", "events/s", row["events"] / row["seconds"],
            f"the same at {whole['events']:,} events", whole["events"] / whole["seconds"],
            "flat: cost per event does not grow with the input"))
    archived = rows[-1]
    results.append(Result(
        f"processor memory held after {archived['events']:,} events over 160 days "
        f"({archived['cases']:,} cases, {archived['archived']:,} archived after 30 days; store "
        f"{archived['store_bytes'] / 2**20:,.0f} MiB vs {kept['store_bytes'] / 2**20:,.0f} MiB)", "MiB",
        archived["rss_kib"] / 1024, "the same with archiving off (CIVICFLOW_CASE_ARCHIVE_DAYS=0)",
        kept["rss_kib"] / 1024, "grows with the cases of the archive period, not of the input"))
    return results, whole


def _simulated_feed(folder: Path, days: int) -> tuple[Path, int]:
    from producers.simulator import simulate_grid, write_lines

    path = folder / "grid.jsonl"
    lines = simulate_grid(days=days, **FEED)
    write_lines(str(path), lines)
    return path, len(lines)


def _produce(bootstrap: str, path: Path, run: str, as_of: datetime | None = None) -> int:
    """The feed's events onto the broker in event-time order (as `replay` and `ingest` send
    them), then the final control records."""
    from producers.base import Reject
    from producers.ingest import encoded_rows
    from schemas.event import event_time_order

    events = [e for _, _, items in encoded_rows([("jn-grid", path)], b"bench") for e in items
              if not isinstance(e, Reject)]
    events.sort(key=event_time_order)
    producer = EventProducer(bootstrap)
    seen: set[str] = set()
    for event in events:
        if event.event_id not in seen:
            seen.add(event.event_id)
            producer.send_encoded(event)
    clock = (as_of or events[-1].occurred_at).isoformat()
    producer.send_control(EVENT_TOPICS["grid"], range(PARTITIONS),  # type: ignore[index]
                          {"run": run, "clock": clock, "final": True})
    if producer.flush(120):
        raise RuntimeError("the benchmark could not deliver its events")
    return len(seen)


def _worker(settings: Settings, bootstrap: str, mode: str, log: Path,
            extra: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    # the worker's settings are the bench's own; which form of its modules runs is the caller's
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("CIVICFLOW_") or k == "CIVICFLOW_COMPILED"}
    env.update(settings.model_copy(update={"bootstrap": bootstrap}).as_env())
    env.update(extra or {})
    with open(log, "ab") as handle:
        return subprocess.Popen([sys.executable, "-m", "civicflow", "worker", "--mode", mode],
                                env=env, stdout=handle, stderr=subprocess.STDOUT)


def replay_end_to_end(days: int, on_first_landed: Callable[[int], Callable[[], None]] | None = None
                      ) -> tuple[int, float, float, float]:
    """A simulated feed of `days` on the broker, then a replay worker and the sink over it:
    (events, worker started, first snapshot landed, everything landed) in perf_counter seconds.
    `on_first_landed(worker pid)` runs when the first snapshot lands; what it returns runs at
    the end (the profiler uses it)."""
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        path, _ = _simulated_feed(folder, days)
        settings = Settings(var_dir=folder / "var", partitions=PARTITIONS, database="bench_e2e")
        settings.var_dir.mkdir()
        sink = ClickHouseSink(connect(settings.clickhouse_dsn()), settings.database)
        migrate(sink.client, settings.database)
        run = uuid.uuid4().hex[:8]
        with broker_for(settings) as bootstrap:
            produced = _produce(bootstrap, path, run)
            with sink_thread(settings, bootstrap, sink) as runner:
                started = time.perf_counter()
                worker = _worker(settings, bootstrap, "replay", folder / "worker.log")
                finish: Callable[[], None] | None = None
                try:
                    while runner.stats.rows.get("cases", 0) == 0:
                        _alive(worker, runner, folder / "worker.log")
                        time.sleep(0.05)
                    first = time.perf_counter()
                    if on_first_landed is not None:
                        finish = on_first_landed(worker.pid)
                    while runner.landed(run) < 3 * PARTITIONS:
                        _alive(worker, runner, folder / "worker.log")
                        time.sleep(0.05)
                    done = time.perf_counter()
                finally:
                    if finish is not None:
                        finish()
                    worker.send_signal(signal.SIGTERM)
                    worker.wait(30)
    return produced, started, first, done


def end_to_end(days: int = 56) -> list[Result]:
    produced, started, first, done = replay_end_to_end(days)
    bare = bare_faust_rate(produced)
    rate = produced / (done - first)
    return [Result(f"end-to-end replay of {produced:,} events, broker -> Faust worker -> sink -> chDB "
                   f"(start-up until the first landed snapshot: {first - started:.1f} s, not counted)",
                   "events/s", rate, f"a bare Faust agent over {produced:,} messages", bare,
                   ">= 0.7 of the bare agent")]


def _alive(worker: subprocess.Popen[bytes], runner: object, log: Path) -> None:
    if worker.poll() is not None:
        raise RuntimeError(f"the worker exited ({worker.returncode}): see {log}\n"
                           + log.read_text("utf-8", "replace")[-1500:])
    if getattr(runner, "error", None) is not None:
        raise RuntimeError(f"the sink stopped: {runner.error!r}")  # type: ignore[attr-defined]


LIVE_POLICY = """[alerts]
yellow = 0.8
red = 1.0
escalation1 = 1.5
escalation2 = 2.0
escalation3 = 3.0

[property.urgent]
respond = "1m"
resolve = "60m"
feedback = "1wd"
"""


def live_latency(count: int = 10_000,
                 examine: Callable[[ClickHouseSink], None] | None = None) -> list[Result]:
    """`count` cases whose yellow (0.8 x 1 min = 48 s after creation) falls within one minute;
    each alert's landing time in ClickHouse (the row's `landed_at`) minus its instant.
    `examine` reads the run's ClickHouse before it is removed (bench/profile_live.py)."""
    # chDB stays open in this process and may still be merging parts when the folder goes
    with tempfile.TemporaryDirectory(ignore_cleanup_errors=True) as tmp:
        folder = Path(tmp)
        (folder / "policy.toml").write_text(LIVE_POLICY)
        settings = Settings(var_dir=folder / "var", partitions=PARTITIONS, database="bench_live",
                            policy=folder / "policy.toml", clock_report_seconds=1.0)
        settings.var_dir.mkdir()
        sink = ClickHouseSink(connect(settings.clickhouse_dsn()), settings.database)
        migrate(sink.client, settings.database)
        with broker_for(settings) as bootstrap, \
                sink_thread(settings, bootstrap, sink, live=True) as runner:
            worker = _worker(settings, bootstrap, "live", folder / "worker.log")
            try:
                deadline = time.monotonic() + 120
                while runner.landed("live") == 0:  # joined and reporting its clock
                    _alive(worker, runner, folder / "worker.log")
                    if time.monotonic() > deadline:
                        raise RuntimeError("the live worker never reported its clock")
                    time.sleep(0.1)
                from schemas.event import Event

                producer = EventProducer(bootstrap)
                first = datetime.now(UTC) + timedelta(seconds=10) - timedelta(seconds=48)
                for i in range(count):
                    created = first + timedelta(seconds=60 * i / count)
                    producer.send_event(Event(
                        event_id=f"l{i}", case_id=f"property:wuye:L{i}", source="property",
                        system="wuye", type="created", occurred_at=created, urgency="urgent",
                        district="370102"))
                producer.flush(60)
                del producer
                query = f"SELECT count() FROM {settings.database}.alerts WHERE level = 'yellow'"
                landed, moved = 0, time.monotonic()
                while landed < count:
                    _alive(worker, runner, folder / "worker.log")
                    now_landed = sink.client.query(query).result_rows[0][0]
                    if now_landed > landed:
                        landed, moved = now_landed, time.monotonic()
                    elif time.monotonic() - moved > 120:
                        raise RuntimeError(f"{landed:,} of {count:,} yellows landed, then none "
                                           "for 2 minutes: see the worker log")
                    time.sleep(0.5)
            finally:
                worker.send_signal(signal.SIGTERM)
                worker.wait(30)
            quantiles = sink.client.query(
                "SELECT quantiles(0.5, 0.99)(dateDiff('millisecond', fires_at, landed_at)) / 1000, "
                "quantiles(0.5, 0.99)(dateDiff('millisecond', fires_at, emitted_at)) / 1000 "
                f"FROM {settings.database}.alerts WHERE level = 'yellow'").result_rows[0]
            if examine is not None:
                examine(sink)
    (landed_p50, landed_p99), (sent_p50, sent_p99) = quantiles
    return [
        Result(f"live: {count:,} alerts due within one minute, instant -> landed in ClickHouse, p99",
               "s", landed_p99, "the worker's own send time (emitted_at), p99", sent_p99,
               "p99 <= 1.5 s"),
        Result("live: the same, p50", "s", landed_p50, "emitted_at, p50", sent_p50, "-"),
    ]


def failover(days: int = 28) -> list[Result]:
    """Two workers share a replay; one is SIGKILLed once both run; the time from the kill until
    the survivor has rebuilt the dead one's partitions (its log says so) and the replay lands."""
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        path, _ = _simulated_feed(folder, days)
        settings = Settings(var_dir=folder / "var", partitions=PARTITIONS, database="bench_failover",
                            worker_standby_replicas=1)
        settings.var_dir.mkdir()
        sink = ClickHouseSink(connect(settings.clickhouse_dsn()), settings.database)
        migrate(sink.client, settings.database)
        run = uuid.uuid4().hex[:8]
        info = {"CIVICFLOW_WORKER_LOGLEVEL": "INFO"}
        with broker_for(settings) as bootstrap:
            _produce(bootstrap, path, run)
            with sink_thread(settings, bootstrap, sink) as runner:
                logs = [folder / "a.log", folder / "b.log"]
                workers = [_worker(settings, bootstrap, "replay", log, info) for log in logs]
                try:
                    deadline = time.monotonic() + 180
                    while not all("deadline heaps rebuilt" in _text(log) for log in logs) or \
                            runner.stats.rows.get("cases", 0) < 20_000:
                        for worker, log in zip(workers, logs, strict=True):
                            _alive(worker, runner, log)
                        if time.monotonic() > deadline:
                            raise RuntimeError("the two workers never both ran")
                        time.sleep(0.1)
                    rebuilt_before = _text(logs[1]).count("deadline heaps rebuilt")
                    workers[0].send_signal(signal.SIGKILL)
                    killed = time.perf_counter()
                    while _text(logs[1]).count("deadline heaps rebuilt") == rebuilt_before:
                        _alive(workers[1], runner, logs[1])
                        time.sleep(0.05)
                    taken_over = time.perf_counter() - killed
                    while runner.landed(run) < 3 * PARTITIONS:
                        _alive(workers[1], runner, logs[1])
                        time.sleep(0.1)
                    finished = time.perf_counter() - killed
                finally:
                    for worker in workers:
                        if worker.poll() is None:
                            worker.send_signal(signal.SIGTERM)
                            worker.wait(30)
    session = settings.worker_session_timeout
    return [Result(f"failover: one of two workers SIGKILLed mid-replay; until the survivor has its "
                   f"partitions (then {finished:.0f} s until the whole replay landed)", "s",
                   taken_over, "the consumer session timeout (the broker's own detection)", session,
                   "<= 30 s")]


def _text(path: Path) -> str:
    try:
        return path.read_text("utf-8", "replace")
    except OSError:
        return ""


def run() -> Iterator[Result]:
    """Each part's figures as soon as it has them (a later part failing loses none)."""
    yield from processor_figures()[0]
    yield from end_to_end()
    yield from live_latency()
    yield from failover()


__all__ = ["end_to_end", "failover", "live_latency", "processor_figures", "run"]
