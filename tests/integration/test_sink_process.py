"""`civicflow sink` as its own process (production mode): it writes what Kafka holds, exposes
its metrics, stops cleanly on SIGTERM; `civicflow report` then reads the same ClickHouse."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request

import pytest

from civicflow.embedded import embedded_broker, free_port
from producers.kafka import EventProducer
from tests.conftest import cn, ev

pytestmark = pytest.mark.integration


def scrape(port: int) -> str:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as response:
            return response.read().decode()
    except OSError:
        return ""


def test_sink_process_writes_reports_and_stops(tmp_path):
    dsn = f"chdb://{tmp_path / 'clickhouse'}"
    port = free_port()
    with embedded_broker(tmp_path, 2) as bootstrap:
        producer = EventProducer(bootstrap)
        for i in range(25):
            producer.send_event(ev(f"s{i}", "created", cn(2026, 10, 12, 9, i),
                                   case=f"grid:jn-grid:S{i}", district="370102"))
        producer.flush()
        del producer
        env = {**os.environ, "CIVICFLOW_METRICS_PORT": str(port)}
        sink = subprocess.Popen([sys.executable, "-m", "civicflow", "sink", "--bootstrap", bootstrap,
                                 "--clickhouse", dsn], env=env, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 60
        line = 'civicflow_sink_rows_written_total{table="events"} 25.0'
        while line not in scrape(port) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert line in scrape(port)
        assert "civicflow_sink_healthy 1.0" in scrape(port)
        sink.send_signal(signal.SIGTERM)
        stderr = sink.communicate(timeout=30)[1]
    assert sink.returncode in (0, 130) and "Traceback" not in stderr
    report = subprocess.run([sys.executable, "-m", "civicflow", "report", "--clickhouse", dsn],
                            capture_output=True, text=True, timeout=60)
    assert report.returncode == 0, report.stderr
    assert "events 25, rejects 0" in report.stdout
