"""A year of history through `civicflow replay` (broker -> Faust worker -> sink -> chDB): events/s,
the peak RSS of every process and the disk used, next to a raw confluent-kafka produce and
consume of the same event bytes on the same machine in the same run.

The year: 52 weeks of three feeds (grid JSON Lines, 12345 GBK CSV, property JSON Lines) of
a city of 8 districts, one file per feed and 4 weeks, as a bureau receives them. Its size is
`CIVICFLOW_BENCH_YEAR_EVENTS` (default 500,000 events: a city of ~3 M people makes ~10 M a
year, and at today's worker rate, 300-800 events/s on this shared machine, a twentieth of
that is what fits a ~25-minute bench; the projection line scales the measured rate to the full
year). `CIVICFLOW_BENCH_YEAR_EVENTS=50000` runs it small.
"""

from __future__ import annotations

import os
import re
import shutil
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path

from confluent_kafka import Consumer, Producer, TopicPartition

from bench.common import Result
from civicflow.embedded import embedded_broker
from producers.kafka import producer_config

DEFAULT_EVENTS = 500_000
START = date(2025, 6, 2)  # a Monday: the year and its deadlines stay inside the known calendar
WEEKS_PER_FILE, FILES, DISTRICTS = 4, 13, 8
# events per case in the simulator (measured): grid 5.3 lines, a 12345 row 4.6, property 5
SHARES = {"grid": (0.45, 5.3), "hotline": (0.40, 4.6), "property": (0.15, 5.0)}
IN_MEMORY_BYTES_PER_EVENT = 2_600  # what the replay of before held per event (issue 17)


def simulate_year(out: Path, events: int) -> list[str]:
    """The feed files of a year, written one 4-week chunk at a time (bounded memory); returns
    the replay's arguments: --format F FILES... per feed."""
    from producers.simulator import hotline_csv, simulate_grid, simulate_hotline, simulate_property, write_lines

    days = WEEKS_PER_FILE * 7
    per_day = {feed: max(1, round(events * share / (FILES * days) / per_case / DISTRICTS))
               for feed, (share, per_case) in SHARES.items()}
    grid, hotline, prop = [], [], []
    for chunk in range(FILES):
        start = START + timedelta(days=chunk * days)
        common = {"seed": 100 + chunk, "start": start, "days": days, "districts": DISTRICTS}
        grid.append(out / f"grid-{chunk:02d}.jsonl")
        write_lines(str(grid[-1]), simulate_grid(cases_per_day=per_day["grid"], **common))
        hotline.append(out / f"hotline-{chunk:02d}.csv")
        hotline[-1].write_bytes(hotline_csv(simulate_hotline(cases_per_day=per_day["hotline"], **common),
                                            "gbk"))
        prop.append(out / f"property-{chunk:02d}.jsonl")
        write_lines(str(prop[-1]), simulate_property(cases_per_day=per_day["property"], **common))
    return ["--format", "jn-grid", *map(str, grid), "--format", "12345", *map(str, hotline),
            "--format", "wuye", *map(str, prop)]


def write_payloads(feed_args: list[str], out: Path) -> int:
    """The replay's event bytes (each event once, in event time), length-prefixed in a file."""
    from civicflow.cli import build_parser
    from civicflow.commands import feed_files
    from producers.ingest import EventTimeImport

    files = feed_files(build_parser().parse_args(["replay", *feed_args]))
    with EventTimeImport(files, b"civicflow-dev-key-change-me", spill_dir=out.parent) as feed, \
            open(out, "wb") as handle:
        feed.read(lambda _reject: None, lambda *_: None)
        for event in feed.in_order():
            key = event.case_id.encode()
            handle.write(struct.pack(">II", len(key), len(event.payload)) + key + event.payload)
        return feed.count


def read_payloads(path: Path) -> Iterator[tuple[bytes, bytes]]:
    with open(path, "rb") as handle:
        while header := handle.read(8):
            key_size, value_size = struct.unpack(">II", header)
            yield handle.read(key_size), handle.read(value_size)


def raw_produce_consume(payloads: Path, count: int, var: Path) -> float:
    """events/s of a raw confluent-kafka produce of the bytes, then a consume of them back."""
    with embedded_broker(var, 4) as bootstrap:
        started = time.perf_counter()
        producer = Producer(producer_config(bootstrap))
        for index, (key, value) in enumerate(read_payloads(payloads)):
            while True:
                try:
                    producer.produce("events.grid", value, key, partition=index % 4)
                    break
                except BufferError:
                    producer.poll(0.05)
        producer.flush(300)
        del producer
        consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "bench-raw",
                             "fetch.max.bytes": 64 * 1024 * 1024, "log_level": 4})
        consumer.assign([TopicPartition("events.grid", p, 0) for p in range(4)])
        seen = 0
        while seen < count:
            seen += sum(1 for m in consumer.consume(10_000, 1.0) if m.error() is None)
        consumer.close()
        return count / (time.perf_counter() - started)


