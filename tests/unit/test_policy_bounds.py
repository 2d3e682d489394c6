"""Policy files are held to sane bounds with errors that name the key (a limit of 99999999999wd
once hung the worker: its instants fell past every calendar)."""

from __future__ import annotations

import pytest

from schemas import ConfigError
from schemas.enums import Milestone
from schemas.policy import parse_policy

ALERTS = {"yellow": 0.8, "red": 1.0, "escalation1": 1.5, "escalation2": 2.0, "escalation3": 3.0}


@pytest.mark.parametrize(("limit", "fails"), [("365wd", False), ("366wd", True), ("99999999999wd", True),
                                              ("8760h", False), ("8761h", True), ("525600m", False),
                                              ("525601m", True), ("0h", True)])
def test_limits_are_at_most_a_year(limit, fails):
    data = {"alerts": ALERTS, "grid": {"any": {"resolve": limit}}}
    if fails:
        with pytest.raises(ConfigError, match="grid.any.resolve"):
            parse_policy(data)
    else:
        assert parse_policy(data).by_source[("grid", "any")][Milestone.RESOLVE].amount > 0


@pytest.mark.parametrize("value", [0, -1, 10.5, 1e9, True, "3"])
def test_alert_fractions_are_numbers_up_to_ten(value):
    with pytest.raises(ConfigError, match="alerts.escalation3"):
        parse_policy({"alerts": {**ALERTS, "escalation3": value}})


def test_dispatch_and_suspension_keys():
    policy = parse_policy({"alerts": ALERTS, "reassign_restarts": ["respond", "resolve"],
                           "max_suspension": "10wd"})
    assert policy.reassign_restarts == {Milestone.RESPOND, Milestone.RESOLVE}
    assert policy.max_suspension.micros == 10 * 86400 * 1_000_000
    with pytest.raises(ConfigError, match="reassign_restarts"):
        parse_policy({"alerts": ALERTS, "reassign_restarts": ["feedback"]})
    with pytest.raises(ConfigError, match="max_suspension"):
        parse_policy({"alerts": ALERTS, "max_suspension": "400wd"})
    assert parse_policy({"alerts": ALERTS}).fingerprint() == parse_policy({"alerts": ALERTS}).fingerprint()
    assert parse_policy({"alerts": ALERTS}).fingerprint() != policy.fingerprint()
