"""`make soak` (bench/soak.py): the live pipeline under load and faults for SOAK_MINUTES (30).

What runs: the embedded broker (Tansu, memory storage), two `civicflow worker --mode live`
processes in one group, `civicflow sink` as its own process writing over HTTP to a ClickHouse
endpoint on 127.0.0.1 in front of chDB (tests/fake_clickhouse.py: it can answer 503 or hang like
a failing server), and `civicflow serve-ingest` (the property webhook).

What it does:
- **growth** (the first 45 %): a simulated city's last three days (moved so that its last
  event is a minute old: deadlines mostly ahead, some passed) go in, in time order, through
  `civicflow ingest` (grid: one import of the next slice every 20 s) and the signed webhook
  (property bodies), together at SOAK_RATE events/s (default 300: 100x a big city's peak of ~3
  events/s, i.e. ~40,000 cases a day at ~6 events each with a peak hour twice the day's
  average). New cases all the time. Faults on a schedule, every 90 s one of, in turn: a worker
  SIGKILLed (restarted 5 s later, as a supervisor would), the sink SIGKILLed (restarted at
  once), ClickHouse answering 503 for 15 s then hanging for 10 s.
- **flat** (up to 85 %): the later events of the cases already there, spread over this part
  (a lower rate: what is left of their lives), while the live workers fire the alerts that
  come due: the case count is flat, the work goes on. No fault: every process keeps its pid,
  so its RSS can be judged.
- **drain**: nothing more is sent; everything must land.

Every minute it prints the lag, the RSS of each process and the accounting: events sent =
distinct events in ClickHouse + events not landed yet; raw rows and their copies. It exits 1
when an event sent is missing at the end, when the cases in ClickHouse are not the cases sent,
or when a worker's, the sink's or the webhook's RSS grew while the case count in ClickHouse was
flat (more than 10 % + 32 MB from the first such minute to the last; a worker from the minute
its decoded cases — `civicflow_worker_cached_cases` — stopped rising: one restarted shortly
before decodes its cases again as they come back, up to its bound). The broker's RSS is
printed, not judged: with memory storage it holds every record sent.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

import orjson
from confluent_kafka import Consumer, TopicPartition

from civicflow.embedded import embedded_broker, free_port, stop_process
from civicflow.settings import Settings
from producers.simulator import simulate_grid, simulate_property
from producers.webhook import PATH, signature
from schemas.topics import EVENT_TOPICS
from sinks.clickhouse import connect
from sinks.migrate import migrate
from streams.calendar import CHINA_TZ
from tests.accounting import freeze_merges, read_alerts
from tests.fake_clickhouse import FakeClickHouse
from tests.stack import WorkerProcess, start_worker

PARTITIONS = 4
DB = "soak"
WORKER_GROUP = "civicflow-worker"
INGEST_EVERY = 20.0  # seconds between two imports
GRID_SHARE = 0.8  # of the rate; the rest through the webhook
GROWTH_SHARE = 0.45  # of the run: growth, with faults; then the flat part
FEED_SHARE = 0.85  # of the run: feeding (growth, then flat); the rest drains
FAULT_EVERY = 90.0  # seconds between two faults (worker, sink, ClickHouse in turn)
RSS_SLACK = (1.10, 32.0)  # the flat part may end at most 10 % + 32 MB above where it began
ACCOUNTING = re.compile(r"records read (\d+) = produced (\d+) \+ rejected (\d+) \+ "
                        r"duplicates skipped (\d+) \((\d+) events produced\)")


def say(text: str) -> None:
    print(time.strftime("%H:%M:%S ") + text, flush=True)


def rss_mb(pid: int | None) -> float | None:
    if pid is None:
        return None
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def cached_cases(port: int) -> float | None:
    """A worker's `civicflow_worker_cached_cases` (None when it cannot be read)."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
            text = response.read().decode()
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith("civicflow_worker_cached_cases "):
            return float(line.split()[1])
    return None


