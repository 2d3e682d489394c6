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


def bookkeeping(acked: list[int], gaps: list[tuple[int, int]], committed: int | None) -> Consumer:
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


def test_nothing_is_committed_past_a_committed_offset_that_was_never_acknowledged():
    # the record at offset 18 was skipped by the stream (and its acknowledgement not counted);
    # unfixed Faust commits 24, and 18 is never read by anyone
    consumer = bookkeeping(list(range(19, 24)), [], committed=18)
    assert consumer._new_offset(PARTITION) is None
    consumer._acked[PARTITION].append(18)  # read again and processed
    consumer._acked_index[PARTITION].add(18)
    assert consumer._new_offset(PARTITION) == 24


def test_a_partition_never_committed_commits_nothing_until_its_first_offset_is_known():
    # a fresh group: Faust has no committed offset; the first record (offset 0) was skipped by
    # the stream and never acknowledged. Unfixed Faust commits 5 and offset 0 is never read.
    consumer = bookkeeping(list(range(1, 5)), [], committed=None)
    assert consumer._new_offset(PARTITION) is None
    assert faust_fixes.lift_heads(consumer._committed_offset, {PARTITION: 0}) == [PARTITION]
    assert consumer._new_offset(PARTITION) is None  # offset 0 still missing: held, read again
    consumer._acked[PARTITION].append(0)
    consumer._acked_index[PARTITION].add(0)
    assert consumer._new_offset(PARTITION) == 5


def test_a_committed_offset_deleted_by_retention_is_not_awaited_forever():
    # committed 100, but the broker's log now starts at 500: reading resumed there (Faust
    # recorded 101-500 as a gap); offset 100 is never read again, so the hold would be forever
    consumer = bookkeeping(list(range(500, 520)), [(101, 501)], committed=100)
    assert consumer._new_offset(PARTITION) is None
    assert faust_fixes.lift_heads(consumer._committed_offset, {PARTITION: 500}) == [PARTITION]
    assert consumer._new_offset(PARTITION) == 520
    # a committed offset at or past the earliest one is left as it is
    assert faust_fixes.lift_heads(consumer._committed_offset, {PARTITION: 500}) == []


class Flow:
    def __init__(self, active: bool) -> None:
        self.active = active

    def is_active(self) -> bool:
        return self.active


class App:
    def __init__(self, flow_active: bool, generation: int) -> None:
        self.flow_control = Flow(flow_active)
        self.consumer_generation_id = generation
        self.topics = self

    def acks_enabled_for(self, topic: str) -> bool:
        return True


@pytest.mark.parametrize(("flow_active", "fetched_in", "counted"), [
    (True, 1, True), (False, 1, False), (True, 0, False), (True, None, True)])
def test_an_acknowledgement_counts_only_for_a_message_the_stream_did_not_skip(flow_active, fetched_in,
                                                                             counted):
    from faust.transport.consumer import ConsumerMessage

    consumer = bookkeeping([], [], committed=18)
    consumer.app = App(flow_active, generation=1)
    consumer._unacked_messages = set()
    consumer._n_acked = 0
    consumer._waiting_for_ack = None
    message = ConsumerMessage("events.grid", 2, 18, 0.0, 0, None, b"k", b"v", b"k", b"v",
                              generation_id=fetched_in)
    message.ack(consumer)
    assert (18 in consumer._acked[PARTITION]) is counted


def test_a_partition_held_back_is_named_once_it_has_been_so_long_enough():
    since: dict = {}
    p1, p2 = TP("events.grid", 1), TP("events.grid", 2)
    assert faust_fixes.held_back({p1: (18, 19)}, since, now=100.0, after=10.0) == []
    assert faust_fixes.held_back({p1: (18, 19), p2: (5, 9)}, since, now=105.0, after=10.0) == []
    assert faust_fixes.held_back({p1: (18, 19), p2: (5, 9)}, since, now=110.0, after=10.0) == [p1]
    assert faust_fixes.held_back({p2: (5, 9)}, since, now=111.0, after=10.0) == []
    assert p1 not in since  # read again: forgotten, a new hold starts its own clock
    assert faust_fixes.held_back({p2: (5, 9)}, since, now=115.0, after=10.0) == [p2]
