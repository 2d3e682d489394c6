"""Run the whole pipeline for a replay: broker (embedded or given), worker, sink, producer."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from civicflow.embedded import create_topics, embedded_broker, ensure_var_dir, stop_process
from civicflow.settings import Settings
from producers.base import ImportTally, Reject
from producers.ingest import feed_rows
from producers.kafka import EventProducer
from schemas.errors import BrokerUnavailable, CivicflowError, ConfigError
from schemas.event import Event, event_time_order
from schemas.policy import load_policy
from schemas.topics import EVENT_TOPICS
from sinks.clickhouse import ClickHouseSink, connect
from sinks.migrate import migrate
from sinks.notifier import notifier_thread
from sinks.runner import SinkRunner
from streams.calendar import WorkingDayCalendar

Progress = Callable[[str], None]


@dataclass
class ReplayResult:
    tally: ImportTally
    events: list[Event]
    as_of: datetime
    run_id: str
    seconds: float
    rows: dict[str, int] = field(default_factory=dict)


def read_feeds(files: list[tuple[str, Path]], caller_key: bytes = b"civicflow-dev-key-change-me"
               ) -> tuple[list[Event], list[Reject], ImportTally]:
    """Adapters over whole files; events come back in `occurred_at` order."""
    tally = ImportTally()
    events: list[Event] = []
    rejects: list[Reject] = []
    seen: set[str] = set()
    for _, _, items in feed_rows(files, caller_key):
        if items and isinstance(items[0], Reject):
            rejects.extend(r for r in items if isinstance(r, Reject))
        events.extend(tally.add(items, seen))
    events.sort(key=event_time_order)
    return events, rejects, tally


def last_line(path: Path) -> str:
    try:
        lines = [ln for ln in path.read_text("utf-8", "replace").splitlines() if ln.strip()]
    except OSError:
        return "no log"
    return lines[-1][-300:] if lines else "no log"


@contextlib.contextmanager
def broker_for(settings: Settings) -> Iterator[str]:
    if settings.bootstrap:
        create_topics(settings.bootstrap, settings.partitions)
        yield settings.bootstrap
    else:
        with embedded_broker(settings.var_dir, settings.partitions,
                             settings.broker_start_timeout) as bootstrap:
            yield bootstrap


@contextlib.contextmanager
def worker_process(settings: Settings, bootstrap: str, mode: str) -> Iterator[subprocess.Popen[bytes]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CIVICFLOW_")}
    env.update(settings.model_copy(update={"bootstrap": bootstrap}).as_env())
    log_path = settings.var_dir / "worker.log"
    with open(log_path, "ab") as log_file:
        proc = subprocess.Popen(
            [sys.executable, "-m", "civicflow", "worker", "--mode", mode],
            env=env, stdout=log_file, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        )
        try:
            yield proc
        finally:
            stop_process(proc, grace=10.0)


@contextlib.contextmanager
def sink_thread(settings: Settings, bootstrap: str, sink: ClickHouseSink) -> Iterator[SinkRunner]:
    runner = SinkRunner(bootstrap, sink, batch_rows=settings.sink_batch_rows,
                        batch_seconds=settings.sink_batch_seconds,
                        retry_max_seconds=settings.sink_retry_max_seconds)
    thread = threading.Thread(target=runner.run, name="civicflow-sink", daemon=True)
    thread.start()
    try:
        yield runner
    finally:
        runner.stop_event.set()
        thread.join(30)


def replay(settings: Settings, files: list[tuple[str, Path]], as_of: datetime | None,
           progress: Progress, timeout: float = 600.0, alertmanager: str | None = None
           ) -> tuple[ReplayResult, ClickHouseSink]:
    """Feed files through broker -> worker -> sink -> ClickHouse in event time; return when
    every event, snapshot and alert has landed (and, given `alertmanager`, was notified)."""
    started = time.monotonic()
    ensure_var_dir(settings.var_dir)
    # fail fast, before anything starts, on a policy or holiday file the worker would refuse
    load_policy(settings.policy)
    WorkingDayCalendar.from_override_file(settings.holiday_file)
    events, rejects, tally = read_feeds(files, settings.caller_hash_key.get_secret_value().encode())
    progress(tally.line())
    if not events:
        raise ConfigError("no events in the input: nothing to replay (see the rejects above)")
    if as_of is None:
        as_of = events[-1].occurred_at
    elif as_of.tzinfo is None:
        raise ConfigError("--as-of needs a UTC offset, e.g. 2026-10-20T08:00:00+08:00")
    sink = ClickHouseSink(connect(settings.clickhouse_dsn()), settings.database)
    applied = migrate(sink.client, settings.database)
    if applied:
        progress(f"migrations applied: {', '.join(applied)}")
    run_id = uuid.uuid4().hex[:12]
    topics = sorted({EVENT_TOPICS[e.source] for e in events})
    expected = 3 * len(topics) * settings.partitions
    with broker_for(settings) as bootstrap:
        progress(f"broker ready at {bootstrap}")
        notifying = contextlib.nullcontext() if alertmanager is None else notifier_thread(
            bootstrap, alertmanager, resend_seconds=settings.notify_resend_seconds,
            ttl_seconds=settings.notify_alert_ttl_seconds)
        with worker_process(settings, bootstrap, "replay") as worker, \
                sink_thread(settings, bootstrap, sink) as runner, notifying as notifier:
            producer = EventProducer(bootstrap)
            for index, event in enumerate(events, start=1):
                producer.send_event(event)
                if index % 20000 == 0:
                    progress(f"produced {index}/{len(events)} events")
            for reject in rejects:
                producer.send_reject(reject)
            for topic in topics:
                producer.send_control(topic, range(settings.partitions),
                                      {"run": run_id, "clock": as_of.isoformat(), "final": True})
            failed = producer.flush()
            del producer  # librdkafka would keep reconnecting to the stopped broker otherwise
            if failed:
                raise BrokerUnavailable(f"{failed} events could not be delivered to the broker")
            progress(f"produced {len(events)} events and {len(rejects)} rejects; waiting for the "
                     "worker and the sink")
            deadline = time.monotonic() + timeout
            last_report = 0.0
            while runner.landed(run_id) < expected or (
                    notifier is not None and notifier.landed(run_id) < len(topics) * settings.partitions):
                if runner.error is not None:
                    raise CivicflowError(f"the sink stopped: {runner.error}")
                if notifier is not None and notifier.error is not None:
                    raise CivicflowError(f"the notifier stopped: {notifier.error}")
                if worker.poll() is not None:
                    log_path = settings.var_dir / "worker.log"
                    raise CivicflowError(
                        f"the worker exited (code {worker.returncode}): {last_line(log_path)} "
                        f"(full log: {log_path})")
                if time.monotonic() > deadline:
                    raise CivicflowError(
                        f"replay not finished after {timeout:.0f}s ({runner.landed(run_id)}/{expected} "
                        f"partitions landed); see {settings.var_dir / 'worker.log'}")
                if time.monotonic() - last_report > 5:
                    rows = dict(runner.stats.rows)
                    progress(f"landed partitions {runner.landed(run_id)}/{expected}, rows {rows}")
                    last_report = time.monotonic()
                time.sleep(0.1)
            rows = dict(runner.stats.rows)
    result = ReplayResult(tally, events, as_of, run_id, time.monotonic() - started, rows)
    return result, sink
