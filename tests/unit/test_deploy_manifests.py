"""The deploy files name real commands and real settings (no engine runs here to try them)."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import yaml

from civicflow.cli import build_parser
from civicflow.settings import Settings

DEPLOY = Path(__file__).parents[2] / "deploy"
SETTING_NAMES = {f"CIVICFLOW_{name.upper()}" for name in Settings.model_fields}


def containers():
    for doc in yaml.safe_load_all((DEPLOY / "k8s" / "civicflow.yaml").read_text()):
        spec = doc.get("spec", {})
        spec = spec.get("jobTemplate", {}).get("spec", spec)  # a CronJob's job
        template = spec.get("template", {}).get("spec", {})
        for container in template.get("containers", []):
            yield doc["metadata"]["name"], container.get("args", []), container
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    for name, service in compose["services"].items():
        if service.get("image", "").startswith("civicflow"):
            yield name, service["command"], service


def test_every_container_runs_a_real_command_with_real_settings():
    seen = 0
    for name, args, container in containers():
        build_parser().parse_args(args)  # exits (fails the test) on an unknown command or flag
        env = container.get("environment") or {e["name"]: e["value"] for e in container.get("env", [])}
        unknown = set(env) - SETTING_NAMES
        assert not unknown, f"{name}: unknown settings {unknown}"
        seen += 1
    assert seen >= 8
    secret = next(yaml.safe_load_all((DEPLOY / "k8s" / "civicflow.yaml").read_text()))
    assert set(secret["stringData"]) <= SETTING_NAMES


def test_dockerfile_copies_every_package():
    copied = set(re.findall(r"^COPY (\w+) ", (DEPLOY / "Dockerfile").read_text(), re.M))
    # the packages the wheel ships (tool.setuptools), not mypy's list: the regex this test used
    # read the first one-line `packages = [...]`, mypy's, once setuptools' list wrapped
    pyproject = tomllib.loads((DEPLOY.parent / "pyproject.toml").read_text())
    packages = pyproject["tool"]["setuptools"]["packages"]
    assert {p.split(".")[0] for p in packages} == copied


def test_the_notifier_runs_once_with_health_and_an_alertmanager():
    manifests = yaml.safe_load_all((DEPLOY / "k8s" / "civicflow.yaml").read_text())
    docs = {d["metadata"]["name"]: d for d in manifests}
    notify = docs["civicflow-notify"]["spec"]
    assert notify["replicas"] == 1 and notify["strategy"]["type"] == "Recreate"
    container = notify["template"]["spec"]["containers"][0]
    port = next(e["value"] for e in container["env"] if e["name"] == "CIVICFLOW_METRICS_PORT")
    assert container["readinessProbe"]["httpGet"] == {"path": "/healthz", "port": int(port)}
    assert docs["civicflow-settings"]["stringData"]["CIVICFLOW_ALERTMANAGER_URL"].startswith("http")
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())["services"]
    assert compose["notify"]["environment"]["CIVICFLOW_ALERTMANAGER_URL"] == "http://alertmanager:9093"
    scrape = (DEPLOY / "prometheus" / "prometheus.yml").read_text()
    assert f"civicflow-notify:{port}" in scrape