def judged_rss(samples: list[Sample], name: str) -> tuple[float, float] | None:
    """(first, last) RSS of one process over the flat minutes it is judged on: those of its
    last pid, from the minute its decoded cases stopped rising by more than 1 % (a worker restarted shortly
    before the flat part decodes its cases again as they come back, up to its bound: the
    warm-up is bounded and shown by the gauge, what follows must stay flat). None: not
    enough minutes to judge."""
    if not samples:
        return None
    pid = samples[-1].pids.get(name)
    same = [s for s in samples if s.pids.get(name) == pid and s.rss.get(name) is not None]
    start = 0
    for index in range(1, len(same)):
        before, now = same[index - 1].cached.get(name), same[index].cached.get(name)
        if before is not None and now is not None and now > before * 1.01:
            start = index
    judged = same[start:]
    if len(judged) < 2:
        return None
    return judged[0].rss[name], judged[-1].rss[name]  # type: ignore[return-value]


def split_growth_flat(lines: list[bytes], case_key: str, growth: int) -> tuple[list[bytes], list[bytes]]:
    """Time-ordered lines cut in two: the first `growth` (at most 70 %; cases created all along),
    then the later lines of the cases created before the cut (no new case)."""
    cut = min(growth, int(len(lines) * 0.7))
    cases = {orjson.loads(line)[case_key] for line in lines[:cut]}
    return lines[:cut], [line for line in lines[cut:] if orjson.loads(line)[case_key] in cases]


def parse_time(text: str) -> datetime:
    moment = datetime.fromisoformat(text)
    return moment if moment.tzinfo else moment.replace(tzinfo=CHINA_TZ)


def shift_times(lines: list[bytes], field_name: str, last: datetime) -> list[bytes]:
    """The lines with their event time moved by one offset, so that the latest is `last`."""
    records = [orjson.loads(line) for line in lines]
    offset = last - max(parse_time(r[field_name]) for r in records)
    out = []
    for record in records:
        moved = parse_time(record[field_name]) + offset
        record[field_name] = (moved.astimezone(CHINA_TZ).strftime("%Y-%m-%d %H:%M:%S")
                              if field_name == "发生时间" else moved.isoformat(timespec="seconds"))
        out.append(orjson.dumps(record))
    return out


@dataclass
class Sample:
    """One minute's reading."""

    t: float
    phase: str
    sent: int
    raw: int
    distinct: int
    cases: int
    alerts: int
    lag: int | None
    rss: dict[str, float | None]
    pids: dict[str, int | None]
    cached: dict[str, float | None] = field(default_factory=dict)  # a worker's decoded cases


@dataclass
class Feed:
    """What was sent, counted as it was acknowledged."""

    ingest_read: int = 0
    ingest_events: int = 0
    ingest_duplicates: int = 0
    ingest_rejected: int = 0
    ingest_runs: int = 0
    ingest_reruns: int = 0
    webhook_accepted: int = 0
    webhook_retries: int = 0
    webhook_refused: Counter[int] = field(default_factory=Counter)
    case_ids: set[str] = field(default_factory=set)
    errors: list[str] = field(default_factory=list)

    @property
    def events(self) -> int:
        return self.ingest_events + self.webhook_accepted