class Sampler:
    """Peak RSS of a process and its children (by role), and the peak size of a folder."""

    def __init__(self, root: int, folder: Path) -> None:
        self.root, self.folder = root, folder
        self.peak_mb: dict[str, float] = {}
        self.peak_disk_mb = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        last_disk = 0.0
        while not self._stop.is_set():
            for pid, role in self._processes():
                high = _status_kb(pid, "VmHWM")
                if high is not None:
                    self.peak_mb[role] = max(self.peak_mb.get(role, 0.0), high / 1024)
            if time.monotonic() - last_disk > 10:
                last_disk = time.monotonic()
                self.peak_disk_mb = max(self.peak_disk_mb, _folder_mb(self.folder))
            self._stop.wait(1.0)

    def _processes(self) -> list[tuple[int, str]]:
        found = [(self.root, "replay CLI (with the sink thread and chDB)")]
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                stat = (entry / "stat").read_text()
                cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) != self.root:
                continue
            role = "broker (Tansu, memory storage)" if "tansu" in cmdline else (
                "worker (Faust)" if " worker" in cmdline else cmdline[:40])
            found.append((int(entry.name), role))
        return found


def _found(pattern: str, text: str) -> str:
    match = re.search(pattern, text, re.M)
    if match is None:
        raise RuntimeError(f"the replay's output lacks {pattern!r}")
    return match.group(1)


def _status_kb(pid: int, field: str) -> int | None:
    try:
        match = re.search(rf"^{field}:\s+(\d+)", Path(f"/proc/{pid}/status").read_text(), re.M)
    except OSError:
        return None
    return int(match.group(1)) if match else None


def _folder_mb(folder: Path) -> float:
    total = 0
    for root, _, files in os.walk(folder):
        for name in files:
            try:
                total += os.stat(os.path.join(root, name)).st_blocks * 512
            except OSError:
                pass
    return total / 2**20


def run(events: int | None = None) -> list[Result]:
    events = events or int(os.environ.get("CIVICFLOW_BENCH_YEAR_EVENTS", DEFAULT_EVENTS))
    work = Path(tempfile.mkdtemp(prefix="civicflow-year-"))
    try:
        return _run(events, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _run(target: int, work: Path) -> list[Result]:
    feeds = work / "feeds"
    feeds.mkdir()
    # the simulator and the baseline's adapters run in a child process: not in any figure
    feed_args = subprocess.run(
        [sys.executable, "-m", "bench.bench_year", "simulate", str(feeds), str(target)],
        check=True, capture_output=True, text=True).stdout.split()
    input_mb = _folder_mb(feeds)
    payloads = work / "payloads.bin"
    count = int(subprocess.run(
        [sys.executable, "-m", "bench.bench_year", "payloads", str(payloads), *feed_args],
        check=True, capture_output=True, text=True).stdout)
    payload_mb = payloads.stat().st_size / 2**20
    raw_rate = raw_produce_consume(payloads, count, work / "raw")
    payloads.unlink()

    var = work / "var"
    log = work / "replay.log"
    started = time.perf_counter()
    with open(log, "wb") as log_file:
        replay = subprocess.Popen(
            [sys.executable, "-m", "civicflow", "replay", "--var-dir", str(var), "--partitions", "4",
             *feed_args], stdout=subprocess.DEVNULL, stderr=log_file)
        sampler = Sampler(replay.pid, var)
        code = replay.wait()
        sampler.stop()
    seconds = time.perf_counter() - started
    text = log.read_text("utf-8", "replace")
    if code != 0:
        raise RuntimeError(f"the year replay failed (exit {code}): {text[-2000:]}")
    print(text[-3000:], file=sys.stderr)
    replayed = int(_found(r"replayed ([\d,]+) events", text).replace(",", ""))
    read_done = float(_found(r"^\s*([\d.]+)s records read", text))
    rate = replayed / seconds
    peaks = sampler.peak_mb
    cli = next(mb for role, mb in peaks.items() if role.startswith("replay CLI"))
    name = f"year replay ({replayed:,} events, 52 weeks, 3 feeds, {FILES * 3} files, {input_mb:,.0f} MB)"
    results = [
        Result(f"{name}: {seconds / 60:.1f} min end to end, {read_done:.0f} s of it reading and "
               "sorting", "events/s", rate, "raw produce + consume of the same event bytes", raw_rate,
               ">= 10,000 events/s"),
        Result("year replay, projected for a full year of a ~3 M city (10,000,000 events): "
               f"{10_000_000 / rate / 3600:.1f} h", "events/s", rate, "the 10,000 events/s target",
               10_000, "a year overnight"),
        Result(f"peak RSS, replay CLI (with the sink thread and chDB) over {replayed:,} events", "MB",
               cli, "the in-memory replay of before (2.6 KB per event)",
               replayed * IN_MEMORY_BYTES_PER_EVENT / 2**20, "< 1,024 MB whatever the input"),
    ]
    for role, mb in sorted(peaks.items()):
        if not role.startswith("replay CLI"):
            results.append(Result(f"peak RSS, {role}", "MB", mb, f"the event bytes ({payload_mb:,.0f} MB)",
                                  payload_mb, "-"))
    results.append(Result("peak disk under the var dir (sort runs + chDB)", "MB", sampler.peak_disk_mb,
                          "the input files", input_mb, "-"))
    return results


if __name__ == "__main__":
    if sys.argv[1] == "simulate":
        print(" ".join(simulate_year(Path(sys.argv[2]), int(sys.argv[3]))))
    elif sys.argv[1] == "payloads":
        print(write_payloads(sys.argv[3:], Path(sys.argv[2])))
