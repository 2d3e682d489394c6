"""Where the worker's time goes in an end-to-end replay (as `bench worker-e2e`): py-spy samples
the worker process from the first landed snapshot to the last, then the main thread's samples
are summed by what they were doing.

    python -m bench.profile_e2e [days] [raw-output]

py-spy is not a project dependency: put it on PATH (`pip install py-spy`) or name it in SPY."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from bench.bench_worker import replay_end_to_end

FAUST_PATH = ("Fetcher._fetcher", "_drain_messages", "on_message", "Stream._c_aiter",
              "_passive_drainer", "take_events", "Event.ack", "create_event", "Channel.__anext__",
              "FlowControlQueue")


def category(stack: str) -> str:
    if "streams/processor.py" in stack:
        return "CaseProcessor.process"
    if "send (streams/app.py" in stack:
        return "OutputSender.send (produce + flush)"
    if "EpollSelector.select" in stack:
        return "idle (waiting in select)"
    if any(name in stack for name in FAUST_PATH):
        return "Faust's per-message path"
    return "the event loop itself and the rest"


def summarize(raw: Path) -> Counter[str]:
    shares: Counter[str] = Counter()
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if "MainThread" in stack.split(";", 1)[0]:
            shares[category(stack)] += int(count)
    return shares


def main() -> int:
    days = int(sys.argv[1]) if len(sys.argv) > 1 else 28
    raw = Path(sys.argv[2] if len(sys.argv) > 2 else "e2e-profile.txt").resolve()
    spy_binary = os.environ.get("SPY") or shutil.which("py-spy")
    if spy_binary is None:
        print("py-spy not found: pip install py-spy, or set SPY=/path/to/py-spy", file=sys.stderr)
        return 2

    def start_profiler(pid: int) -> Callable[[], None]:
        spy = subprocess.Popen(
            [spy_binary, "record", "-p", str(pid), "--idle", "--threads", "-r", "50", "-f", "raw",
             "-o", str(raw), "--nonblocking"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

        def stop() -> None:
            spy.send_signal(signal.SIGINT)
            spy.wait(30)
        return stop

    produced, started, first, done = replay_end_to_end(days, start_profiler)
    print(f"{produced:,} events in {done - first:.1f} s = {produced / (done - first):,.0f} events/s "
          f"(start-up {first - started:.1f} s not counted); samples in {raw}")
    shares = summarize(raw)
    total = sum(shares.values()) or 1
    for name, count in shares.most_common():
        print(f"{100 * count / total:5.1f} %  {name}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
