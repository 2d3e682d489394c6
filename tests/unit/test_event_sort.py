"""Sorting events in runs on disk gives exactly the order (and bytes) of one in-memory sort."""

from __future__ import annotations

from datetime import timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from producers.event_sort import EventSorter
from schemas.event import EncodedEvent, event_time_order
from tests.conftest import cn, ev


def events(minutes: list[int]) -> list[EncodedEvent]:
    return [EncodedEvent.of(ev(f"e{i:04d}", "created", cn(2026, 10, 1, 9) + timedelta(minutes=m),
                               case=f"hotline:12345:GD{i}", caller_hash="ab" * 32))
            for i, m in enumerate(minutes)]


@settings(max_examples=60, deadline=None)
@given(minutes=st.lists(st.integers(0, 3000), max_size=120), run_size=st.integers(1, 25))
def test_runs_on_disk_merge_to_the_in_memory_order(minutes, run_size, tmp_path_factory):
    given_events = events(minutes)
    folder = tmp_path_factory.mktemp("spill")
    with EventSorter(run_size, folder) as sorter:
        for event in given_events:
            sorter.add(event)
        assert sorter.spilled_runs == len(given_events) // run_size
        merged = list(sorter.in_order())
    expected = sorted(given_events, key=event_time_order)
    assert [(e.event_id, e.case_id, e.source, e.payload) for e in merged] == [
        (e.event_id, e.case_id, e.source, e.payload) for e in expected]
    assert [e.occurred_at for e in merged] == [e.occurred_at for e in expected]
    assert list(folder.iterdir()) == []  # the runs are removed on close
