"""`civicflow ingest` prints its accounting on every way out, and a 50 MB line becomes a
truncated dead letter instead of a message Kafka refuses."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time

import orjson
import pytest
from confluent_kafka import Consumer, TopicPartition

from civicflow.embedded import embedded_broker

pytestmark = pytest.mark.integration
GRID = {"事件ID": "E1", "工单编号": "W1", "事件类型": "上报", "发生时间": "2026-10-03 09:00:00",
        "网格编码": "370102001001003"}
ACCOUNTING = re.compile(r"records read (\d+) = produced (\d+) \+ rejected (\d+) \+ duplicates skipped (\d+)")


def accounting(stdout: str) -> tuple[int, int, int, int]:
    match = ACCOUNTING.search(stdout)
    assert match, stdout
    read, produced, rejected, duplicates = (int(x) for x in match.groups())
    assert read == produced + rejected + duplicates
    return read, produced, rejected, duplicates


def dead_letters(bootstrap: str, expected: int) -> list[dict]:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "t", "enable.auto.commit": False})
    partitions = consumer.list_topics("events.invalid", timeout=10).topics["events.invalid"].partitions
    consumer.assign([TopicPartition("events.invalid", p, 0) for p in partitions])
    found: list[dict] = []
    deadline = time.monotonic() + 30
    while len(found) < expected and time.monotonic() < deadline:
        found += [orjson.loads(m.value()) for m in consumer.consume(100, 0.5) if m.error() is None]
    consumer.close()
    return found


def test_a_50_mb_line_is_a_truncated_dead_letter_and_the_import_goes_on(tmp_path):
    huge = {**GRID, "事件ID": "E2", "说明": "回电13912345678" + "x" * (50 * 1024 * 1024)}
    path = tmp_path / "grid.jsonl"
    path.write_bytes(b"\n".join([orjson.dumps(GRID), orjson.dumps(huge),
                                 orjson.dumps({**GRID, "事件ID": "E3"})]) + b"\n")
    with embedded_broker(tmp_path, 2) as bootstrap:
        proc = subprocess.run(
            [sys.executable, "-m", "civicflow", "ingest", "--format", "jn-grid", str(path),
             "--bootstrap", bootstrap, "--var-dir", str(tmp_path / "var")],
            capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr
        assert accounting(proc.stdout) == (3, 2, 1, 0)
        (letter,) = dead_letters(bootstrap, 1)
    assert letter["truncated"] is True and letter["size"] == len(orjson.dumps(huge))
    assert letter["line"] == 2 and letter["reason"].startswith("size: line of")
    assert len(letter["raw"].encode()) <= 4096 and "13912345678" not in letter["raw"]


def test_ctrl_c_during_an_import_prints_the_accounting_so_far(tmp_path):
    # rejects go to Kafka while the file is read: the first one there says reading has begun
    rows = "".join(f"GD{n},2026-10-03 09:00:00,很急\n" for n in range(400_000))
    path = tmp_path / "h.csv"
    path.write_bytes(("工单编号,来电时间,紧急程度\n" + rows).encode("gbk"))
    with embedded_broker(tmp_path, 2) as bootstrap:
        proc = subprocess.Popen(
            [sys.executable, "-m", "civicflow", "ingest", "--format", "12345", str(path),
             "--bootstrap", bootstrap, "--var-dir", str(tmp_path / "var")],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env={**os.environ, "COLUMNS": "200"})
        consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "w"})
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                high = sum(consumer.get_watermark_offsets(TopicPartition("events.invalid", p), 2)[1]
                           for p in (0, 1))
            except Exception:  # noqa: BLE001 - the topic may not be there yet
                high = 0
            if high > 0:
                break
            time.sleep(0.2)
        consumer.close()
        assert proc.poll() is None, "the import ended before it could be interrupted"
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr and "interrupted" in stderr
    read, produced, rejected, _ = accounting(stdout)
    assert 0 < read < 400_000 and produced == 0 and rejected == read
    assert "stopped early" in stdout
