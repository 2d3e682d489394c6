"""The property-service webhook (`civicflow serve-ingest`): POST /v1/property/events.

A firm signs each request: `X-Timestamp: <unix seconds>` and `X-Signature: sha256=<hex HMAC of
timestamp + "." + body>` under its secret; a request more than 5 minutes off the server clock
is refused, so a captured request cannot be replayed later. 415 unless the body is
application/json, 401 for a bad or stale signature, 413 over 64 KiB, 422 for a bad body (with
the reason), 202 only after the broker acknowledged the event, 503 (with Retry-After) when it
could not. Bodies are never logged.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import threading
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from importlib import resources

import orjson
from aiohttp import web
from confluent_kafka import KafkaError, Producer
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from producers.kafka import producer_config
from producers.metrics import IngestMetrics
from producers.privacy import mask_text
from producers.wuye import body_to_event
from schemas.errors import InvalidRecord
from schemas.event import Event
from schemas.topics import EVENT_TOPICS

log = logging.getLogger("civicflow.webhook")
MAX_BODY = 64 * 1024
PATH = "/v1/property/events"
MAX_CLOCK_SKEW_SECONDS = 300
RETRY_AFTER_SECONDS = 5
Send = Callable[[Event], Awaitable[None]]


def signature(secret: bytes, timestamp: str, body: bytes) -> str:
    """The X-Signature of a request: HMAC-SHA256 of `timestamp + "." + body`."""
    return "sha256=" + hmac.new(secret, timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()


def signing_firm(secrets: dict[str, bytes], timestamp: str, body: bytes, header: str) -> str | None:
    """The firm whose secret signed this request, if any (constant-time comparisons)."""
    found = None
    for firm, secret in secrets.items():
        if hmac.compare_digest(signature(secret, timestamp, body), header):
            found = firm
    return found


def timestamp_problem(header: str | None, now: datetime) -> str | None:
    """Why an X-Timestamp header is refused, or None when it is within 5 minutes of `now`."""
    if not header:
        return ("X-Timestamp is missing: send the unix time in seconds and sign "
                "timestamp + '.' + body (see the README)")
    if not header.isascii() or not header.isdigit() or len(header) > 12:
        return f"X-Timestamp {header[:20]!r} is not unix time in whole seconds"
    off = int(header) - now.timestamp()
    if abs(off) > MAX_CLOCK_SKEW_SECONDS:
        return (f"X-Timestamp is {abs(off):.0f} s {'ahead of' if off > 0 else 'behind'} the "
                f"server clock (more than {MAX_CLOCK_SKEW_SECONDS // 60} minutes): sign each "
                "request when you send it, and check the sender's clock")
    return None


async def read_body(request: web.Request) -> bytes:
    """The whole body, however many TCP segments it arrives in; a byte more than MAX_BODY at
    most (which means it is too big)."""
    chunks: list[bytes] = []
    size = 0
    while size <= MAX_BODY:
        chunk = await request.content.read(MAX_BODY + 1 - size)
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response({"error": mask_text(message)}, status=status, headers=headers)


def build_app(secrets: dict[str, bytes], send: Send,
              now: Callable[[], datetime] = lambda: datetime.now(UTC),  # clock
              registry: CollectorRegistry | None = None) -> web.Application:
    registry = registry or CollectorRegistry()
    metrics = IngestMetrics(registry)

    async def receive(request: web.Request) -> web.Response:
        response = await handle(request)
        metrics.requests.labels(str(response.status)).inc()
        if response.status == 202:
            metrics.records.labels("wuye", "produced").inc()
        elif response.status == 422:
            metrics.records.labels("wuye", "rejected").inc()
        return response

    async def scrape(_request: web.Request) -> web.Response:
        return web.Response(body=generate_latest(registry), headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def handle(request: web.Request) -> web.Response:
        if request.content_length is not None and request.content_length > MAX_BODY:
            return _error(413, f"body over {MAX_BODY // 1024} KiB: send one event per request")
        if request.content_type != "application/json":
            return _error(415, f"Content-Type {request.content_type!r} is not accepted: send the "
                               "event as application/json")
        body = await read_body(request)
        if len(body) > MAX_BODY:
            return _error(413, f"body over {MAX_BODY // 1024} KiB: send one event per request")
        timestamp = request.headers.get("X-Timestamp")
        problem = timestamp_problem(timestamp, now())
        if problem is not None or timestamp is None:
            return _error(401, problem or "X-Timestamp is missing")
        firm = signing_firm(secrets, timestamp, body, request.headers.get("X-Signature", ""))
        if firm is None:
            return _error(401, "X-Signature is not sha256=<hex HMAC of X-Timestamp + '.' + body> "
                               "under your firm's secret")
        try:
            event = body_to_event(orjson.loads(body), now())
        except orjson.JSONDecodeError as exc:
            return _error(422, f"body is not JSON: {exc}")
        except InvalidRecord as exc:
            return _error(422, exc.reason)
        if event.unit != firm:
            return _error(422, f"company_code {event.unit!r} is not the firm that signed the body")
        try:
            await send(event)
        except DeliveryFailed as exc:
            return _error(503, f"not stored, send it again: {exc}",
                          {"Retry-After": str(RETRY_AFTER_SECONDS)})
        return web.json_response({"event_id": event.event_id, "case_id": event.case_id},
                                 status=202)

    app = web.Application(client_max_size=MAX_BODY * 2)
    app.router.add_post(PATH, receive)
    app.router.add_get("/metrics", scrape)
    app.router.add_get(OPENAPI_PATH, openapi_document)
    return app


OPENAPI_PATH = "/openapi.json"


async def openapi_document(_request: web.Request) -> web.Response:
    """This webhook's OpenAPI 3.1 description: schemas/json/openapi.json, as checked in."""
    document = resources.files("schemas").joinpath("json/openapi.json").read_bytes()
    return web.Response(body=document, content_type="application/json", charset="utf-8")


