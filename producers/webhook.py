"""The property-service webhook (`civicflow serve-ingest`): POST /v1/property/events.

401 for a bad signature, 413 over 64 KiB, 422 for a bad body (with the reason), 202 only
after the broker acknowledged the event, 503 when it could not. Bodies are never logged.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import threading
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

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
Send = Callable[[Event], Awaitable[None]]


def signature(secret: bytes, body: bytes) -> str:
    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()


def signing_firm(secrets: dict[str, bytes], body: bytes, header: str) -> str | None:
    """The firm whose secret signed this body, if any (constant-time comparisons)."""
    found = None
    for firm, secret in secrets.items():
        if hmac.compare_digest(signature(secret, body), header):
            found = firm
    return found


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": mask_text(message)}, status=status)


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
        body = await request.content.read(MAX_BODY + 1)
        if len(body) > MAX_BODY:
            return _error(413, f"body over {MAX_BODY // 1024} KiB: send one event per request")
        firm = signing_firm(secrets, body, request.headers.get("X-Signature", ""))
        if firm is None:
            return _error(401, "X-Signature is not sha256=<hex HMAC of the body> under your "
                               "firm's secret")
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
            return _error(503, f"not stored, send it again: {exc}")
        return web.json_response({"event_id": event.event_id, "case_id": event.case_id},
                                 status=202)

    app = web.Application(client_max_size=MAX_BODY * 2)
    app.router.add_post(PATH, receive)
    app.router.add_get("/metrics", scrape)
    return app


class DeliveryFailed(Exception):
    pass


class AcknowledgedSender:
    """confluent-kafka delivery reports turned into awaitables: 202 waits for the ack."""

    def __init__(self, bootstrap: str, timeout: float = 10.0) -> None:
        config = producer_config(bootstrap)
        config["linger.ms"] = 2
        self.producer = Producer(config)
        self.timeout = timeout
        self._stop = threading.Event()
        self._poller = threading.Thread(target=self._poll, name="webhook-producer", daemon=True)
        self._poller.start()

    def _poll(self) -> None:
        while not self._stop.is_set():
            self.producer.poll(0.05)

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
            loop.call_soon_threadsafe(settle)

        self.producer.produce(EVENT_TOPICS[event.source], event.to_json(), event.case_id.encode(),
                              on_delivery=on_delivery)
        try:
            await asyncio.wait_for(done, self.timeout)
        except TimeoutError as exc:
            raise DeliveryFailed(f"no broker acknowledgement within {self.timeout:.0f}s") from exc

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
