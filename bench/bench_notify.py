"""From an alert's instant to its arrival at the receiver, through `civicflow notify` and the
real Alertmanager with deploy/alertmanager's routes and timings (target p99 <= 5 s), next to a
direct POST of the same kind of alerts to the same Alertmanager at their instants (same run).

Each alerts.sla fire record is written at its instant, as the live worker does; bursts share
an instant (every card due at 24:00). The baseline's alerts go to other districts, so both
paths meet Alertmanager's grouping (group_wait, group_interval) alike without sharing groups.
"""

from __future__ import annotations

import statistics
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bench.common import Result
from civicflow.embedded import create_topics, embedded_broker
from producers.kafka import EventProducer
from schemas.case import Alert
from schemas.topics import ALERTS_TOPIC
from sinks.alert_notice import Posting, api_alert
from sinks.notifier import ACTIVE_TOPIC, AlertmanagerClient, notifier_thread
from tests.alert_records import fire
from tests.alertmanager_harness import Alertmanager, Receiver, card_config

UNITS = 8


def schedule(prefix: str, district: str, count: int, start: float, span: float) -> list[tuple[float, Alert]]:
    """`count` alerts over `span` seconds from `start` (wall clock), a third of them in bursts."""
    planned = []
    for i in range(count):
        offset = (i // 10) * (span / (count / 10)) if i % 3 == 0 else (i * 7.3) % span
        at = start + offset
        instant = datetime.fromtimestamp(at, UTC)
        level = "yellow" if i % 2 else "red"
        unit = f"{district}001-u{i % UNITS}"
        planned.append((at, fire(f"grid:jn-grid:{prefix}{i}", level, instant, due_at=instant,
                                 district=district, street=f"{district}001", unit=unit)))
    return sorted(planned, key=lambda p: p[0])


def play(planned: list[tuple[float, Alert]], send) -> None:
    for at, alert in planned:
        time.sleep(max(0.0, at - time.time()))
        send(alert)


def delays(receiver: Receiver, planned: list[tuple[float, Alert]], timeout: float) -> list[float]:
    wanted = {f"{a.case_id}:{a.level}": a for _, a in planned}
    arrived: dict[str, float] = {}
    deadline = time.monotonic() + timeout
    while len(arrived) < len(wanted) and time.monotonic() < deadline:
        for note in receiver.snapshot():
            for key in note.alerts("firing"):
                if key in wanted and key not in arrived:
                    arrived[key] = note.arrived - wanted[key].fires_at.timestamp()
        time.sleep(0.1)
    missing = set(wanted) - set(arrived)
    if missing:
        raise RuntimeError(f"{len(missing)} alerts never reached the receiver: {sorted(missing)[:5]}")
    return sorted(arrived.values())


def p(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1] if len(values) > 1 else values[0]


def run(count: int = 300, span: float = 40.0) -> list[Result]:
    receiver = Receiver()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        # production timings: only the receivers are the bench's
        config = card_config(receiver, folder / "am.yml", group_wait="1s", group_interval="2s")
        alertmanager = Alertmanager(config, folder / "am")
        alertmanager.start()
        try:
            with embedded_broker(folder, 4) as bootstrap:
                create_topics(bootstrap, 4, compacted=(ACTIVE_TOPIC,))
                with notifier_thread(bootstrap, alertmanager.url) as notifier:
                    deadline = time.monotonic() + 60
                    while not notifier.started and time.monotonic() < deadline:
                        time.sleep(0.1)
                    producers = [EventProducer(bootstrap)]

                    def via_notifier(alert: Alert) -> None:
                        producers[0].send(ALERTS_TOPIC, alert.case_id.encode(), alert.to_json())
                        producers[0].flush()

                    direct_client = AlertmanagerClient(alertmanager.url)

                    def direct(alert: Alert) -> None:
                        now = datetime.now(UTC)
                        direct_client.post([api_alert(Posting(alert), now, timedelta(minutes=15))])

                    start = time.time() + 1.0
                    ours = schedule("N", "370102", count, start, span)
                    baseline = schedule("D", "370199", count, start, span)
                    threads = [threading.Thread(target=play, args=(ours, via_notifier)),
                               threading.Thread(target=play, args=(baseline, direct))]
                    for thread in threads:
                        thread.start()
                    for thread in threads:
                        thread.join()
                    ours_delays = delays(receiver, ours, 60)
                    base_delays = delays(receiver, baseline, 60)
                    producers.clear()  # before the broker stops
        finally:
            alertmanager.stop()
            receiver.close()
    return [
        Result("notify p50 instant->receiver", "s", p(ours_delays, 50), "direct POST p50",
               p(base_delays, 50), "p99 <= 5 s"),
        Result("notify p99 instant->receiver", "s", p(ours_delays, 99), "direct POST p99",
               p(base_delays, 99), "<= 5 s"),
    ]
