"""The README's webhook example, run as written (bash, openssl, curl) against a real
`civicflow serve-ingest` on the embedded broker: what an integrator copies must work."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from civicflow.embedded import embedded_broker, free_port

pytestmark = pytest.mark.component
README = Path(__file__).resolve().parents[2] / "README.md"


def readme_example() -> str:
    """The shell block of the README that signs and posts a property event."""
    blocks = re.findall(r"```sh\n(.*?)```", README.read_text("utf-8"), flags=re.S)
    (example,) = [block for block in blocks if "openssl dgst" in block and "SECRET=" in block]
    return example


@pytest.fixture(scope="module")
def webhook(tmp_path_factory):
    var = tmp_path_factory.mktemp("readme-webhook")
    with embedded_broker(var, 2) as bootstrap:
        port = free_port()
        env = {**os.environ, "CIVICFLOW_BOOTSTRAP": bootstrap, "CIVICFLOW_PARTITIONS": "2",
               "CIVICFLOW_PROPERTY_SECRETS": json.dumps({"C001": "your-firm-secret"}),
               "CIVICFLOW_WEBHOOK_PORT": str(port), "CIVICFLOW_VAR_DIR": str(var)}
        with open(var / "webhook.log", "wb") as log:
            proc = subprocess.Popen([sys.executable, "-m", "civicflow", "serve-ingest"], env=env,
                                    stdout=log, stderr=subprocess.STDOUT)
            base = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                try:
                    urllib.request.urlopen(f"{base}/openapi.json", timeout=1).close()
                    break
                except (urllib.error.URLError, OSError):
                    time.sleep(0.2)
            try:
                yield base
            finally:
                proc.terminate()
                proc.wait(10)


def test_the_readme_curl_example_is_accepted(webhook):
    assert shutil.which("openssl") and shutil.which("curl"), "the example needs openssl and curl"
    script = readme_example().replace("http://127.0.0.1:8088", webhook)
    result = subprocess.run(["bash", "-euo", "pipefail", "-c", script], capture_output=True,
                            text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    reply = json.loads(result.stdout)
    assert reply["case_id"] == "property:wuye:WY2026100300001" and reply["event_id"]


def test_the_example_with_another_secret_is_refused(webhook):
    script = (readme_example().replace("http://127.0.0.1:8088", webhook)
              .replace("your-firm-secret", "a-guess").replace("curl -sS", "curl -sS -w '%{http_code}'"))
    result = subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=60,
                            check=False)
    assert result.stdout.endswith("401"), result.stdout
