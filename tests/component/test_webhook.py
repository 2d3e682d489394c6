"""The property webhook over real HTTP on 127.0.0.1, against the embedded broker."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request

import orjson
import pytest
from confluent_kafka import Consumer, TopicPartition

from civicflow.embedded import embedded_broker, free_port
from producers.webhook import PATH, signature

pytestmark = pytest.mark.component
SECRET = b"firm-secret"
BODY = {"order_id": "WY9", "community_code": "370102001002", "event": "报修",
        "time": "2026-10-03T09:15:00+08:00", "category": "电梯故障", "urgent": True,
        "company_code": "C001"}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    var = tmp_path_factory.mktemp("webhook")
    with embedded_broker(var, 2) as bootstrap:
        port = free_port()
        env = {**os.environ, "CIVICFLOW_BOOTSTRAP": bootstrap, "CIVICFLOW_PARTITIONS": "2",
               "CIVICFLOW_PROPERTY_SECRETS": json.dumps({"C001": SECRET.decode(), "C002": "other"}),
               "CIVICFLOW_WEBHOOK_PORT": str(port)}
        log = open(var / "webhook.log", "wb")  # noqa: SIM115
        proc = subprocess.Popen([sys.executable, "-m", "civicflow", "serve-ingest"], env=env,
                                stdout=log, stderr=subprocess.STDOUT)
        url = f"http://127.0.0.1:{port}{PATH}"
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                urllib.request.urlopen(urllib.request.Request(url, data=b"{}", method="POST"), timeout=1)
            except urllib.error.HTTPError:
                break
            except OSError:
                time.sleep(0.2)
        try:
            yield url, bootstrap, var
        finally:
            proc.terminate()
            proc.wait(10)
            log.close()


def post(url: str, body: bytes, sig: str | None) -> tuple[int, dict]:
    headers = {"Content-Type": "application/json"}
    if sig is not None:
        headers["X-Signature"] = sig
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=15) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_good_request_is_acknowledged_and_on_kafka(server):
    url, bootstrap, _ = server
    body = orjson.dumps(BODY)
    status, reply = post(url, body, signature(SECRET, body))
    assert status == 202 and reply["case_id"] == "property:wuye:WY9"
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "t", "enable.auto.commit": False})
    consumer.assign([TopicPartition("events.property", p, 0) for p in range(2)])
    found = []
    deadline = time.monotonic() + 15
    while not found and time.monotonic() < deadline:
        found = [m for m in consumer.consume(100, 0.5) if m.error() is None]
    consumer.close()
    assert [orjson.loads(m.value())["event_id"] for m in found] == [reply["event_id"]]


def test_bad_signature_is_401(server):
    url, _, _ = server
    body = orjson.dumps(BODY)
    assert post(url, body, signature(b"wrong", body))[0] == 401
    assert post(url, body, None)[0] == 401
    assert post(url, body + b" ", signature(SECRET, body))[0] == 401  # body changed after signing


def test_malformed_body_is_422_with_the_reason(server):
    url, _, _ = server
    for body, needle in ((b"{not json", "not JSON"),
                         (orjson.dumps({**BODY, "time": "yesterday"}), "time"),
                         (orjson.dumps({**BODY, "company_code": "C002"}), "not the firm"),
                         (orjson.dumps({**BODY, "time": "1900-01-01T09:00:00+08:00"}),
                          "time 1900-01-01T09:00:00+08:00 is before 2000-01-01"),
                         (orjson.dumps({**BODY, "time": "2999-01-01T09:00:00+08:00"}),
                          "in the future")):
        status, reply = post(url, body, signature(SECRET, body))
        assert status == 422 and needle in reply["error"]


def test_oversized_body_is_413_and_bodies_are_not_logged(server):
    url, _, var = server
    body = orjson.dumps({**BODY, "category": "x" * 70_000})
    assert post(url, body, signature(SECRET, body))[0] == 413
    assert b"WY9" not in (var / "webhook.log").read_bytes()
