"""The embedded stack as the fault tests (and `make soak`) drive it: workers as separate processes,
each with its own var dir and log, the sink in a thread, progress watched for stalls."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from civicflow.embedded import create_topics, free_port, stop_process, tansu_binary, wait_for_broker
from civicflow.settings import Settings

LOG_TIME = re.compile(r"^\[(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3})\]")
REBUILT = re.compile(r"deadline heaps rebuilt: (\d+) cases on (\d+) partitions")


@dataclass
class WorkerProcess:
    index: int
    proc: subprocess.Popen[bytes]
    log: Path

    def lines(self) -> list[str]:
        try:
            return self.log.read_text("utf-8", "replace").splitlines()
        except OSError:
            return []

    def rebuilt_at(self) -> list[tuple[float, int]]:
        """(wall time, partitions) of every deadline-heap rebuild: the worker ready on a new
        assignment (its changelog recovered)."""
        out = []
        for line in self.lines():
            found = REBUILT.search(line)
            stamp = LOG_TIME.match(line)
            if found and stamp:
                at = datetime.strptime(stamp.group(1), "%Y-%m-%d %H:%M:%S,%f").timestamp()
                out.append((at, int(found.group(2))))
        return out

    def tail(self, lines: int = 30) -> str:
        return "\n".join(self.lines()[-lines:])


def start_worker(settings: Settings, bootstrap: str, mode: str, index: int, root: Path,
                 loglevel: str = "INFO") -> WorkerProcess:
    """`civicflow worker` in its own process, var dir and log (INFO: rebalances and recovery
    are in the log)."""
    folder = root / f"worker-{index}"
    folder.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("CIVICFLOW_")}
    env.update(settings.model_copy(update={"bootstrap": bootstrap, "var_dir": folder}).as_env())
    env["CIVICFLOW_WORKER_LOGLEVEL"] = loglevel
    log = folder / "worker.log"
    with open(log, "ab") as out:
        proc = subprocess.Popen([sys.executable, "-m", "civicflow", "worker", "--mode", mode],
                                env=env, stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL)
    return WorkerProcess(index, proc, log)


def stop_workers(workers: list[WorkerProcess]) -> None:
    for worker in workers:
        stop_process(worker.proc, grace=15.0)


def wait_until_assigned(workers: list[WorkerProcess], timeout: float = 180.0) -> None:
    """Every worker holds partitions (its last rebuild covered some) and the group has been
    quiet (no new rebuild) for a few seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for worker in workers:
            assert worker.proc.poll() is None, f"worker {worker.index} exited:\n{worker.tail()}"
        last = [w.rebuilt_at() for w in workers]
        if all(r and r[-1][1] > 0 for r in last) and time.time() - max(r[-1][0] for r in last) > 4:
            return
        time.sleep(0.5)
    raise AssertionError("the workers never all held partitions:\n" +
                         "\n".join(w.tail(10) for w in workers))


def settle(value: Callable[[], object], quiet: float, timeout: float = 120.0) -> None:
    """Wait until `value()` has not changed for `quiet` seconds."""
    last, since, started = value(), time.monotonic(), time.monotonic()
    while time.monotonic() - since < quiet:
        assert time.monotonic() - started < timeout, f"still changing after {timeout:.0f}s"
        time.sleep(0.2)
        now = value()
        if now != last:
            last, since = now, time.monotonic()


def wait_for_progress(done: Callable[[], bool], progress: Callable[[], object], *,
                      stall_seconds: float, timeout: float, what: str,
                      check: Callable[[], None] = lambda: None, poll: float = 0.2) -> float:
    """Wait until `done()`; fail if `progress()` stays the same for `stall_seconds` (a stall) or
    the whole wait passes `timeout`. Returns the seconds waited."""
    started = time.monotonic()
    last_value = progress()
    last_change = started
    while not done():
        check()
        now = time.monotonic()
        value = progress()
        if value != last_value:
            last_value, last_change = value, now
        assert now - last_change < stall_seconds, (
            f"{what}: no progress for {now - last_change:.0f}s (stuck at {value})")
        assert now - started < timeout, f"{what}: not done after {timeout:.0f}s (at {value})"
        time.sleep(poll)
    return time.monotonic() - started


class RestartableBroker:
    """Tansu on a fixed port, memory storage: a restart comes back with fresh state."""

    def __init__(self, log_dir: Path, partitions: int = 2) -> None:
        self.partitions = partitions
        self.port = free_port()
        self.bootstrap = f"127.0.0.1:{self.port}"
        self.log_dir = log_dir
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        url = f"tcp://127.0.0.1:{self.port}"
        with open(self.log_dir / "broker.log", "ab") as log:
            self.proc = subprocess.Popen(
                [tansu_binary(), "broker", "--listener-url", url, "--advertised-listener-url", url,
                 "--storage-engine", "memory://tansu/"], stdout=log, stderr=subprocess.STDOUT)
        wait_for_broker(self.bootstrap, 30, self.proc)
        create_topics(self.bootstrap, self.partitions)

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc)
