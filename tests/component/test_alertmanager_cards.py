"""The 红黄牌 routes, inhibitions and Chinese templates of deploy/alertmanager, checked by the
real amtool (Debian's prometheus-alertmanager)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.component
DEPLOY = Path(__file__).parents[2] / "deploy"
CONFIG = "alertmanager/alertmanager.yml"


def amtool(*args: str) -> subprocess.CompletedProcess[str]:
    found = shutil.which("amtool")
    assert found, "amtool is missing: `make tools` installs Debian's prometheus-alertmanager"
    return subprocess.run([found, *args], capture_output=True, text=True, timeout=60, cwd=DEPLOY)


def test_config_is_valid_with_its_templates():
    proc = amtool("check-config", CONFIG)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "1 templates" in proc.stdout


@pytest.mark.parametrize(("labels", "receivers"), [
    # yellow and red: the city's command centre, or a district's own
    ("alertname=CaseDueSoon level=yellow district=370103 unit=U1", "case-command-centre"),
    ("alertname=CaseOverdue level=red district=370103 unit=U1", "case-command-centre"),
    ("alertname=CaseOverdue level=red district=370102 unit=U1", "case-command-centre-370102"),
    ("alertname=CaseDueSoon level=yellow district=370102", "case-command-centre-370102"),
    # escalations: the leaders, and the command centre as well
    ("alertname=CaseOverdue level=escalation1 district=370103", "case-leaders,case-command-centre"),
    ("alertname=CaseOverdue level=escalation3 district=370102",
     "case-leaders,case-command-centre-370102"),
    # the pipeline's and Prometheus' business alerts keep their routes
    ("alertname=OverdueSurge team=business district=370102", "command-centre"),
    ("alertname=CivicflowSinkStalled team=pipeline severity=page", "pipeline-oncall"),
    ("alertname=CivicflowRejectsSpike team=pipeline severity=ticket", "pipeline-tickets"),
])
def test_routes(labels, receivers):
    proc = amtool("config", "routes", "test", f"--config.file={CONFIG}",
                  f"--verify.receivers={receivers}", *labels.split())
    assert proc.returncode == 0, f"{labels}: {proc.stdout}{proc.stderr}"


def test_cards_group_per_district_unit_and_level_and_higher_levels_inhibit_lower():
    config = yaml.safe_load((DEPLOY / CONFIG).read_text())
    cards = config["route"]["routes"][0]
    assert cards["group_by"] == ["district", "unit", "level"]
    levels = ["yellow", "red", "escalation1", "escalation2", "escalation3"]
    inhibited: dict[str, set[str]] = {}
    for rule in config["inhibit_rules"]:
        if rule.get("equal") != ["case_id", "milestone", "cycle"]:
            continue
        source = next(m for m in rule["source_matchers"] if m.startswith("level="))
        target = next(m for m in rule["target_matchers"] if m.startswith("level="))
        inhibited[source.split('"')[1]] = set(target.split('"')[1].split("|"))
    # every level silences exactly the levels below it
    assert inhibited == {level: set(levels[:i]) for i, level in enumerate(levels) if i}


def test_chinese_message_of_one_group(tmp_path):
    data = {
        "receiver": "case-command-centre", "status": "firing", "externalURL": "http://am",
        "groupLabels": {"district": "370102", "unit": "370102001-wg", "level": "red"},
        "commonLabels": {"district": "370102", "unit": "370102001-wg", "level": "red"},
        "commonAnnotations": {},
        "alerts": [
            {"status": "firing", "labels": {"case_id": "grid:jn-grid:C1", "milestone": "resolve"},
             "annotations": {"summary": "红牌（超期）：网格事件 grid:jn-grid:C1 …"},
             "startsAt": "2026-10-03T16:00:00Z", "endsAt": "2026-10-03T16:15:00Z"},
            {"status": "firing", "labels": {"case_id": "grid:jn-grid:C2", "milestone": "respond"},
             "annotations": {"summary": "红牌（超期）：网格事件 grid:jn-grid:C2 …"},
             "startsAt": "2026-10-03T16:00:00Z", "endsAt": "2026-10-03T16:15:00Z"},
            {"status": "resolved", "labels": {"case_id": "grid:jn-grid:C3", "milestone": "feedback"},
             "annotations": {"summary": "…"},
             "startsAt": "2026-10-03T15:00:00Z", "endsAt": "2026-10-03T15:30:00Z"},
        ],
    }
    (tmp_path / "data.json").write_text(json.dumps(data))
    proc = amtool("template", "render", "--template.glob=alertmanager/templates/*.tmpl",
                  "--template.text", '{{ template "civicflow.cards.text" . }}',
                  f"--template.data={tmp_path / 'data.json'}")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == [
        "【红牌超期】370102 370102001-wg：2 件待办，1 件已解除",
        "● 红牌（超期）：网格事件 grid:jn-grid:C1 …",
        "● 红牌（超期）：网格事件 grid:jn-grid:C2 …",
        "○ 已解除：grid:jn-grid:C3「反馈」",
    ]
