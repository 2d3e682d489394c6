from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from schemas import Event, load_policy
from streams.calendar import WorkingDayCalendar

CN = ZoneInfo("Asia/Shanghai")


def cn(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=CN)


def ev(event_id: str, kind: str, at: datetime, case: str = "grid:jn-grid:C1", **extra: object) -> Event:
    source = case.split(":", 1)[0]
    system = case.split(":")[1]
    return Event(event_id=event_id, case_id=case, source=source, system=system, type=kind,
                 occurred_at=at, **extra)


ALERT_FRACTIONS = """[alerts]
yellow = 0.8
red = 1.0
escalation1 = 1.5
escalation2 = 2.0
escalation3 = 3.0
"""


def policy_text(limits: str) -> str:
    """A policy file: the default alert fractions and the given limit tables."""
    return ALERT_FRACTIONS + limits


@pytest.fixture(scope="session")
def policy():
    return load_policy()


@pytest.fixture(scope="session")
def calendar():
    return WorkingDayCalendar()


@pytest.fixture(scope="session")
def chdb_var(tmp_path_factory):
    """chDB allows one data path per process: every in-process test shares this one and
    keeps apart by database name."""
    return tmp_path_factory.mktemp("var")
