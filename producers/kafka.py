"""The confluent-kafka producer: idempotent, acks=all, compressed; delivery errors counted."""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator

import orjson
from confluent_kafka import KafkaError, KafkaException, Message, Producer

from producers.base import Reject
from schemas.errors import BrokerUnavailable, CivicflowError
from schemas.event import EncodedEvent, Event
from schemas.topics import CONTROL_HEADER, CONTROL_KEY, EVENT_TOPICS, INVALID_TOPIC

log = logging.getLogger(__name__)


def readable(messages: list[Message], offsets: dict[tuple[str, int], int]
             ) -> Iterator[tuple[str, int, Message]]:
    """The messages of a consume() call that carry data, as (topic, partition, message); records
    the next offset to commit per partition and logs real errors (not end-of-partition)."""
    for message in messages:
        error = message.error()
        if error is not None:
            if error.code() != KafkaError._PARTITION_EOF:
                log.warning("consume error: %s", error)
            continue
        topic, partition = str(message.topic()), int(message.partition() or 0)
        offsets[(topic, partition)] = int(message.offset() or 0) + 1
        yield topic, partition, message


def producer_config(bootstrap: str, delivery_timeout: float = 30.0) -> dict[str, object]:
    return {
        "message.timeout.ms": int(delivery_timeout * 1000),
        "bootstrap.servers": bootstrap,
        "enable.idempotence": True,
        "acks": "all",
        "compression.type": "lz4",
        "linger.ms": 20,
        "batch.num.messages": 10000,
        "queue.buffering.max.messages": 500000,
        # what waits for the broker is bounded in bytes too (the default is 1 GB): a replay
        # producing faster than the broker takes it must not grow with its input
        "queue.buffering.max.kbytes": 32 * 1024,
        "log_level": 4,  # librdkafka info lines (idle disconnects) are noise for a person
    }


def is_fatal(error: KafkaError) -> bool:
    """A fatal producer error, or the local error every call returns after one."""
    return bool(error.fatal()) or error.code() == KafkaError._FATAL


# how many produce() calls between two poll(0)s: delivery reports only come for failures
# (`delivery.report.only.error`), so polling each message would only cost time
POLL_EVERY = 1000
# the topic a failure is counted under when librdkafka never reported the message
UNREPORTED = "?"
# how long a poll may take to bring the fatal error behind a SystemError to the error callback
FATAL_REPORT_WAIT = 3.0


