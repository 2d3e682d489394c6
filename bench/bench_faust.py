"""Baseline for the worker: a bare Faust agent (take_events, no work at all) on the same broker.
This is the ceiling Faust's per-message stream puts on any Faust worker on this machine."""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

from confluent_kafka import Producer

from civicflow.embedded import embedded_broker
from producers.kafka import producer_config

AGENT = '''
import faust, os, time
app = faust.App("bench-bare", broker="kafka://{bootstrap}", store="memory://", topic_partitions=4,
                key_serializer="raw", value_serializer="raw", web_enabled=False,
                broker_rebalance_timeout=3.0, broker_session_timeout=10.0,
                broker_heartbeat_interval=1.0, stream_buffer_maxsize=65536,
                broker_max_poll_records=20000, consumer_auto_offset_reset="earliest",
                consumer_max_fetch_size=16 * 1024 * 1024)
topic = app.topic("events.grid", key_type=bytes, value_type=bytes, key_serializer="raw",
                  value_serializer="raw")
state = {{"n": 0, "t0": None}}

@app.agent(topic)
async def bare(stream):
    async for batch in stream.take_events(10000, within=0.2):
        if state["t0"] is None:
            state["t0"] = time.perf_counter()
        state["n"] += len(batch)
        if state["n"] >= {count}:
            with open({out!r}, "w") as handle:  # Faust captures stdout into its log
                handle.write(str(state["n"] / (time.perf_counter() - state["t0"])))
            os._exit(0)

faust.Worker(app, loglevel="WARNING", quiet=True).execute_from_commandline()
'''


def bare_faust_rate(count: int = 60_000) -> float:
    with tempfile.TemporaryDirectory() as tmp, embedded_broker(Path(tmp), 4) as bootstrap:
        producer = Producer(producer_config(bootstrap))
        for i in range(count):
            while True:
                try:
                    producer.produce("events.grid", b"x" * 300, str(i).encode())
                    break
                except BufferError:
                    producer.poll(0.05)
        producer.flush(60)
        del producer
        out = Path(tmp) / "rate.txt"
        done = subprocess.run(
            [sys.executable, "-c", AGENT.format(bootstrap=bootstrap, count=count, out=str(out))],
            capture_output=True, text=True, timeout=300)
        if not out.exists():
            raise RuntimeError(f"the bare Faust agent reported nothing: {done.stderr[-500:]}")
        return float(out.read_text())
