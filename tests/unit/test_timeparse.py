"""Source times: both 12345 formats, zones with and without summer time, and the cache."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from producers.timeparse import LocalTimes, fixed_offset, parse_local_time
from schemas.errors import InvalidRecord

SHANGHAI = ZoneInfo("Asia/Shanghai")
NEW_YORK = ZoneInfo("America/New_York")


def test_offsets_follow_the_zone_rules():
    assert fixed_offset(SHANGHAI) == "+08:00" and fixed_offset(NEW_YORK) is None
    assert fixed_offset(ZoneInfo("Asia/Kolkata")) == "+05:30"
    # China kept summer time 1986-1991: 1988-07-03 09:15 local was 00:15 UTC
    assert parse_local_time("1988-07-03 09:15:00", SHANGHAI, "t").astimezone(UTC) == datetime(
        1988, 7, 3, 0, 15, tzinfo=UTC)
    assert parse_local_time("2026-10-03 09:15:00", SHANGHAI, "t").astimezone(UTC) == datetime(
        2026, 10, 3, 1, 15, tzinfo=UTC)
    assert parse_local_time("2026/7/3 9:05", NEW_YORK, "t").astimezone(UTC) == datetime(
        2026, 7, 3, 13, 5, tzinfo=UTC)


@settings(max_examples=300, deadline=None)
@given(st.datetimes(datetime(1970, 1, 1), datetime(2150, 12, 31)), st.sampled_from([SHANGHAI, NEW_YORK]))
def test_both_formats_give_the_instant_zoneinfo_gives(naive, zone):
    # fold=0: a wall time in a summer-time gap or overlap reads as the earlier offset
    naive = naive.replace(microsecond=0, fold=0)
    expected = naive.replace(tzinfo=zone)
    iso = naive.strftime("%Y-%m-%d %H:%M:%S")
    assert parse_local_time(iso, zone, "t") == expected
    assert parse_local_time(iso, zone, "t").utcoffset() == expected.utcoffset()
    slashed = f"{naive.year}/{naive.month}/{naive.day} {naive.hour}:{naive.minute:02d}"
    assert parse_local_time(slashed, zone, "t") == expected.replace(second=0)


def test_cache_gives_the_same_answers_and_errors():
    times = LocalTimes(SHANGHAI, limit=2)
    texts = ["2026-10-03 09:15:00", "2026/10/3 9:16", "2026-10-03 09:15:00", "2026-10-04 00:00:00"]
    assert [times.parse(t, "t") for t in texts] == [parse_local_time(t, SHANGHAI, "t") for t in texts]
    with pytest.raises(InvalidRecord, match="来电时间"):
        times.parse("2026-13-03 09:15:00", "来电时间")
