"""A real Alertmanager on 127.0.0.1 (Debian's prometheus-alertmanager) with the routes of
deploy/alertmanager, whose receivers are a webhook server of the test: for tests and the bench."""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import yaml

from civicflow.embedded import free_port

DEPLOY_CONFIG = Path(__file__).parents[1] / "deploy" / "alertmanager" / "alertmanager.yml"


@dataclass
class Notification:
    receiver: str
    payload: dict[str, Any]
    arrived: float  # time.time() at arrival

    def alerts(self, status: str | None = None) -> dict[str, dict[str, Any]]:
        """The notification's alerts by `case_id:level` (optionally of one status)."""
        return {f"{a['labels']['case_id']}:{a['labels']['level']}": a for a in self.payload["alerts"]
                if status is None or a["status"] == status}


class Receiver:
    """Webhook server capturing what Alertmanager sends; the path names the receiver."""

    def __init__(self) -> None:
        self.notifications: list[Notification] = []
        self.lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with outer.lock:
                    outer.notifications.append(
                        Notification(self.path.strip("/"), json.loads(body), time.time()))
                self.send_response(200)
                self.end_headers()

            def log_message(self, format: str, *args: object) -> None:  # noqa: A002
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def url(self, receiver: str) -> str:
        return f"http://127.0.0.1:{self.port}/{receiver}"

    def snapshot(self) -> list[Notification]:
        with self.lock:
            return list(self.notifications)

    def wait_for(self, matches: Callable[[Notification], bool], timeout: float = 30.0,
                 after: int = 0) -> Notification:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for note in self.snapshot()[after:]:
                if matches(note):
                    return note
            time.sleep(0.05)
        got = [(n.receiver, n.payload["status"], list(n.alerts())) for n in self.snapshot()]
        raise AssertionError(f"no such notification in {timeout:.0f}s; got {got}")

    def close(self) -> None:
        self.server.shutdown()


def card_config(receiver: Receiver, path: Path, group_wait: str = "1s",
                group_interval: str = "1s") -> Path:
    """deploy/alertmanager's config with every receiver a webhook of `receiver` and the 红黄牌
    route's timings set for a test."""
    config = yaml.safe_load(DEPLOY_CONFIG.read_text())
    config["templates"] = [str(DEPLOY_CONFIG.parent / t) for t in config.get("templates", [])]
    config["receivers"] = [{"name": r["name"], "webhook_configs": [
        {"url": receiver.url(r["name"]), "send_resolved": True}]} for r in config["receivers"]]
    cards = config["route"]["routes"][0]
    assert "CaseDueSoon" in cards["matchers"][0]
    cards.update(group_wait=group_wait, group_interval=group_interval, repeat_interval="1h")
    path.write_text(yaml.safe_dump(config, allow_unicode=True))
    return path


class Alertmanager:
    """One Alertmanager process on a fixed loopback port; stop and start keep its storage."""

    def __init__(self, config: Path, storage: Path) -> None:
        binary = shutil.which("prometheus-alertmanager") or shutil.which("alertmanager")
        assert binary, "Alertmanager is missing: `make tools` installs Debian's prometheus-alertmanager"
        self.binary = binary
        self.config = config
        self.storage = storage
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 30.0) -> None:
        log = open(self.storage.parent / "alertmanager.log", "ab")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [self.binary, f"--config.file={self.config}", f"--storage.path={self.storage}",
             f"--web.listen-address=127.0.0.1:{self.port}", "--cluster.listen-address=",
             "--log.level=warn"], stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, "Alertmanager exited at start: see alertmanager.log"
            try:
                with urllib.request.urlopen(f"{self.url}/-/ready", timeout=1) as response:
                    if response.status == 200:
                        return
            except OSError:
                time.sleep(0.1)
        raise AssertionError(f"Alertmanager not ready after {timeout:.0f}s")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()  # graceful: it saves its notification log
            self.proc.wait(20)
        self.proc = None

    def alert_list(self) -> list[dict[str, Any]]:
        """Alertmanager's case alerts, active or suppressed (not resolved)."""
        with urllib.request.urlopen(f"{self.url}/api/v2/alerts", timeout=5) as response:
            return [a for a in json.loads(response.read()) if "case_id" in a["labels"]]

    def alerts(self) -> dict[str, dict[str, Any]]:
        """Alertmanager's case alerts by `case_id:level` (for cases with one milestone)."""
        return {f"{a['labels']['case_id']}:{a['labels']['level']}": a for a in self.alert_list()}
