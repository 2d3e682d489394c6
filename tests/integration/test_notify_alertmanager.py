"""`civicflow notify` with the real thing: the embedded broker, Debian's Alertmanager with the
routes of deploy/alertmanager, and a webhook receiver in the test. The first test writes the
alerts.sla records itself (the worker's contract: fire, end, retraction); the last one runs the
live worker.

A yellow then a red of one case reach the command centre as grouped notifications, the red
inhibits the yellow, a notifier killed (SIGKILL) and restarted changes nothing (not even after
the alerts' validity has run out), Alertmanager stopped for a while delays the end records but
loses nothing, and the end records resolve both cards."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from civicflow.embedded import embedded_broker, free_port
from producers.kafka import EventProducer
from schemas.topics import ALERTS_TOPIC
from tests.alert_records import end, fire
from tests.alertmanager_harness import Alertmanager, Receiver, card_config

pytestmark = pytest.mark.integration
TTL = 12.0  # seconds an alert stays valid in Alertmanager without a re-send
UNIT = {"district": "370103", "street": "370103001", "unit": "370103001-wg"}


class NotifierProcess:
    def __init__(self, bootstrap: str, alertmanager: str, var: Path) -> None:
        self.port = free_port()
        self.env = {**os.environ, "CIVICFLOW_BOOTSTRAP": bootstrap, "CIVICFLOW_PARTITIONS": "2",
                    "CIVICFLOW_ALERTMANAGER_URL": alertmanager, "CIVICFLOW_METRICS_PORT": str(self.port),
                    "CIVICFLOW_NOTIFY_RESEND_SECONDS": "1", "CIVICFLOW_NOTIFY_ALERT_TTL_SECONDS": str(TTL)}
        self.log = var / "notify.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen([sys.executable, "-m", "civicflow", "notify"], env=self.env,
                                         stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)

    def get(self, path: str) -> tuple[int, str]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=2) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()

    def health(self) -> tuple[int, dict]:
        try:
            status, body = self.get("/healthz")
        except OSError:
            return 0, {}
        return status, json.loads(body)

    def wait_health(self, wanted: int, timeout: float = 60.0) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc is not None and self.proc.poll() is None, self.log.read_text()[-2000:]
            status, body = self.health()
            if status == wanted:
                return body
            time.sleep(0.1)
        raise AssertionError(f"notifier health never {wanted}: {self.health()}; {self.log.read_text()[-2000:]}")

    def metric(self, name: str) -> float:
        _, text = self.get("/metrics")
        return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                   if line.startswith(name) and not line.startswith("#"))

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(15)


def test_cards_reach_the_command_centre_through_restarts_and_outages(tmp_path):
    receiver = Receiver()
    storage = tmp_path / "am"
    # group_wait 2 s: time for both yellows of the unit to reach Alertmanager on a loaded machine
    alertmanager = Alertmanager(card_config(receiver, tmp_path / "am.yml", group_wait="2s"), storage)
    alertmanager.start()
    with embedded_broker(tmp_path, 2) as bootstrap:
        notifier = NotifierProcess(bootstrap, alertmanager.url, tmp_path)
        producers = [EventProducer(bootstrap)]

        def send(*records) -> None:
            for record in records:
                producers[0].send(ALERTS_TOPIC, record.case_id.encode(), record.to_json())
            producers[0].flush()

        try:
            notifier.start()
            notifier.wait_health(200)
            now = datetime.now(UTC)
            yellow_a = fire("grid:jn-grid:A", "yellow", now, due_at=now + timedelta(hours=9), **UNIT)
            yellow_b = fire("grid:jn-grid:B", "yellow", now, due_at=now + timedelta(hours=9), **UNIT)
            send(yellow_a, yellow_b)
            # one message for the unit's yellow cards, to the city's command centre
            first = receiver.wait_for(lambda n: n.payload["groupLabels"].get("level") == "yellow")
            assert first.receiver == "case-command-centre"
            assert first.payload["groupLabels"] == {"district": "370103", "unit": "370103001-wg",
                                                    "level": "yellow"}
            assert set(first.alerts("firing")) == {"grid:jn-grid:A:yellow", "grid:jn-grid:B:yellow"}
            summary = first.alerts()["grid:jn-grid:A:yellow"]["annotations"]["summary"]
            assert summary.startswith("黄牌（临期）：网格事件 grid:jn-grid:A") and "距截止还有9小时" in summary

            red_a = fire("grid:jn-grid:A", "red", datetime.now(UTC), due_at=datetime.now(UTC), **UNIT)
            send(red_a)
            red = receiver.wait_for(lambda n: n.payload["groupLabels"].get("level") == "red")
            assert red.receiver == "case-command-centre"
            assert set(red.alerts("firing")) == {"grid:jn-grid:A:red"}
            in_am = alertmanager.alerts()
            assert in_am["grid:jn-grid:A:yellow"]["status"]["state"] == "suppressed"
            red_fingerprint = in_am["grid:jn-grid:A:red"]["fingerprint"]
            assert in_am["grid:jn-grid:A:yellow"]["status"]["inhibitedBy"] == [red_fingerprint]
            # a new yellow of the unit: its message leaves out A's yellow, inhibited by A's red
            seen = len(receiver.snapshot())
            yellow_c = fire("grid:jn-grid:C", "yellow", datetime.now(UTC),
                            due_at=datetime.now(UTC) + timedelta(hours=9), **UNIT)
            send(yellow_c)
            regroup = receiver.wait_for(lambda n: n.payload["groupLabels"].get("level") == "yellow", after=seen)
            assert set(regroup.alerts("firing")) == {"grid:jn-grid:B:yellow", "grid:jn-grid:C:yellow"}

            # SIGKILL, restart: the active set comes back, nothing is notified, nothing lapses
            # even once the validity of what the dead notifier last sent has run out
            seen = len(receiver.snapshot())
            killed_at = time.monotonic()
            notifier.kill()
            notifier.start()
            assert notifier.wait_health(200)["active_alerts"] == 4
            time.sleep(max(0.0, killed_at + TTL + 3 - time.monotonic()))
            assert receiver.snapshot()[seen:] == []
            active = {k for k, a in alertmanager.alerts().items() if a["status"]["state"] != "unprocessed"}
            assert active == {"grid:jn-grid:A:yellow", "grid:jn-grid:A:red", "grid:jn-grid:B:yellow",
                              "grid:jn-grid:C:yellow"}

            # Alertmanager down: the ends wait (health and metrics say so), then go through
            alertmanager.stop()
            met = datetime.now(UTC)
            send(end(yellow_a, met), end(red_a, met))
            down = notifier.wait_health(503, timeout=30)
            assert down["status"] == "alertmanager unreachable"
            assert notifier.metric("civicflow_notify_post_failures_total") >= 1
            assert notifier.metric("civicflow_notify_alertmanager_up") == 0
            time.sleep(2)
            seen = len(receiver.snapshot())
            alertmanager.start()
            notifier.wait_health(200, timeout=30)
            resolved_red = receiver.wait_for(
                lambda n: n.payload["groupLabels"].get("level") == "red", after=seen)
            assert resolved_red.payload["status"] == "resolved"
            assert set(resolved_red.alerts("resolved")) == {"grid:jn-grid:A:red"}
            resolved_yellow = receiver.wait_for(
                lambda n: "grid:jn-grid:A:yellow" in n.alerts("resolved"), after=seen)
            assert resolved_yellow.payload["groupLabels"]["level"] == "yellow"
            # nothing lost: the cards still active are back in the restarted Alertmanager
            deadline = time.monotonic() + 10
            while set(alertmanager.alerts()) != {"grid:jn-grid:B:yellow", "grid:jn-grid:C:yellow"}:
                assert time.monotonic() < deadline, alertmanager.alerts().keys()
                time.sleep(0.2)
            assert notifier.metric('civicflow_notify_alerts_ended_total{reason="met"}') == 2
            # and no notification ever ended B or C, or told A's cards again after their end
            # (a restarted Alertmanager forgot its alerts: it may tell B and C again as firing)
            for note in receiver.snapshot():
                assert not {"grid:jn-grid:B:yellow", "grid:jn-grid:C:yellow"} & set(note.alerts("resolved"))
            for note in receiver.snapshot()[seen:]:
                assert not {"grid:jn-grid:A:yellow", "grid:jn-grid:A:red"} & set(note.alerts("firing"))
        finally:
            producers.clear()  # librdkafka would keep reconnecting to the stopped broker otherwise
            notifier.stop()
            alertmanager.stop()
            receiver.close()


def test_replay_with_notify_leaves_alertmanager_with_the_active_alerts(tmp_path, chdb_var):
    """`replay --notify`: Alertmanager ends with exactly the alerts ClickHouse lists as active
    (the worker -> sink path, apart from the notifier)."""
    from civicflow.pipeline import replay
    from civicflow.settings import Settings
    from tests.conftest import cn

    receiver = Receiver()
    alertmanager = Alertmanager(card_config(receiver, tmp_path / "am.yml"), tmp_path / "am")
    alertmanager.start()
    try:
        settings = Settings(var_dir=chdb_var, partitions=2, database="it_replay_notify")
        fixture = Path(__file__).parent.parent / "fixtures" / "grid_small.jsonl"
        _, sink = replay(settings, [("jn-grid", fixture)], cn(2026, 10, 21, 12, 0), lambda _: None,
                         alertmanager=alertmanager.url)
        active = {f"{case}:{milestone}:{cycle}:{level}" for case, milestone, cycle, level in sink.client.query(
            "SELECT case_id, milestone, cycle, level FROM it_replay_notify.active_alerts").result_rows}
        in_am = {f"{a['labels']['case_id']}:{a['labels']['milestone']}:{a['labels']['cycle']}:"
                 f"{a['labels']['level']}" for a in alertmanager.alert_list()}
        assert len(active) >= 3
        assert in_am == active
    finally:
        alertmanager.stop()
        receiver.close()


def test_live_worker_cards_reach_the_receiver_and_end_when_the_case_responds(tmp_path):
    """The whole live stack: a case created on the broker, the live worker fires its yellow and
    red at their instants, the notifier posts them, and the `responded` event's end records
    resolve both at the receiver."""
    from civicflow.pipeline import worker_process
    from civicflow.settings import Settings
    from schemas import Event
    from sinks.notifier import notifier_thread

    policy = tmp_path / "live.toml"
    # respond in 15 s: yellow at 12 s, red at 15 s (escalations after the test)
    policy.write_text('[alerts]\nyellow = 0.8\nred = 1.0\nescalation1 = 5.0\nescalation2 = 7.0\n'
                      'escalation3 = 10.0\n\n[property.urgent]\nrespond = "0.25m"\nresolve = "1h"\n'
                      'feedback = "1wd"\n')
    settings = Settings(var_dir=tmp_path, partitions=2, policy=policy, clock_report_seconds=1.0)
    receiver = Receiver()
    alertmanager = Alertmanager(card_config(receiver, tmp_path / "am.yml"), tmp_path / "am")
    alertmanager.start()
    case = "property:wuye:LIVE1"
    try:
        with embedded_broker(tmp_path, 2) as bootstrap, worker_process(settings, bootstrap, "live"), \
                notifier_thread(bootstrap, alertmanager.url) as notifier:
            producers = [EventProducer(bootstrap)]

            def event(event_id: str, kind: str, at: datetime) -> None:
                producers[0].send_event(Event(
                    event_id=event_id, case_id=case, source="property", system="wuye", type=kind,
                    urgency="urgent", district="370103", street="370103001", unit="370103001-wg",
                    occurred_at=at))
                producers[0].flush()

            producers[0].send_event(Event(event_id="warm", case_id="property:wuye:WARM", source="property",
                                          system="wuye", type="created", urgency="normal",
                                          occurred_at=datetime.now(UTC) - timedelta(days=30)))
            producers[0].flush()
            deadline = time.monotonic() + 120
            while notifier.landed("live") == 0:  # the live worker reports its clock
                assert time.monotonic() < deadline, "the live worker never reported its clock"
                time.sleep(0.2)
            created = datetime.now(UTC)
            event("e1", "created", created)
            yellow = receiver.wait_for(lambda n: f"{case}:yellow" in n.alerts("firing"), timeout=40)
            red = receiver.wait_for(lambda n: f"{case}:red" in n.alerts("firing"), timeout=20)
            for note, level, after in ((yellow, "yellow", 12), (red, "red", 15)):
                assert note.receiver == "case-command-centre"
                starts = note.alerts()[f"{case}:{level}"]["startsAt"].replace("Z", "+00:00")
                # the card starts at the policy's instant (how soon it arrives: make bench notify-live)
                assert abs((datetime.fromisoformat(starts) - created).total_seconds() - after) < 0.01
            assert alertmanager.alerts()[f"{case}:yellow"]["status"]["state"] == "suppressed"
            seen = len(receiver.snapshot())
            event("e2", "responded", datetime.now(UTC))
            resolved = {}
            for level in ("yellow", "red"):
                resolved[level] = receiver.wait_for(
                    lambda n, level=level: f"{case}:{level}" in n.alerts("resolved"), after=seen, timeout=20)
            assert resolved["red"].payload["status"] == "resolved"
            deadline = time.monotonic() + 10
            while alertmanager.alerts():
                assert time.monotonic() < deadline, alertmanager.alerts().keys()
                time.sleep(0.2)
            producers.clear()
    finally:
        alertmanager.stop()
        receiver.close()
