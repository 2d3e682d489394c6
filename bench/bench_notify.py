"""From an alert's instant to its arrival at the receiver, through `civicflow notify` and the
real Alertmanager with deploy/alertmanager's routes and timings (target p99 <= 5 s), next to a
direct POST of the same kind of alerts to the same Alertmanager at their instants (same run).

`run`: each alerts.sla fire record is written at its instant, as the live worker does; bursts
share an instant (every card due at 24:00). `run_live`: the whole embedded stack in live mode —
cases created on the broker, the live worker fires their cards, the notifier posts them.
The baseline's alerts go to other districts, so both paths meet Alertmanager's grouping
(group_wait, group_interval) alike without sharing groups.
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
from civicflow.pipeline import worker_process
from civicflow.settings import Settings
from producers.kafka import EventProducer
from schemas import Event
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
    return arrivals(receiver, {f"{a.case_id}:{a.level}" for _, a in planned}, timeout)


def arrivals(receiver: Receiver, wanted: set[str], timeout: float) -> list[float]:
    """Per wanted `case_id:level`: its first firing arrival minus its startsAt (the instant)."""
    arrived: dict[str, float] = {}
    deadline = time.monotonic() + timeout
    while len(arrived) < len(wanted) and time.monotonic() < deadline:
        for note in receiver.snapshot():
            for key, alert in note.alerts("firing").items():
                if key in wanted and key not in arrived:
                    instant = datetime.fromisoformat(alert["startsAt"].replace("Z", "+00:00"))
                    arrived[key] = note.arrived - instant.timestamp()
        time.sleep(0.1)
    missing = set(wanted) - set(arrived)
    if missing:
        raise RuntimeError(f"{len(missing)} alerts never reached the receiver: {sorted(missing)[:5]}")
    return sorted(arrived.values())


def p(values: list[float], q: int) -> float:
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


# respond in 30 s: the yellow fires at 24 s, the red at 30 s (the escalations after the bench)
LIVE_POLICY = """[alerts]
yellow = 0.8
red = 1.0
escalation1 = 5.0
escalation2 = 7.0
escalation3 = 10.0

[property.urgent]
respond = "0.5m"
resolve = "1h"
feedback = "1wd"
"""


def run_live(cases: int = 60, span: float = 20.0) -> list[Result]:
    receiver = Receiver()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        policy = folder / "live.toml"
        policy.write_text(LIVE_POLICY)
        settings = Settings(var_dir=folder, partitions=2, policy=policy, clock_report_seconds=1.0)
        alertmanager = Alertmanager(card_config(receiver, folder / "am.yml", "1s", "2s"), folder / "am")
        alertmanager.start()
        try:
            with embedded_broker(folder, 2) as bootstrap, worker_process(settings, bootstrap, "live"), \
                    notifier_thread(bootstrap, alertmanager.url) as notifier:
                producers = [EventProducer(bootstrap)]
                warm = Event(event_id="warm", case_id="property:wuye:WARM", source="property",
                             system="wuye", type="created", urgency="normal",
                             occurred_at=datetime.now(UTC) - timedelta(days=30))
                producers[0].send_event(warm)
                producers[0].flush()
                deadline = time.monotonic() + 180
                while notifier.landed("live") == 0:  # the live worker reports its clock
                    if time.monotonic() > deadline:
                        raise RuntimeError("the live worker never reported its clock")
                    time.sleep(0.2)
                start = time.time() + 1.0
                created = [(start + i * span / cases, i) for i in range(cases)]

                def create() -> None:
                    for at, i in created:
                        time.sleep(max(0.0, at - time.time()))
                        producers[0].send_event(Event(
                            event_id=f"c{i}", case_id=f"property:wuye:L{i}", source="property",
                            system="wuye", type="created", urgency="urgent", district="370102",
                            street="370102001", unit=f"370102001-u{i % UNITS}",
                            occurred_at=datetime.now(UTC)))
                        producers[0].flush()

                baseline = sorted(
                    [(at + 24.0, fire(f"grid:jn-grid:LD{i}", "yellow", datetime.fromtimestamp(at + 24.0, UTC),
                                      district="370199", unit=f"370199001-u{i % UNITS}"))
                     for at, i in created]
                    + [(at + 30.0, fire(f"grid:jn-grid:LD{i}", "red", datetime.fromtimestamp(at + 30.0, UTC),
                                        district="370199", unit=f"370199001-u{i % UNITS}"))
                       for at, i in created], key=lambda p: p[0])
                direct_client = AlertmanagerClient(alertmanager.url)
                threads = [threading.Thread(target=create), threading.Thread(target=play, args=(
                    baseline, lambda a: direct_client.post(
                        [api_alert(Posting(a), datetime.now(UTC), timedelta(minutes=15))])))]
                for thread in threads:
                    thread.start()
                for thread in threads:
                    thread.join()
                wanted = {f"property:wuye:L{i}:{level}" for _, i in created for level in ("yellow", "red")}
                ours = arrivals(receiver, wanted, 90)
                base = delays(receiver, baseline, 30)
                if len(ours) < len(wanted):
                    raise RuntimeError(f"{len(wanted) - len(ours)} live cards never reached the receiver")
                producers.clear()
        finally:
            alertmanager.stop()
            receiver.close()
    return [
        Result("live stack p50 instant->receiver", "s", p(ours, 50), "direct POST p50", p(base, 50),
               "p99 <= 5 s"),
        Result("live stack p99 instant->receiver", "s", p(ours, 99), "direct POST p99", p(base, 99),
               "<= 5 s"),
    ]
