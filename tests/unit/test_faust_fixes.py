"""Faust's commit offset when a recorded gap overlaps offsets that were also acknowledged: the
survivor of a worker kill crept forward one offset per commit (issue 13's stall)."""

from __future__ import annotations

from collections import defaultdict

import pytest
from faust.transport.drivers.aiokafka import Consumer
from faust.types import TP
from intervaltree import IntervalTree

from streams import faust_fixes

PARTITION = TP("events.grid", 2)


def bookkeeping(acked: list[int], gaps: list[tuple[int, int]], committed: int) -> Consumer:
    """A Faust consumer holding only the state `_new_offset` reads."""
    consumer = object.__new__(Consumer)
    consumer._acked = defaultdict(list, {PARTITION: list(acked)})
    consumer._acked_index = defaultdict(set, {PARTITION: set(acked)})
    consumer._gap = defaultdict(IntervalTree, {PARTITION: IntervalTree.from_tuples(gaps)})
    consumer._committed_offset = defaultdict(lambda: None, {PARTITION: committed})
    return consumer


def commits_until(consumer: Consumer, end: int, limit: int = 1000) -> int:
    """How many commits (one a second in the worker) until the committed offset reaches `end`."""
    for count in range(1, limit + 1):
        offset = consumer._new_offset(PARTITION)
        if offset is not None:
            consumer._committed_offset[PARTITION] = offset
        if consumer._committed_offset[PARTITION] == end:
            return count
    return limit


@pytest.fixture(autouse=True)
def fixed():
    faust_fixes.install()


def test_a_gap_over_acknowledged_offsets_commits_everything_at_once():
    # every record from 27,345 on was processed and acknowledged; a gap was recorded over them
    acked = list(range(27_345, 43_823))
    consumer = bookkeeping(acked, [(27_346, 43_000)], committed=27_345)
    assert commits_until(consumer, 43_823) == 1  # unfixed Faust: one offset per commit


def test_offsets_never_received_are_still_passed_over_and_a_later_gap_kept():
    # 151-169 never arrived (a real gap); 250-259 lies beyond what was acknowledged
    acked = list(range(100, 151)) + list(range(170, 200))
    consumer = bookkeeping(acked, [(151, 170), (250, 260)], committed=100)
    assert consumer._new_offset(PARTITION) == 200
    assert sorted((i.begin, i.end) for i in consumer._gap[PARTITION]) == [(250, 260)]


def test_a_hole_in_the_acknowledged_offsets_holds_the_commit_back():
    acked = list(range(100, 150)) + list(range(151, 200))  # 150 not acknowledged, no gap for it
    consumer = bookkeeping(acked, [], committed=100)
    assert consumer._new_offset(PARTITION) == 150


def test_installing_twice_wraps_once():
    faust_fixes.install()
    faust_fixes.install()
    assert Consumer._new_offset.civicflow_fix
    assert Consumer._new_offset.__closure__ is not None
    wrapped = [c.cell_contents for c in Consumer._new_offset.__closure__ if callable(c.cell_contents)]
    assert all(not getattr(f, "civicflow_fix", False) for f in wrapped)
