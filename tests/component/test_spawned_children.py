"""A child `spawn` started stops on SIGTERM, whatever the parent did with its stop signals: spawn
blocks SIGINT and SIGTERM around Popen, and a blocked or ignored signal survives fork and exec."""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from civicflow.embedded import spawn, stop_process

pytestmark = pytest.mark.component

SIGINT_BIT = 1 << (signal.SIGINT - 1)
SIGTERM_BIT = 1 << (signal.SIGTERM - 1)


def status_mask(pid: int, field: str) -> int:
    """A signal mask from /proc/PID/status (SigBlk, SigIgn): bit N-1 is signal N."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1], 16)
    raise AssertionError(f"no {field} for {pid}")


@contextmanager
def parent_holding_stop_signals(ignore_sigterm: bool) -> Iterator[None]:
    """This process with SIGINT and SIGTERM blocked (and SIGTERM ignored too if asked), as an
    embedding process may have them; put back as they were afterwards."""
    blocked = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
    handler = signal.signal(signal.SIGTERM, signal.SIG_IGN) if ignore_sigterm else None
    try:
        yield
    finally:
        if handler is not None:
            signal.signal(signal.SIGTERM, handler)
        signal.pthread_sigmask(signal.SIG_SETMASK, blocked)


def started(command: list[str]):
    proc = spawn(command)
    deadline = time.monotonic() + 10
    # the child has run exec when its command line is the one asked for
    while Path(f"/proc/{proc.pid}/cmdline").read_bytes().split(b"\0")[0] != command[0].encode():
        assert time.monotonic() < deadline, "the child never ran its program"
        time.sleep(0.01)
    return proc


@pytest.mark.parametrize("ignore_sigterm", [False, True], ids=["blocked", "blocked-and-ignored"])
def test_a_spawned_child_takes_sigterm_whatever_the_parent_held(ignore_sigterm):
    with parent_holding_stop_signals(ignore_sigterm):
        proc = started(["sleep", "60"])
    try:
        assert status_mask(proc.pid, "SigBlk") & (SIGINT_BIT | SIGTERM_BIT) == 0
        assert status_mask(proc.pid, "SigIgn") & SIGTERM_BIT == 0
        began = time.monotonic()
        stop_process(proc, grace=5.0)
        # ended by the SIGTERM itself, well inside the grace (not the SIGKILL after it)
        assert proc.returncode == -signal.SIGTERM
        assert time.monotonic() - began < 2.0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_spawn_gives_the_parent_its_signal_mask_back():
    before = signal.pthread_sigmask(signal.SIG_BLOCK, set())
    proc = started(["sleep", "60"])
    try:
        assert signal.pthread_sigmask(signal.SIG_BLOCK, set()) == before
    finally:
        stop_process(proc, grace=5.0)
