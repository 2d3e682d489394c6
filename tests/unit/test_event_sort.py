"""Sorting events in runs on disk gives exactly the order, bytes and de-duplication of one
in-memory pass with a set of every id seen (the replay of before), and grouping by case on
disk gives exactly the cases of an in-memory grouping."""

from __future__ import annotations

from datetime import timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from producers.event_sort import Bits, CaseGrouper, EventSorter
from schemas.event import EncodedEvent, event_time_order
from tests.conftest import cn, ev


def event(id_number: int, minute: int, variant: int = 0) -> EncodedEvent:
    return EncodedEvent.of(ev(f"e{id_number:04d}", "created", cn(2026, 10, 1, 9) + timedelta(minutes=minute),
                              case=f"hotline:12345:GD{id_number % 7}", caller_hash=f"{variant:02d}" * 32))


def wire(events):
    return [(e.event_id, e.case_id, e.source, e.occurred_at, e.payload) for e in events]


def first_of_each_id(records):
    """The reference: each record's events not seen in an earlier record, in input order."""
    seen: set[str] = set()
    kept, produced = [], 0
    for record in records:
        new = [e for e in record if e.event_id not in seen]
        seen.update(e.event_id for e in new)
        produced += bool(new)
        kept.extend(new)
    return kept, produced


# a record: distinct ids (from a small pool, so ids repeat across records), each with a time
# and a payload variant: a repeated id may come back with another time or other bytes
records_strategy = st.lists(
    st.dictionaries(st.integers(0, 40), st.tuples(st.integers(0, 3000), st.integers(0, 2)),
                    min_size=0, max_size=5),
    max_size=80)


@settings(max_examples=80, deadline=None)
@given(raw_records=records_strategy, run_size=st.integers(1, 25))
def test_runs_on_disk_keep_the_first_of_each_id_in_the_in_memory_order(raw_records, run_size,
                                                                       tmp_path_factory):
    records = [[event(i, minute, variant) for i, (minute, variant) in record.items()]
               for record in raw_records]
    folder = tmp_path_factory.mktemp("spill")
    with EventSorter(run_size, folder) as sorter:
        for record in records:
            sorter.add_record(record)
        sorter.settle()
        kept, produced = first_of_each_id(records)
        assert sorter.count == len(kept)
        assert sorter.kept_records(0, len(records)) == produced
        assert wire(sorter.in_order()) == wire(sorted(kept, key=event_time_order))
    assert list(folder.iterdir()) == []  # the runs are removed on close


def test_a_later_snapshot_with_a_corrected_time_keeps_the_first(tmp_path):
    """A 12345 order's `resolved` id comes back in a later export with another time: the
    first import's event stays, the later one is a duplicate, even across sort runs."""
    first, corrected = event(1, 100), event(1, 900)
    with EventSorter(2, tmp_path) as sorter:
        for record in ([first, event(2, 50)], [event(3, 10)], [event(4, 20), corrected]):
            sorter.add_record(record)
        sorter.settle()
        assert sorter.spilled_runs == 3
        assert [e.event_id for e in sorter.in_order()] == ["e0003", "e0004", "e0002", "e0001"]
        assert sorter.kept_events(0, sorter.added) == 4
        assert sorter.kept_records(0, 3) == 3


def test_bits_count_any_range():
    bits = Bits()
    marked = {0, 3, 7, 8, 15, 16, 17, 63, 64, 200}
    for index in marked:
        bits.set(index)
    for start in range(0, 210, 3):
        for stop in range(start, 210, 5):
            assert bits.count(start, stop) == len([i for i in marked if start <= i < stop])
    assert 17 in bits and 18 not in bits and 5000 not in bits


@settings(max_examples=40, deadline=None)
@given(raw=st.lists(st.tuples(st.integers(0, 60), st.integers(0, 3000)), max_size=100),
       run_size=st.integers(1, 20))
def test_cases_grouped_on_disk_are_the_in_memory_groups(raw, run_size, tmp_path_factory):
    events = [event(i, minute) for i, minute in raw]
    expected: dict[str, list[EncodedEvent]] = {}
    for e in events:
        expected.setdefault(e.case_id, []).append(e)
    folder = tmp_path_factory.mktemp("cases")
    with CaseGrouper(run_size, folder) as grouper:
        for e in events:
            grouper.add(e)
        got = list(grouper.cases())
    assert sorted(case[0].case_id for case in got) == sorted(expected)
    for case in got:
        assert wire(case) == wire(sorted(expected[case[0].case_id], key=event_time_order))
    assert list(folder.iterdir()) == []