class DeliveryFailed(Exception):
    pass


class AcknowledgedSender:
    """confluent-kafka delivery reports turned into awaitables: 202 waits for the ack.

    A producer that failed a delivery (or got no ack in time) is replaced by a new one: an
    idempotent producer whose broker came back with fresh state retries UNKNOWN_PRODUCER_ID
    forever without reporting it, and one with a fatal error refuses everything; a new
    producer gets a new producer id. The request that saw the failure gets 503."""

    def __init__(self, bootstrap: str, timeout: float = 10.0) -> None:
        self.bootstrap = bootstrap
        self.timeout = timeout
        self.rebuilds = 0
        self._lock = threading.Lock()
        self._fatal = threading.Event()
        self.producer = self._new_producer()
        self._stop = threading.Event()
        self._poller = threading.Thread(target=self._poll, name="webhook-producer", daemon=True)
        self._poller.start()

    def _new_producer(self) -> Producer:
        config = producer_config(self.bootstrap)
        config["linger.ms"] = 2
        config["error_cb"] = self._on_error
        return Producer(config)

    def _on_error(self, err: KafkaError) -> None:
        # called inside poll(): the poll thread replaces the producer once poll returns
        if err.fatal():
            log.error("producer fatal error, replacing the producer: %s", err.str())
            self._fatal.set()

    def _replace(self, broken: Producer) -> None:
        with self._lock:
            if self.producer is not broken:
                return  # another request already replaced it
            self.producer = self._new_producer()
            self.rebuilds += 1
        # what the broken producer still holds fails now (its requests answer 503)
        broken.purge()
        broken.poll(0)

    def _poll(self) -> None:
        while not self._stop.is_set():
            producer = self.producer
            producer.poll(0.05)
            if self._fatal.is_set():
                self._fatal.clear()
                self._replace(producer)

    async def __call__(self, event: Event) -> None:
        loop = asyncio.get_running_loop()
        done: asyncio.Future[None] = loop.create_future()

        def on_delivery(err: KafkaError | None, _msg: object) -> None:
            def settle() -> None:
                if done.done():
                    return
                if err is None:
                    done.set_result(None)
                else:
                    done.set_exception(DeliveryFailed(err.str()))
            if not loop.is_closed():
                loop.call_soon_threadsafe(settle)

        producer = self.producer
        producer.produce(EVENT_TOPICS[event.source], event.to_json(), event.case_id.encode(),
                         on_delivery=on_delivery)
        try:
            await asyncio.wait_for(done, self.timeout)
        except TimeoutError as exc:
            await asyncio.to_thread(self._replace, producer)
            raise DeliveryFailed(f"no broker acknowledgement within {self.timeout:.0f}s") from exc
        except DeliveryFailed:
            await asyncio.to_thread(self._replace, producer)
            raise

    def close(self) -> None:
        self._stop.set()
        self._poller.join(2)
        self.producer.flush(10)


def serve(bootstrap: str, secrets: dict[str, bytes], host: str, port: int) -> None:
    sender = AcknowledgedSender(bootstrap)
    try:
        web.run_app(build_app(secrets, sender), host=host, port=port, access_log=None,
                    print=lambda text: log.warning("%s", text))
    finally:
        sender.close()
