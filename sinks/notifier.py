"""`civicflow notify`: alerts.sla -> Alertmanager (DESIGN §9a), durable across restarts.

Each loop reads what alerts.sla has, applies it to the set of active alerts, posts the result
to Alertmanager (retrying with backoff while it is down), then writes the changed entries of
the active set to the compacted topic `notify.active` the notifier owns, and only then commits
the alerts.sla offsets. A restart reads `notify.active` back in full and resumes alerts.sla
from the committed offsets, so it loses no active alert and ends none wrongly; what was posted
but not committed is applied and posted again, which Alertmanager de-duplicates by labels.

Why a topic of its own: the active set is the notifier's state and must outlive it; alerts.sla
itself is not compacted (re-reading it all on every start grows with history), ClickHouse is
another process's output (the notifier would then depend on the sink being caught up), and
Alertmanager keeps alerts in memory only. `notify.active` holds one record per active alert
(tombstones for ended ones), so it stays as small as the active set once compacted.

Reading it to its end: the embedded broker (Tansu) reports a partition's end offset as the
first offset of its last record batch + 1, so a reader that stops at the reported end can miss
the tail of the last batch. The notifier instead writes a start mark with a fresh token to
every partition and reads until it meets its own mark: everything written before is read,
whatever end the broker reports.

Active alerts are re-sent every `notify_resend_seconds`, each valid for
`notify_alert_ttl_seconds` (its `endsAt`), so Alertmanager keeps them firing while the notifier
runs and lets them lapse only if it is gone for longer than that. After Alertmanager was
unreachable, and at start, the whole active set is sent again at once: Alertmanager keeps
alerts in memory and may have restarted without them.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import logging
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import orjson
from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic
from prometheus_client import CollectorRegistry, generate_latest
from pydantic import ValidationError

from producers.kafka import EventProducer, readable
from schemas.case import Alert
from schemas.errors import BrokerUnavailable, RetryableError
from schemas.topics import ALERTS_TOPIC, INVALID_TOPIC, is_control
from sinks.alert_notice import ActiveAlerts, Posting, api_alert, coalesce
from sinks.notify_metrics import NotifyMetrics

log = logging.getLogger("civicflow.notify")
NOTIFY_GROUP = "civicflow-notify"
ACTIVE_TOPIC = "notify.active"
START_MARK_KEY = b"\x00start"
CONSUME_MAX = 5_000
POST_CHUNK = 500  # alerts per request: a re-send of a big active set is split
MAX_BACKOFF = 10.0


class AlertmanagerUnavailable(RetryableError):
    """Alertmanager did not accept a post (unreachable, timed out or answered 5xx)."""


class AlertmanagerRefused(Exception):
    """Alertmanager answered 4xx: these alerts themselves are wrong (not retried)."""


class AlertmanagerClient:
    """`POST /api/v2/alerts` with the standard library (one short request per batch)."""

    def __init__(self, url: str, timeout: float = 5.0) -> None:
        self.endpoint = url.rstrip("/") + "/api/v2/alerts"
        self.timeout = timeout

    def post(self, alerts: list[dict[str, object]]) -> None:
        request = urllib.request.Request(  # noqa: S310 - the URL is the operator's setting
            self.endpoint, data=orjson.dumps(alerts), method="POST",
            headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:  # noqa: S310
                response.read()
        except urllib.error.HTTPError as exc:
            body = exc.read()[:300].decode("utf-8", "replace")
            if 400 <= exc.code < 500:
                raise AlertmanagerRefused(f"Alertmanager refused the alerts ({exc.code}): {body}") from exc
            raise AlertmanagerUnavailable(f"Alertmanager answered {exc.code}: {body}") from exc
        except (OSError, http.client.HTTPException) as exc:
            reason = getattr(exc, "reason", exc)
            raise AlertmanagerUnavailable(f"Alertmanager at {self.endpoint} unreachable: {reason}") from exc


class Notifier:
    def __init__(self, bootstrap: str, alertmanager: AlertmanagerClient, *,
                 resend_seconds: float = 60.0, ttl_seconds: float = 900.0,
                 metrics: NotifyMetrics | None = None, group_id: str = NOTIFY_GROUP,
                 active_topic: str = ACTIVE_TOPIC,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self.bootstrap = bootstrap
        self.alertmanager = alertmanager
        self.resend_seconds = resend_seconds
        self.validity = timedelta(seconds=ttl_seconds)
        self.metrics = metrics or NotifyMetrics(CollectorRegistry())
        self.group_id = group_id
        self.active_topic = active_topic
        self.clock = clock
        self.active = ActiveAlerts()
        self.producer = EventProducer(bootstrap)
        self.stop_event = threading.Event()
        self.error: BaseException | None = None
        # health: None while Alertmanager accepts posts, else since when and why it does not
        self.failing_since: float | None = None
        self.last_failure = ""
        self.started = False
        self._resend_now = True  # at start, and after Alertmanager was unreachable
        self._landed: dict[str, set[tuple[str, int]]] = defaultdict(set)
        self._lock = threading.Lock()

    # -- start: the active set back from notify.active ---------------------------------------

    def ensure_active_topic(self, timeout: float = 15.0) -> None:
        """Create `notify.active` (compacted, as many partitions as alerts.sla) if missing."""
        admin = AdminClient({"bootstrap.servers": self.bootstrap})
        topics = admin.list_topics(timeout=timeout).topics
        if self.active_topic in topics:
            return
        partitions = len(topics[ALERTS_TOPIC].partitions) if ALERTS_TOPIC in topics else 1
        new = NewTopic(self.active_topic, partitions, 1, config={"cleanup.policy": "compact"})
        for future in admin.create_topics([new], request_timeout=timeout).values():
            try:
                future.result()
            except Exception as exc:  # noqa: BLE001 - created meanwhile is fine
                if "already exists" not in str(exc).lower() and "TOPIC_ALREADY_EXISTS" not in str(exc):
                    raise BrokerUnavailable(f"cannot create topic {self.active_topic}: {exc}") from exc

    def restore(self, timeout: float = 60.0) -> int:
        """Read `notify.active` to its true end (up to our own start marks); returns the
        number of active alerts."""
        consumer = Consumer({"bootstrap.servers": self.bootstrap, "group.id": f"{self.group_id}-restore",
                             "enable.auto.commit": False, "auto.offset.reset": "earliest"})
        try:
            metadata = consumer.list_topics(self.active_topic, timeout=10)
            partitions = sorted(metadata.topics[self.active_topic].partitions)
            if not partitions:
                raise BrokerUnavailable(f"topic {self.active_topic} has no partitions")
            token = uuid.uuid4().hex.encode()
            for partition in partitions:
                self.producer.send(self.active_topic, START_MARK_KEY, token, partition=partition)
            self._flush("start marks")
            consumer.assign([TopicPartition(self.active_topic, p, OFFSET_BEGINNING) for p in partitions])
            waiting = set(partitions)
            active: dict[str, Alert] = {}
            deadline = time.monotonic() + timeout
            while waiting:
                if time.monotonic() > deadline:
                    raise BrokerUnavailable(
                        f"could not read {self.active_topic} to its end in {timeout:.0f}s "
                        f"(partitions {sorted(waiting)} unfinished): is the broker healthy?")
                for _, partition, message in readable(consumer.consume(CONSUME_MAX, timeout=0.2), {}):
                    key = message.key() or b""
                    value = message.value()
                    if key == START_MARK_KEY:
                        if value == token:
                            waiting.discard(partition)
                        continue
                    if value is None:
                        active.pop(key.decode(), None)
                    else:
                        active[key.decode()] = Alert.model_validate_json(value)
        finally:
            consumer.close()
        self.active = ActiveAlerts(active)
        self._report_active()
        return len(active)

    # -- the loop ------------------------------------------------------------------------------

    def run(self) -> None:
        consumer = Consumer({
            "bootstrap.servers": self.bootstrap, "group.id": self.group_id,
            "enable.auto.commit": False, "auto.offset.reset": "earliest",
        })
        try:
            self.ensure_active_topic()
            restored = self.restore()
            log.warning("notifier started: %d active alerts restored", restored)
            self._assign(consumer)
            self.started = True
            next_resend = time.monotonic() + self.resend_seconds
            resend_delay = 0.5
            offsets: dict[tuple[str, int], int] = {}
            while not self.stop_event.is_set():
                if self._resend_now or time.monotonic() >= next_resend:
                    # One try, no waiting: while Alertmanager is down the loop goes on reading
                    # alerts.sla, so what is re-sent once it is back is the newest active set,
                    # never cards whose end arrived meanwhile (a restarted Alertmanager would
                    # fire them again).
                    self._resend_now = False
                    if self._resend_once():
                        next_resend = time.monotonic() + self.resend_seconds
                        resend_delay = 0.5
                    else:
                        next_resend = time.monotonic() + resend_delay
                        resend_delay = min(resend_delay * 2, MAX_BACKOFF)
                messages = consumer.consume(CONSUME_MAX, timeout=0.1)
                postings: list[Posting] = []
                changed: set[str] = set()
                markers: list[tuple[str, str, int]] = []
                now = self.clock()
                for topic, partition, message in readable(messages, offsets):
                    value = message.value() or b""
                    if is_control(message.key(), message.headers()):
                        payload = orjson.loads(value)
                        markers.append((str(payload.get("run", "")), str(payload.get("from", topic)),
                                        partition))
                        continue
                    record = self._parse(value, partition, int(message.offset() or 0))
                    if record is not None:
                        postings += self.active.apply(record, now)
                        changed.add(record.alert_id)
                if not offsets:
                    continue
                if not self._deliver(coalesce(postings)):
                    break  # stopped while Alertmanager was down: nothing committed, nothing lost
                self._write_active(changed)
                consumer.commit(offsets=[TopicPartition(t, p, o) for (t, p), o in offsets.items()],
                                asynchronous=False)
                offsets = {}
                with self._lock:
                    for run_id, from_topic, partition in markers:
                        self._landed[run_id].add((from_topic, partition))
        except Exception as exc:  # the owner (CLI or replay) reads it from `error`
            self.error = exc
            log.error("notifier stopped: %s", exc)
        finally:
            consumer.close()
            del self.producer  # librdkafka would keep reconnecting to a stopped broker otherwise

    def _assign(self, consumer: Consumer) -> None:
        metadata = consumer.list_topics(ALERTS_TOPIC, timeout=10)
        wanted = [TopicPartition(ALERTS_TOPIC, p) for p in metadata.topics[ALERTS_TOPIC].partitions]
        committed = consumer.committed(wanted, timeout=10)
        consumer.assign([TopicPartition(tp.topic, tp.partition,
                                        tp.offset if tp.offset >= 0 else OFFSET_BEGINNING)
                         for tp in committed])

    def _parse(self, value: bytes, partition: int, offset: int) -> Alert | None:
        """An alerts.sla record, or None after dead-lettering one that is no alert."""
        try:
            return Alert.model_validate_json(value)
        except ValidationError as exc:
            first = exc.errors()[0]
            reason = (f"alerts.sla record is no alert: {'.'.join(map(str, first['loc']))}: "
                      f"{first['msg']}")
            self._dead_letter(reason, value, partition, offset)
            return None

    def _dead_letter(self, reason: str, raw: bytes, partition: int, offset: int) -> None:
        log.error("dead-lettering alerts.sla %d@%d: %s", partition, offset, reason)
        self.producer.send(INVALID_TOPIC, b"notify", orjson.dumps({
            "format": "notify", "source": ALERTS_TOPIC, "file": f"{ALERTS_TOPIC}:{partition}",
            "line": offset, "reason": reason, "raw": raw[:4096].decode("utf-8", "replace")}))

    def _deliver(self, postings: list[Posting]) -> bool:
        """Post until Alertmanager accepted (backing off while it is down); False if stopped."""
        delay = 0.5
        for start in range(0, len(postings), POST_CHUNK):
            chunk = postings[start:start + POST_CHUNK]
            while True:
                now = self.clock()
                try:
                    self._post(chunk, now)
                    break
                except AlertmanagerUnavailable as exc:
                    self._failed(exc, f"retrying in {delay:.1f}s")
                    if self.stop_event.wait(delay):
                        return False
                    delay = min(delay * 2, MAX_BACKOFF)
            self._accepted(chunk, resend=False)
        return True

    def _resend_once(self) -> bool:
        """Re-send the active set once; False (failure counted) if Alertmanager is down."""
        postings = self.active.postings()
        for start in range(0, len(postings), POST_CHUNK):
            chunk = postings[start:start + POST_CHUNK]
            try:
                self._post(chunk, self.clock())
            except AlertmanagerUnavailable as exc:
                self._failed(exc, "re-sending later")
                return False
            self._accepted(chunk, resend=True)
        return True

    def _failed(self, exc: AlertmanagerUnavailable, then: str) -> None:
        self.metrics.post_failures.inc()
        self.metrics.alertmanager_up.set(0)
        if self.failing_since is None:
            self.failing_since = time.time()  # clock: wall time for the health answer
        self.last_failure = str(exc)
        log.warning("%s; %s", exc, then)

    def _post(self, chunk: list[Posting], now: datetime) -> None:
        try:
            self.alertmanager.post([api_alert(p, now, self.validity) for p in chunk])
        except AlertmanagerRefused:
            for posting in chunk:  # find the ones it refuses; the rest go through
                try:
                    self.alertmanager.post([api_alert(posting, now, self.validity)])
                except AlertmanagerRefused as exc:
                    self.metrics.refused.inc()
                    self._dead_letter(str(exc), posting.alert.to_json(), -1, -1)
            self._flush("dead letters")

    def _accepted(self, chunk: list[Posting], resend: bool) -> None:
        if self.failing_since is not None:
            self._resend_now = True  # Alertmanager may have restarted without the others
        self.failing_since = None
        self.metrics.alertmanager_up.set(1)
        self.metrics.last_success.set(time.time())  # clock: wall time for the ops gauge
        accepted = self.clock()
        for posting in chunk:
            if resend:
                self.metrics.resent.inc()
            elif posting.ends_at is not None:
                self.metrics.ended.labels(posting.reason or "unknown").inc()
            elif posting.new:
                self.metrics.posted.labels(posting.alert.level.value).inc()
            if posting.instant is not None and not resend:
                kind = "fire" if posting.ends_at is None else "end"
                self.metrics.delay.labels(kind).observe(
                    max(0.0, (accepted - posting.instant).total_seconds()))
        self._report_active()

    def _write_active(self, changed: set[str]) -> None:
        """The changed entries of the active set, acknowledged by the broker (before the
        alerts.sla offsets are committed)."""
        for alert_id in changed:
            alert = self.active.active.get(alert_id)
            self.producer.send(self.active_topic, alert_id.encode(),
                               alert.to_json() if alert is not None else None)
        self._flush("the active set")

    def _flush(self, what: str) -> None:
        failed_before = self.producer.failed
        self.producer.flush(30)
        if self.producer.failed > failed_before:
            raise BrokerUnavailable(f"could not write {what} to Kafka: {dict(self.producer.errors)}")

    def _report_active(self) -> None:
        for level, count in self.active.counts_by_level().items():
            self.metrics.active.labels(level).set(count)

    # -- for the owner -------------------------------------------------------------------------

    def landed(self, run_id: str) -> int:
        """Partitions whose control record of `run_id` the notifier has passed (a replay waits)."""
        with self._lock:
            return len(self._landed.get(run_id, ()))

    def health(self) -> tuple[int, dict[str, object]]:
        """200 while Kafka and Alertmanager work, 503 with the reason otherwise."""
        body: dict[str, object] = {"active_alerts": len(self.active), "started": self.started}
        if self.error is not None:
            return 503, {**body, "status": "stopped", "error": str(self.error)}
        if self.failing_since is not None:
            return 503, {**body, "status": "alertmanager unreachable",
                         "failing_seconds": round(time.time() - self.failing_since, 1),
                         "error": self.last_failure}
        if not self.started:
            return 503, {**body, "status": "starting"}
        return 200, {**body, "status": "ok"}


def serve_http(host: str, port: int, registry: CollectorRegistry,
               health: Callable[[], tuple[int, dict[str, object]]]) -> ThreadingHTTPServer:
    """`/metrics` (Prometheus) and `/healthz` (JSON, 503 when unhealthy) on one port."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - the http.server API
            if self.path.startswith("/metrics"):
                status, body, kind = 200, generate_latest(registry), "text/plain; version=0.0.4"
            elif self.path.startswith("/healthz"):
                status, payload = health()
                body, kind = json.dumps(payload, ensure_ascii=False).encode(), "application/json"
            else:
                status, body, kind = 404, b"not found: /metrics or /healthz\n", "text/plain"
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002
            return

    server = ThreadingHTTPServer((host, port), Handler)
    threading.Thread(target=server.serve_forever, name="civicflow-notify-http", daemon=True).start()
    return server


@contextlib.contextmanager
def notifier_thread(bootstrap: str, alertmanager_url: str, **options: object) -> Iterator[Notifier]:
    """A notifier on a thread (replay --notify); stopped on exit."""
    notifier = Notifier(bootstrap, AlertmanagerClient(alertmanager_url), **options)  # type: ignore[arg-type]
    thread = threading.Thread(target=notifier.run, name="civicflow-notify", daemon=True)
    thread.start()
    try:
        yield notifier
    finally:
        notifier.stop_event.set()
        thread.join(30)
