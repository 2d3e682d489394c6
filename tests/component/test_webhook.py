"""The property webhook over real HTTP on 127.0.0.1, against the embedded broker."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

import orjson
import pytest
from aiohttp.test_utils import TestClient, TestServer
from confluent_kafka import Consumer, TopicPartition

from civicflow.embedded import (
    embedded_broker,
    free_port,
)
from producers.webhook import PATH, AcknowledgedSender, DeliveryFailed, build_app, signature
from tests.stack import RestartableBroker

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


def now_stamp() -> str:
    return str(int(time.time()))


def post(url: str, body: bytes, sig: str | None, stamp: str | None = None,
         content_type: str | None = "application/json") -> tuple[int, dict, dict]:
    """Status, JSON reply and headers of a POST; `sig` None sends no X-Signature."""
    headers = {"Content-Type": content_type} if content_type else {}
    if sig is not None:
        headers["X-Signature"] = sig
    if stamp is not None:
        headers["X-Timestamp"] = stamp
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=15) as response:
            return response.status, json.loads(response.read()), dict(response.headers)
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read()), dict(exc.headers)


def signed(url: str, body: bytes, secret: bytes = SECRET, **kwargs: object) -> tuple[int, dict, dict]:
    stamp = now_stamp()
    return post(url, body, signature(secret, stamp, body), stamp, **kwargs)  # type: ignore[arg-type]


def test_good_request_is_acknowledged_and_on_kafka(server):
    url, bootstrap, _ = server
    body = orjson.dumps(BODY)
    status, reply, _ = signed(url, body)
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
    body, stamp = orjson.dumps(BODY), now_stamp()
    assert post(url, body, signature(b"wrong", stamp, body), stamp)[0] == 401
    assert post(url, body, None, stamp)[0] == 401
    assert post(url, body + b" ", signature(SECRET, stamp, body), stamp)[0] == 401  # body changed
    later = str(int(stamp) + 1)
    assert post(url, body, signature(SECRET, stamp, body), later)[0] == 401  # timestamp changed


def test_malformed_body_is_422_with_the_reason(server):
    url, _, _ = server
    for body, needle in ((b"{not json", "not JSON"),
                         (orjson.dumps({**BODY, "time": "yesterday"}), "time"),
                         (orjson.dumps({**BODY, "company_code": "C002"}), "not the firm"),
                         (orjson.dumps({**BODY, "time": "1900-01-01T09:00:00+08:00"}),
                          "time 1900-01-01T09:00:00+08:00 is before 2000-01-01"),
                         (orjson.dumps({**BODY, "time": "2999-01-01T09:00:00+08:00"}),
                          "in the future")):
        status, reply, _ = signed(url, body)
        assert status == 422 and needle in reply["error"]


def test_oversized_body_is_413_and_bodies_are_not_logged(server):
    url, _, var = server
    body = orjson.dumps({**BODY, "category": "x" * 70_000})
    assert signed(url, body)[0] == 413
    assert b"WY9" not in (var / "webhook.log").read_bytes()


def test_a_body_in_two_tcp_segments_is_read_whole(server):
    url, _, _ = server
    port = int(url.split(":")[2].split("/")[0])
    body = orjson.dumps({**BODY, "order_id": "WY-SEG"})
    stamp = now_stamp()
    head = (f"POST {PATH} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\nX-Timestamp: {stamp}\r\n"
            f"X-Signature: {signature(SECRET, stamp, body)}\r\nConnection: close\r\n\r\n").encode()
    with socket.create_connection(("127.0.0.1", port), timeout=15) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.sendall(head + body[:40])
        time.sleep(0.5)
        sock.sendall(body[40:])
        reply = b""
        while chunk := sock.recv(4096):
            reply += chunk
    assert reply.startswith(b"HTTP/1.1 202"), reply[:300]


def test_only_json_is_accepted(server):
    url, _, _ = server
    body = orjson.dumps({**BODY, "order_id": "WY-CT"})
    for content_type in ("text/plain", "application/x-www-form-urlencoded", None):
        status, reply, _ = signed(url, body, content_type=content_type)
        assert status == 415 and "application/json" in reply["error"]
    assert signed(url, body, content_type="application/json; charset=utf-8")[0] == 202


def test_unsigned_or_stale_timestamps_are_401_with_the_reason(server):
    url, _, _ = server
    body = orjson.dumps({**BODY, "order_id": "WY-TS"})
    status, reply, _ = post(url, body, "sha256=" + hmac.new(SECRET, body, hashlib.sha256).hexdigest())
    assert status == 401 and "X-Timestamp is missing" in reply["error"]  # the old signing
    stale = str(int(time.time()) - 301)
    status, reply, _ = post(url, body, signature(SECRET, stale, body), stale)
    assert status == 401 and "behind the server clock (more than 5 minutes)" in reply["error"]
    ahead = str(int(time.time()) + 400)
    status, reply, _ = post(url, body, signature(SECRET, ahead, body), ahead)
    assert status == 401 and "ahead of the server clock" in reply["error"]
    assert post(url, body, signature(SECRET, "soon", body), "soon")[0] == 401
    fresh = str(int(time.time()) - 200)  # within the window: accepted
    assert post(url, body, signature(SECRET, fresh, body), fresh)[0] == 202


def test_the_producer_is_rebuilt_after_the_broker_comes_back_with_fresh_state(tmp_path):
    broker = RestartableBroker(tmp_path)
    broker.start()
    sender = AcknowledgedSender(broker.bootstrap, timeout=3.0)

    async def scenario() -> tuple[list[tuple[int, str | None]], str]:
        app = build_app({"C001": SECRET}, sender)
        async with TestClient(TestServer(app)) as client:
            async def send(order: str) -> tuple[int, str | None, dict]:
                body = orjson.dumps({**BODY, "order_id": order})
                stamp = now_stamp()
                response = await client.post(PATH, data=body, headers={
                    "Content-Type": "application/json", "X-Timestamp": stamp,
                    "X-Signature": signature(SECRET, stamp, body)})
                return response.status, response.headers.get("Retry-After"), await response.json()

            first = await send("WY-BEFORE")
            assert first[0] == 202, first
            await asyncio.to_thread(broker.stop)
            await asyncio.to_thread(broker.start)
            outcomes: list[tuple[int, str | None]] = []
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                status, retry_after, reply = await send(f"WY-AFTER{len(outcomes)}")
                outcomes.append((status, retry_after))
                if status == 202:
                    return outcomes, reply["event_id"]
            return outcomes, ""

    try:
        outcomes, event_id = asyncio.run(scenario())
        assert outcomes[-1][0] == 202, outcomes
        assert all(outcome == (503, "5") for outcome in outcomes[:-1])
        assert sender.rebuilds >= 1
        consumer = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "t2",
                             "enable.auto.commit": False})
        consumer.assign([TopicPartition("events.property", p, 0) for p in range(2)])
        found: list[str] = []
        deadline = time.monotonic() + 15
        while event_id not in found and time.monotonic() < deadline:
            found += [orjson.loads(m.value())["event_id"] for m in consumer.consume(100, 0.5)
                      if m.error() is None]
        consumer.close()
        assert event_id in found  # on the new broker
    finally:
        sender.close()
        broker.stop()


def test_503_says_when_to_retry():
    async def failing(_event: object) -> None:
        raise DeliveryFailed("broker down")

    async def scenario() -> tuple[int, str | None, dict]:
        async with TestClient(TestServer(build_app({"C001": SECRET}, failing))) as client:
            body, stamp = orjson.dumps(BODY), now_stamp()
            response = await client.post(PATH, data=body, headers={
                "Content-Type": "application/json", "X-Timestamp": stamp,
                "X-Signature": signature(SECRET, stamp, body)})
            return response.status, response.headers.get("Retry-After"), await response.json()

    status, retry_after, reply = asyncio.run(scenario())
    assert (status, retry_after) == (503, "5") and "send it again" in reply["error"]


def test_503_while_the_broker_does_not_acknowledge_then_202_and_one_id(tmp_path):
    """A real broker that stops answering (SIGSTOP: the connection stays open, nothing is
    acknowledged): the webhook answers 503 with Retry-After once its wait for the
    acknowledgement runs out, never 202. Resumed, the same body is taken (202). The unacknowledged
    attempt may still have been stored meanwhile (at-least-once): every copy of the event on the
    topic carries the same deterministic event id, which the worker and ClickHouse keep once."""
    import signal

    broker = RestartableBroker(tmp_path)
    broker.start()
    sender = AcknowledgedSender(broker.bootstrap, timeout=3.0)
    assert broker.proc is not None

    async def scenario() -> list[tuple[int, str | None, dict, float]]:
        app = build_app({"C001": SECRET}, sender)
        async with TestClient(TestServer(app)) as client:
            async def send(order: str) -> tuple[int, str | None, dict, float]:
                body = orjson.dumps({**BODY, "order_id": order})
                stamp = now_stamp()
                started = time.monotonic()
                response = await client.post(PATH, data=body, headers={
                    "Content-Type": "application/json", "X-Timestamp": stamp,
                    "X-Signature": signature(SECRET, stamp, body)})
                return (response.status, response.headers.get("Retry-After"),
                        await response.json(), time.monotonic() - started)

            outcomes = [await send("WY-UP")]
            broker.proc.send_signal(signal.SIGSTOP)  # type: ignore[union-attr]
            try:
                outcomes.append(await send("WY-PAUSED"))
            finally:
                broker.proc.send_signal(signal.SIGCONT)  # type: ignore[union-attr]
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                outcomes.append(await send("WY-PAUSED"))  # the client sends it again
                if outcomes[-1][0] == 202:
                    break
            return outcomes

    try:
        outcomes = asyncio.run(scenario())
        up, paused, *retries = outcomes
        assert up[0] == 202
        status, retry_after, reply, seconds = paused
        assert (status, retry_after) == (503, "5") and "send it again" in reply["error"]
        assert 3.0 <= seconds < 15, f"answered after {seconds:.1f}s"
        assert retries[-1][0] == 202 and all(r[0] in (202, 503) for r in retries)
        event_id = retries[-1][2]["event_id"]
        consumer = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "t503",
                             "enable.auto.commit": False})
        consumer.assign([TopicPartition("events.property", p, 0) for p in range(2)])
        found: list[dict] = []
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and sum(e["case_id"] == "property:wuye:WY-PAUSED"
                                                  for e in found) < 1:
            found += [orjson.loads(m.value()) for m in consumer.consume(100, 0.5) if m.error() is None]
        found += [orjson.loads(m.value()) for m in consumer.consume(100, 3.0) if m.error() is None]
        consumer.close()
        copies = [e for e in found if e["case_id"] == "property:wuye:WY-PAUSED"]
        print(f"503 after {seconds:.1f}s; {len(retries)} retries; {len(copies)} copies on the topic")
        assert 1 <= len(copies) <= 1 + len(retries) and {e["event_id"] for e in copies} == {event_id}
    finally:
        sender.close()
        broker.stop()
