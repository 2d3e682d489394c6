from __future__ import annotations

from datetime import datetime

import pytest

from schemas import ConfigError, Event, InvalidRecord, load_policy
from schemas.codes import parse_area_code, parse_grid_code
from schemas.enums import Milestone
from tests.conftest import cn, ev


def test_event_round_trips_through_json():
    event = ev("e1", "extended", cn(2026, 10, 3, 9, 15), extension_days=2, district="370102")
    again = Event.from_json(event.to_json())
    assert again == event
    assert again.occurred_at.utcoffset().total_seconds() == 8 * 3600


def test_event_is_frozen_and_rejects_naive_times_and_unknown_fields():
    event = ev("e1", "created", cn(2026, 10, 3, 9, 15))
    with pytest.raises(Exception):  # noqa: B017 - pydantic's frozen error
        event.case_id = "x"  # type: ignore[misc]
    with pytest.raises(InvalidRecord, match="timezone"):
        Event.from_dict({"event_id": "e", "case_id": "c", "source": "grid", "system": "s",
                         "type": "created", "occurred_at": datetime(2026, 10, 3, 9, 15)})
    with pytest.raises(InvalidRecord, match="phone"):
        Event.from_dict({**event.model_dump(), "phone": "13800138000"})


def test_unit_codes_split_into_levels():
    codes = parse_grid_code("370102001001003")
    assert (codes.district, codes.street, codes.community, codes.grid) == (
        "370102", "370102001", "370102001001", "370102001001003")
    assert parse_area_code("370102001").community is None
    for bad in ("37010200100100", "3701020010010030", "37010200100100x"):
        with pytest.raises(InvalidRecord, match="15 digits"):
            parse_grid_code(bad)


def test_default_policy_matches_design_table():
    policy = load_policy()
    grid = policy.limits_for("grid", "jn-grid", "urgent")
    assert [grid[m].describe() for m in Milestone] == [
        "1 working day(s)", "2 working day(s)", "3 working day(s)"]
    urgent = policy.limits_for("hotline", "12345", "urgent")
    assert urgent[Milestone.RESPOND].amount == 2 * 3600
    assert urgent[Milestone.RESOLVE].amount == 24 * 3600
    nyc = policy.limits_for("hotline", "nyc311", "normal")
    assert list(nyc) == [Milestone.RESOLVE] and nyc[Milestone.RESOLVE].amount == 120 * 3600
    assert policy.limits_for("property", "wuye", "urgent")[Milestone.RESPOND].amount == 30 * 60


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ('[alerts]\nyellow=0.8\nred=1.0\nescalation1=1.5\nescalation2=2.0\nescalation3=3.0\n'
         '[grid.any]\nrespond="1 day"\n', "grid.any.respond"),
        ('[alerts]\nyellow=0.8\nred=1.0\nescalation1=1.5\nescalation2=2.0\nescalation3=3.0\n'
         '[grid.any]\nrespnd="1wd"\n', "grid.any.respnd"),
        ('[alerts]\nyellow=0.8\nred=1.0\nescalation1=1.5\nescalation2=2.0\n', "alerts.escalation3"),
        ('[alerts]\nyellow=0.8\nred=1.0\nescalation1=1.5\nescalation2=2.0\nescalation3=3.0\n'
         '[gird.any]\nrespond="1wd"\n', "[gird]"),
    ],
)
def test_bad_policy_names_the_bad_key(tmp_path, text, key):
    path = tmp_path / "p.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_policy(path)
    assert key in str(info.value)