class Soak:
    def __init__(self, root: Path, minutes: float, rate: float) -> None:
        self.root = root
        self.total = minutes * 60
        self.rate = rate
        self.started = time.monotonic()
        self.feed = Feed()
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.flat_since: float | None = None
        self.fed_until: float | None = None
        self.faults: list[str] = []
        self.workers: list[WorkerProcess] = []
        self.sink: subprocess.Popen[bytes] | None = None
        self.webhook: subprocess.Popen[bytes] | None = None
        self.broker_pid: int | None = None
        self.samples: list[Sample] = []
        self.metrics_ports: dict[int, int] = {}  # worker index -> its metrics port

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    # ---- the data -------------------------------------------------------------------------
    def build_feeds(self) -> None:
        growth_seconds = self.total * GROWTH_SHARE
        # three days of a city (~2.6 grid and ~3.4 property lines per case and day, the last
        # day's cases unfinished), moved so that its last event is a minute ago: what a live
        # feed holds, deadlines mostly ahead, some passed, not months of overdue cases. The
        # growth part is 55 % of the lines
        grid_lines = self.rate * GRID_SHARE * growth_seconds / 0.55
        prop_lines = self.rate * (1 - GRID_SHARE) * growth_seconds / 0.55
        now = datetime.now(CHINA_TZ)
        start = (now - timedelta(days=3)).date()
        grid = simulate_grid(seed=2026, start=start, days=3, districts=3, faults=False,
                             cases_per_day=max(1, int(grid_lines / 2.6 / 9)))
        prop = simulate_property(seed=2026, start=start, days=3, districts=3, faults=False,
                                 cases_per_day=max(1, int(prop_lines / 3.4 / 9)))
        self.grid = split_growth_flat(shift_times(grid, "发生时间", now - timedelta(minutes=1)),
                                      "工单编号", int(grid_lines * 0.55))
        self.prop = split_growth_flat(shift_times(prop, "time", now - timedelta(minutes=1)),
                                      "order_id", int(prop_lines * 0.55))
        self.secrets = {orjson.loads(b)["company_code"]: f"soak-secret-{orjson.loads(b)['company_code']}"
                        for b in prop}
        flat_seconds = self.total * (FEED_SHARE - GROWTH_SHARE)
        self.flat_rate = (len(self.grid[1]) + len(self.prop[1])) / flat_seconds
        say(f"feeds: grid {len(self.grid[0]):,} + {len(self.grid[1]):,} lines, property "
            f"{len(self.prop[0]):,} + {len(self.prop[1]):,} bodies (growth + flat); growth at "
            f"{self.rate:g} events/s for {growth_seconds / 60:.1f} min, flat at "
            f"{self.flat_rate:.0f} events/s for {flat_seconds / 60:.1f} min")

    def phase_rates(self, share: float, lines: tuple[list[bytes], list[bytes]]
                    ) -> list[tuple[str, list[bytes], float]]:
        """(phase, lines, events/s) of one input: growth at its share of the rate, flat spread
        over the flat part."""
        flat_seconds = self.total * (FEED_SHARE - GROWTH_SHARE)
        return [("growth", lines[0], self.rate * share),
                ("flat", lines[1], max(1.0, len(lines[1]) / flat_seconds))]

    # ---- processes ------------------------------------------------------------------------
    def env(self, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("CIVICFLOW_")}
        env.update(self.settings.as_env())
        env.update(extra)
        return env

    def start_sink(self) -> None:
        with open(self.root / "sink.log", "ab") as log:
            self.sink = subprocess.Popen(
                [sys.executable, "-m", "civicflow", "sink"],
                env=self.env(CIVICFLOW_CLICKHOUSE=self.server.dsn(timeout=3),
                             CIVICFLOW_SINK_RETRY_MAX_SECONDS="5"),
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)

    def start_webhook(self) -> None:
        self.webhook_port = free_port()
        with open(self.root / "webhook.log", "ab") as log:
            self.webhook = subprocess.Popen(
                [sys.executable, "-m", "civicflow", "serve-ingest"],
                env=self.env(CIVICFLOW_WEBHOOK_PORT=str(self.webhook_port),
                             CIVICFLOW_PROPERTY_SECRETS=json.dumps(self.secrets)),
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{self.webhook_port}/metrics", timeout=2)
                return
            except OSError:
                assert self.webhook.poll() is None, (self.root / "webhook.log").read_text()[-2000:]
                time.sleep(0.3)
        raise RuntimeError("the webhook did not start")

    # ---- feeding --------------------------------------------------------------------------
    def ingest_loop(self) -> None:
        for phase, lines, rate in self.phase_rates(GRID_SHARE, self.grid):
            per_run = max(1, int(rate * INGEST_EVERY))
            for start in range(0, len(lines), per_run):
                if self.stop.is_set() or self.elapsed() > self.total * FEED_SHARE:
                    return
                began = time.monotonic()
                chunk = lines[start:start + per_run]
                path = self.root / "feeds" / f"grid-{phase}-{start:08d}.jsonl"
                path.parent.mkdir(exist_ok=True)
                path.write_bytes(b"\n".join(chunk) + b"\n")
                with self.lock:
                    self.feed.case_ids.update("grid:jn-grid:" + orjson.loads(c)["工单编号"] for c in chunk)
                self.run_ingest(path)
                self.stop.wait(max(0.0, INGEST_EVERY - (time.monotonic() - began)))
            if phase == "growth":
                self.grid_growth_done = True

    def run_ingest(self, path: Path) -> None:
        for attempt in range(5):
            done = subprocess.run(
                [sys.executable, "-m", "civicflow", "ingest", "--format", "jn-grid", str(path)],
                env=self.env(), capture_output=True, text=True, timeout=600)
            found = ACCOUNTING.search(done.stdout)
            with self.lock:
                self.feed.ingest_runs += 1
                if done.returncode == 0 and found:
                    read, _, rejected, duplicates, events = (int(x) for x in found.groups())
                    self.feed.ingest_read += read
                    self.feed.ingest_rejected += rejected
                    self.feed.ingest_duplicates += duplicates
                    self.feed.ingest_events += events
                    return
                self.feed.ingest_reruns += 1
            say(f"ingest of {path.name} exited {done.returncode} (attempt {attempt + 1}): "
                f"{done.stderr.strip().splitlines()[-1:]}; running it again")
            time.sleep(2)
        with self.lock:
            self.feed.errors.append(f"ingest of {path} failed 5 times")

    def post(self, body: bytes) -> None:
        url = f"http://127.0.0.1:{self.webhook_port}{PATH}"
        firm = orjson.loads(body)["company_code"]
        for _ in range(60):
            stamp = str(int(time.time()))
            request = urllib.request.Request(url, data=body, method="POST", headers={
                "Content-Type": "application/json", "X-Timestamp": stamp,
                "X-Signature": signature(self.secrets[firm].encode(), stamp, body)})
            try:
                with urllib.request.urlopen(request, timeout=15) as response:
                    status = response.status
            except urllib.error.HTTPError as exc:
                status = exc.code
            except OSError:
                status = 0
            if status == 202:
                with self.lock:
                    self.feed.webhook_accepted += 1
                return
            with self.lock:
                self.feed.webhook_refused[status] += 1
                self.feed.webhook_retries += 1
            if status not in (0, 503):
                with self.lock:
                    self.feed.errors.append(f"webhook answered {status}")
                return
            time.sleep(1.0)
        with self.lock:
            self.feed.errors.append("a webhook body was never accepted")

    def webhook_loop(self) -> None:
        with ThreadPoolExecutor(8) as pool:
            for phase, bodies, rate in self.phase_rates(1 - GRID_SHARE, self.prop):
                began, sent = time.monotonic(), 0
                for body in bodies:
                    if self.stop.is_set() or self.elapsed() > self.total * FEED_SHARE:
                        return
                    with self.lock:
                        self.feed.case_ids.add("property:wuye:" + orjson.loads(body)["order_id"])
                    pool.submit(self.post, body)
                    sent += 1
                    ahead = sent / rate - (time.monotonic() - began)
                    if ahead > 0:
                        time.sleep(ahead)
                if phase == "growth":
                    self.prop_growth_done = True

    # ---- faults ---------------------------------------------------------------------------
    def fault_loop(self) -> None:
        turn = 0
        while not self.stop.wait(FAULT_EVERY):
            if self.flat_since is not None:
                return
            kind = ("worker", "sink", "clickhouse")[turn % 3]
            at = self.elapsed()
            if kind == "worker":
                victim = self.workers[(turn // 3) % len(self.workers)]
                victim.proc.kill()
                victim.proc.wait(10)
                self.stop.wait(5)
                self.workers[self.workers.index(victim)] = self.start_worker(victim.index)
                self.faults.append(f"{at / 60:.1f} min: worker {victim.index} SIGKILLed, restarted 5 s later")
            elif kind == "sink":
                assert self.sink is not None
                self.sink.kill()
                self.sink.wait(10)
                self.start_sink()
                self.faults.append(f"{at / 60:.1f} min: sink SIGKILLed, restarted")
            else:
                self.server.set_mode("503")
                self.stop.wait(15)
                self.server.set_mode("hang")
                self.stop.wait(10)
                self.server.set_mode("proxy")
                self.faults.append(f"{at / 60:.1f} min: ClickHouse 503 for 15 s, then hanging 10 s")
            say("fault: " + self.faults[-1])
            turn += 1

    def start_worker(self, index: int) -> WorkerProcess:
        port = self.metrics_ports.setdefault(index, free_port())
        return start_worker(self.settings.model_copy(update={"metrics_port": port}),
                            self.bootstrap, "live", index, self.root)

    # ---- watching -------------------------------------------------------------------------
    def query(self, sql: str) -> list[tuple]:
        return [tuple(r) for r in self.server.query(sql)]

    def worker_lag(self) -> int:
        consumer = Consumer({"bootstrap.servers": self.bootstrap, "group.id": WORKER_GROUP,
                             "enable.auto.commit": False, "log_level": 3})
        try:
            tps = [TopicPartition(EVENT_TOPICS[s], p) for s in EVENT_TOPICS for p in range(PARTITIONS)]
            lag = 0
            for tp in consumer.committed(tps, timeout=10):
                high = consumer.get_watermark_offsets(tp, timeout=10)[1]
                lag += max(0, high - max(0, tp.offset))
            return lag
        finally:
            consumer.close()

    def sample(self) -> Sample:
        raw, distinct = self.query(f"SELECT count(), uniqExact(event_id) FROM {DB}.events")[0]
        cases = self.query(f"SELECT count() FROM {DB}.cases FINAL")[0][0]
        alerts = self.query(f"SELECT count() FROM {DB}.alerts FINAL")[0][0]
        dead = self.query(f"SELECT count() FROM {DB}.rejects")[0][0]
        lag: int | None
        try:
            lag = self.worker_lag()
        except Exception as exc:  # noqa: BLE001 - printed, the next minute tries again
            say(f"worker lag not read: {exc}")
            lag = None
        with self.lock:
            sent = self.feed.events
            read = self.feed.ingest_read + self.feed.webhook_accepted
            skipped = self.feed.ingest_duplicates
            ingested, posted = self.feed.ingest_events, self.feed.webhook_accepted
        alive = {f"worker{w.index}": w.proc for w in self.workers}
        alive["sink"] = self.sink  # type: ignore[assignment]
        pids: dict[str, int | None] = {
            name: proc.pid if proc is not None and proc.poll() is None else None
            for name, proc in alive.items()}
        rss = {name: rss_mb(pid) for name, pid in pids.items()}
        rss["webhook"] = rss_mb(self.webhook.pid if self.webhook else None)
        rss["broker"] = rss_mb(self.broker_pid)
        cached = {f"worker{w.index}": cached_cases(self.metrics_ports[w.index]) for w in self.workers}
        phase = "drain" if self.fed_until else ("flat" if self.flat_since else "growth")
        sample = Sample(self.elapsed(), phase, sent, raw, distinct, cases, alerts, lag, rss, pids,
                        cached)
        say(f"[{sample.t / 60:5.1f} min {phase:6}] sent {sent:,} events (ingest {ingested:,}, "
            f"webhook {posted:,}); records read {read:,} = events in ClickHouse {distinct:,} "
            f"+ dead letters {dead} + duplicates skipped {skipped} + not landed yet "
            f"{read - distinct - dead - skipped:,}; raw rows {raw:,} ({raw - distinct:,} copies); "
            f"cases {cases:,}, alerts "
            f"{alerts:,}; worker lag {lag if lag is not None else '?'}; RSS MB "
            + ", ".join(f"{k} {v:.0f}" if v is not None else f"{k} -" for k, v in rss.items())
            + "; decoded cases " + ", ".join(f"{k} {v:.0f}" if v is not None else f"{k} -"
                                             for k, v in cached.items()))
        self.samples.append(sample)
        return sample

    # ---- the run --------------------------------------------------------------------------
    def run(self) -> int:
        self.build_feeds()
        self.grid_growth_done = self.prop_growth_done = False
        backend = connect(f"chdb://{(self.root / 'clickhouse').resolve()}")
        backend.command(f"DROP DATABASE IF EXISTS {DB}")
        migrate(backend, DB)
        freeze_merges(backend, DB)
        with embedded_broker(self.root / "broker", PARTITIONS, 30) as bootstrap, \
                FakeClickHouse(backend) as server:
            self.bootstrap, self.server = bootstrap, server
            self.broker_pid = broker_pid(bootstrap)
            self.settings = Settings(var_dir=self.root, partitions=PARTITIONS, database=DB,
                                     bootstrap=bootstrap, clickhouse=server.dsn(timeout=3))
            try:
                self.start_sink()
                self.start_webhook()
                self.workers = [self.start_worker(i) for i in range(2)]
                return self.feed_and_watch()
            finally:
                self.stop.set()
                for worker in self.workers:
                    stop_process(worker.proc, grace=15)
                for proc in (self.sink, self.webhook):
                    if proc is not None:
                        stop_process(proc, grace=15)

    def feed_and_watch(self) -> int:
        threads = [threading.Thread(target=f, daemon=True, name=f.__name__)
                   for f in (self.ingest_loop, self.webhook_loop, self.fault_loop)]
        for thread in threads:
            thread.start()
        next_sample = 60.0
        while True:
            time.sleep(1)
            if self.flat_since is None and self.grid_growth_done and self.prop_growth_done:
                self.flat_since = self.elapsed()
                say(f"flat part from {self.flat_since / 60:.1f} min: no new case from now on, "
                    "no fault")
            feeding = threads[0].is_alive() or threads[1].is_alive()
            if not feeding and self.fed_until is None:
                self.fed_until = self.elapsed()
                say(f"feed done at {self.fed_until / 60:.1f} min; draining")
            if self.elapsed() >= next_sample:
                next_sample += 60
                last = self.sample()
                if self.fed_until is not None and last.distinct >= last.sent and last.lag == 0:
                    break
                if self.elapsed() > self.total + 600:
                    say("still not drained 10 minutes after the planned end")
                    break
        self.stop.set()
        for thread in threads:
            thread.join(60)
        return self.judge()

    def judge(self) -> int:
        final = self.sample()
        failures = list(self.feed.errors)
        ledger = read_alerts(self.bootstrap)
        say(ledger.line())
        sent_cases = len(self.feed.case_ids)
        if final.distinct != final.sent:
            failures.append(f"{final.sent:,} events sent, {final.distinct:,} in ClickHouse")
        if final.cases != sent_cases:
            failures.append(f"{sent_cases:,} cases sent, {final.cases:,} in ClickHouse")
        # judged from the first minute the case count in ClickHouse reached its final value (the
        # workers had caught up with the growth part) to the last
        flat = [s for s in self.samples if s.phase != "growth" and s.cases == final.cases]
        growth: dict[str, tuple[float, float]] = {}
        if len(flat) >= 2:
            for name in flat[0].rss:
                if name == "broker":
                    continue
                judged = judged_rss(flat, name)
                if judged is None:
                    failures.append(f"{name}: fewer than two flat minutes after its decoded "
                                    "cases stopped rising: RSS not judged (run longer)")
                    continue
                first, last = growth[name] = judged
                if last > first * RSS_SLACK[0] + RSS_SLACK[1]:
                    failures.append(f"{name} RSS grew from {first:.0f} to {last:.0f} MB while the "
                                    "case count was flat")
        else:
            failures.append("the case count was flat for less than two minutes: RSS not judged "
                            "(run longer, or at a lower SOAK_RATE)")
        cases_flat = [s.cases for s in flat]
        say(f"faults: {len(self.faults)}; " + "; ".join(self.faults))
        say(f"webhook: {self.feed.webhook_accepted:,} accepted, {self.feed.webhook_retries:,} "
            f"resends ({dict(self.feed.webhook_refused)}); ingest: {self.feed.ingest_runs} runs, "
            f"{self.feed.ingest_reruns} re-runs")
        say(f"RSS while the case count was flat ({len(flat)} minutes; a worker from when its decoded "
            "cases stopped rising; first -> last, MB): " + ", ".join(
            f"{k} {a:.0f} -> {b:.0f}" for k, a, b in ((k, *v) for k, v in growth.items()))
            + f"; cases {cases_flat[:1]}")
        if failures:
            say("SOAK FAILED: " + "; ".join(failures))
            return 1
        say(f"SOAK PASSED: {final.sent:,} events and {sent_cases:,} cases in ClickHouse, "
            f"{final.raw - final.distinct:,} raw copies, {ledger.copies:,} copies on alerts.sla")
        return 0


def broker_pid(bootstrap: str) -> int | None:
    """The Tansu process listening on the broker's port (for its RSS)."""
    port = bootstrap.rsplit(":", 1)[1]
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if cmdline and b"tansu" in Path(cmdline[0].decode()).name.encode() \
                and any(port.encode() in c for c in cmdline):
            return int(proc.name)
    return None


def main() -> int:
    minutes = float(os.environ.get("SOAK_MINUTES", "30"))
    rate = float(os.environ.get("SOAK_RATE", "300"))
    root = Path(os.environ.get("SOAK_DIR") or tempfile.mkdtemp(prefix="civicflow-soak-"))
    root.mkdir(parents=True, exist_ok=True)
    say(f"soak: {minutes:g} min at {rate:g} events/s under {root} (logs there)")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(130))
    return Soak(root, minutes, rate).run()


if __name__ == "__main__":
    sys.exit(main())
