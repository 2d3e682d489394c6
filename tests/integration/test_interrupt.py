"""Ctrl-C in the middle of a demo stops the whole embedded stack: no broker, no worker left."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration


def processes_with(text: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            blob = (entry / "environ").read_bytes() + (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if text.encode() in blob:
            found.append(int(entry.name))
    return found


def test_ctrl_c_stops_broker_and_worker(tmp_path):
    proc = subprocess.Popen(
        [sys.executable, "-m", "civicflow", "demo", "--var-dir", str(tmp_path), "--days", "3"],
        stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
    bootstrap = None
    deadline = time.monotonic() + 60
    assert proc.stderr is not None
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        match = re.search(r"broker ready at (127\.0\.0\.1:\d+)", line)
        if match:
            bootstrap = match.group(1)
            break
    assert bootstrap, "the demo never reported its broker"
    deadline = time.monotonic() + 30
    while not processes_with(f"CIVICFLOW_BOOTSTRAP={bootstrap}") and time.monotonic() < deadline:
        time.sleep(0.1)
    assert processes_with(f"CIVICFLOW_BOOTSTRAP={bootstrap}"), "the worker never started"
    proc.send_signal(signal.SIGINT)
    rest = proc.communicate(timeout=60)[1]
    assert proc.returncode == 130, rest
    assert "interrupted" in rest and "Traceback" not in rest, rest
    host, port = bootstrap.split(":")
    with pytest.raises(OSError):
        socket.create_connection((host, int(port)), timeout=1).close()
    assert processes_with(f"CIVICFLOW_BOOTSTRAP={bootstrap}") == []