class EventProducer:
    """Sends canonical events to `events.<source>` keyed by case id, rejects to the dead letter.

    librdkafka reports only failed deliveries (a Python callback per delivered message halved
    the produce rate): a message is delivered when `flush` returns with nothing undelivered
    and no failure was reported for it."""

    def __init__(self, bootstrap: str, delivery_timeout: float = 30.0) -> None:
        config = producer_config(bootstrap, delivery_timeout)
        config.update({"delivery.report.only.error": True, "on_delivery": self._on_delivery,
                       "error_cb": self._on_error})
        self._producer = Producer(config)
        self._unpolled = 0
        self.failed = 0
        # (topic, reason) -> messages not delivered
        self.failures: Counter[tuple[str, str]] = Counter()
        self._reported: list[tuple[KafkaError, Message]] = []
        self._errors_seen: list[KafkaError] = []
        # a fatal producer error (the broker came back with fresh state and no longer knows this
        # idempotent producer): nothing more can be delivered, every later message counts as failed
        self.fatal: str | None = None

    # The two callbacks only store what they get: confluent-kafka may call them while it holds a
    # fatal error it is about to raise, and any call made then (even err.str()) fails. What they
    # stored is read once the poll or flush that ran them has returned (`_count_reports`).
    def _on_error(self, err: KafkaError) -> None:
        self._errors_seen += [err]

    def _on_delivery(self, err: KafkaError | None, msg: Message) -> None:
        if err is not None:
            self.failed += 1
            self._reported += [(err, msg)]

    def _count_reports(self) -> None:
        for err, msg in self._reported:
            self.failures[(str(msg.topic()), err.str())] += 1
        self._reported.clear()

    @property
    def errors(self) -> Counter[str]:
        """Failed deliveries by reason."""
        self._count_reports()
        counted: Counter[str] = Counter()
        for (_, reason), n in self.failures.items():
            counted[reason] += n
        return counted

    def failed_on(self, topic: str) -> int:
        """Messages for `topic` that were not delivered."""
        self._count_reports()
        return sum(n for (t, _), n in self.failures.items() if t == topic)

    def _fatal_seen(self) -> str | None:
        if self.fatal is None:
            for err in self._errors_seen:
                if is_fatal(err):
                    self.fatal = err.str()
                    break
            self._errors_seen.clear()
        return self.fatal

    def send(self, topic: str, key: bytes, value: bytes | None, partition: int | None = None,
             headers: list[tuple[str, bytes]] | None = None) -> None:
        extra: dict[str, object] = {}
        if partition is not None:
            extra["partition"] = partition
        if headers:
            extra["headers"] = headers
        while True:
            if self.fatal is not None:
                self.failed += 1
                self.failures[(topic, self.fatal)] += 1
                return
            try:
                self._producer.produce(topic, value, key, **extra)  # type: ignore[arg-type]
                break
            except BufferError:
                self._producer.poll(0.05)
            except KafkaException as exc:  # e.g. MSG_SIZE_TOO_LARGE: refused before sending
                if is_fatal(exc.args[0]):
                    self._give_up(exc.args[0].str())
                    continue
                raise CivicflowError(f"Kafka refused a message for {topic}: {exc.args[0].str()}; "
                                     "nothing after it was sent") from exc
        self._unpolled += 1
        if self._unpolled >= POLL_EVERY:
            self._unpolled = 0
            self._call(self._producer.poll, 0)
            self._count_reports()
            if self._fatal_seen() is not None:
                self._give_up(self.fatal)  # type: ignore[arg-type]

    def send_event(self, event: Event) -> None:
        self.send(EVENT_TOPICS[event.source], event.case_id.encode(), event.to_json())

    def send_encoded(self, event: EncodedEvent) -> None:
        self.send(EVENT_TOPICS[event.source], event.case_id.encode(), event.payload)

    def send_reject(self, reject: Reject) -> None:
        self.send(INVALID_TOPIC, reject.source.value.encode(), reject.to_json())

    def send_control(self, topic: str, partitions: Iterable[int], payload: dict[str, object]) -> None:
        """An in-band control record on every given partition, after the data already sent."""
        value = orjson.dumps(payload)
        for partition in partitions:
            self.send(topic, CONTROL_KEY, value, partition=partition,
                          headers=[(CONTROL_HEADER, b"1")])

    def _give_up(self, reason: str) -> None:
        """After a fatal error: every message not yet acknowledged is failed (purged, so its
        delivery report comes now), and so is every message sent after it."""
        self.fatal = reason
        try:
            self._producer.purge(in_queue=True, in_flight=True)
        except KafkaException:
            pass
        deadline = time.monotonic() + 10
        while len(self._producer) and time.monotonic() < deadline:
            self._call(self._producer.poll, 0.1)
        self._count_reports()
        # what never got its report is not delivered either (its topic is not known here)
        left = len(self._producer) - self.failures[(UNREPORTED, reason)]
        if left > 0:
            self.failed += left
            self.failures[(UNREPORTED, reason)] += left

    def _call(self, poll_or_flush: Callable[[float], int], timeout: float) -> int:
        """A poll or flush; a fatal error it raises, or a failure of the client itself, is kept
        in `fatal` (0 is returned then); other Kafka errors are raised."""
        try:
            return poll_or_flush(timeout)
        except KafkaException as exc:
            if not is_fatal(exc.args[0]):
                raise
            self.fatal = exc.args[0].str()
        except SystemError as exc:
            # confluent-kafka 2.16 runs the delivery callbacks while the fatal error it is about
            # to raise is already set: it surfaces as a SystemError caused by it, or with no
            # cause at all ("returned NULL without setting an exception"); then the error
            # callback gets the fatal error on a later poll, or never (seen in CI)
            cause = exc.__cause__ or exc.__context__
            if isinstance(cause, KafkaException) and is_fatal(cause.args[0]):
                self.fatal = cause.args[0].str()
                return 0
            deadline = time.monotonic() + FATAL_REPORT_WAIT
            while self._fatal_seen() is None and time.monotonic() < deadline:
                try:
                    self._producer.poll(0.1)
                except KafkaException as again:
                    if is_fatal(again.args[0]):
                        self.fatal = again.args[0].str()
                except SystemError:
                    pass
            if self._fatal_seen() is None:
                # a client that fails without saying why cannot be trusted to deliver what it
                # holds: everything not acknowledged counts as not delivered, so a re-run of
                # the same import completes the data
                self.fatal = f"the Kafka client failed ({exc})"
        return 0

    def flush(self, timeout: float = 120.0) -> int:
        """Wait for every delivery; returns the number of messages not delivered."""
        try:
            remaining = self._call(self._producer.flush, timeout)
        except KafkaException as exc:
            raise BrokerUnavailable(f"Kafka failed while delivering: {exc.args[0].str()}") from exc
        if self._fatal_seen() is not None:
            self._give_up(self.fatal)  # type: ignore[arg-type]
            remaining = 0
        self._count_reports()
        if remaining:
            raise BrokerUnavailable(
                f"{remaining} messages still undelivered after {timeout:.0f}s: is the broker up?"
            )
        return self.failed
