"""The worker shell's rules around a rebalance, driven without a broker: which records a batch
hands to the processor, when the deadline heaps are rebuilt.

The instants are those of tests/unit/test_processor.py, worked out by hand there: a grid case
created Fri 16 Oct 2026 17:00 (Asia/Shanghai) has its respond yellow at Mon 19 Oct 19:12."""

from __future__ import annotations

from datetime import timedelta

import orjson

from streams.processor import CaseProcessor, Mode, Output, Record
from streams.shell import WorkerShell
from tests.conftest import cn, ev

CREATED = cn(2026, 10, 16, 17, 0)
YELLOW = cn(2026, 10, 19, 19, 12)
P0 = ("events.grid", 0)
P1 = ("events.grid", 1)


class Group:
    """What Faust would report: the assignment, as the test moves it."""

    def __init__(self, *tps: tuple[str, int]) -> None:
        self.tps = set(tps)

    def __call__(self) -> set[tuple[str, int]]:
        return set(self.tps)


def created(case: str, partition: int) -> Record:
    return Record("events.grid", partition, case.encode(),
                  ev(f"{case}-created", "created", CREATED, case=case).to_json())


def live_worker(policy, calendar, store, now, group):
    sent: list[Output] = []
    processor = CaseProcessor(policy, calendar, store, mode=Mode.LIVE, wall_clock=lambda: now[0])
    return WorkerShell(processor, sent.append, assigned=group, owned=group), sent


def created_by_another_worker(policy, calendar, now, case: str) -> dict[str, bytes]:
    """The store of a worker owning P0 after it took the creation of `case`."""
    store: dict[str, bytes] = {}
    other, _ = live_worker(policy, calendar, store, now, Group(P0))
    other.ensure_rebuilt(in_recovery=False)
    other.process([created(case, 0)])
    return store


def fired(out: Output) -> list[tuple[str, str]]:
    return [(a["case_id"], a["level"]) for a in map(orjson.loads, (v for _, _, v in out.alerts))]


def test_a_batch_taken_before_its_partition_was_revoked_is_not_processed(policy, calendar):
    """The batch holds a record of P0 and one of P1, and P0 went to another worker before the
    batch was handed on: only the P1 case is written, the P0 case is left to P0's new owner
    (which reads it again from the committed offset), and no tick of this worker fires for it."""
    now = [CREATED]
    store: dict[str, bytes] = {}
    group = Group(P0, P1)
    shell, sent = live_worker(policy, calendar, store, now, group)
    shell.ensure_rebuilt(in_recovery=False)
    group.tps = {P1}  # revoked between taking the batch and processing it
    assert shell.process([created("grid:jn-grid:A", 0), created("grid:jn-grid:B", 1)]) == [0]
    written = {key for out in sent for _, key, _ in out.state_writes}
    assert b"grid:jn-grid:B" in written and b"grid:jn-grid:A" not in written
    assert "grid:jn-grid:A" not in store
    now[0] = YELLOW + timedelta(seconds=1)
    assert fired(shell.processor.tick()) == [("grid:jn-grid:B", "yellow")]


def test_cases_a_recovery_brings_in_are_scheduled_though_the_assignment_looks_the_same(policy, calendar):
    """P0 leaves this worker and comes back before it looks at its assignment again (the tick
    skips during rebalances, the agent only runs on a batch): meanwhile P0's other owner created
    a case, which the table recovery brings into the store. Its yellow must fire here."""
    now = [CREATED]
    store: dict[str, bytes] = {}
    group = Group(P0)
    shell, _ = live_worker(policy, calendar, store, now, group)
    shell.ensure_rebuilt(in_recovery=False)
    # what the recovery of P0's changelog writes into the table
    store.update(created_by_another_worker(policy, calendar, now, "grid:jn-grid:C"))
    shell.recovered()
    shell.ensure_rebuilt(in_recovery=False)
    now[0] = YELLOW + timedelta(seconds=1)
    assert fired(shell.processor.tick()) == [("grid:jn-grid:C", "yellow")]


def test_a_rebuild_seen_before_the_recovery_is_done_again_after_it(policy, calendar):
    """Faust sets the new assignment before it raises its recovery flag: a batch or tick in
    between rebuilds the new partition's heap from a store its changelog has not reached yet.
    The rebuild after the recovery must still come, though the assignment is the same by then."""
    now = [CREATED]
    store: dict[str, bytes] = {}
    group = Group(P1)
    shell, _ = live_worker(policy, calendar, store, now, group)
    shell.ensure_rebuilt(in_recovery=False)
    recovered = created_by_another_worker(policy, calendar, now, "grid:jn-grid:D")
    group.tps = {P0, P1}  # assigned; its changelog not read yet
    assert shell.ensure_rebuilt(in_recovery=False) == (0, 2)
    assert shell.ensure_rebuilt(in_recovery=True) is None
    store.update(recovered)
    shell.recovered()
    assert shell.ensure_rebuilt(in_recovery=False) == (1, 2)
    now[0] = YELLOW + timedelta(seconds=1)
    assert fired(shell.processor.tick()) == [("grid:jn-grid:D", "yellow")]


def test_nothing_is_rebuilt_while_nothing_changed(policy, calendar):
    now = [CREATED]
    shell, sent = live_worker(policy, calendar, {}, now, Group(P0))
    assert shell.ensure_rebuilt(in_recovery=False) == (0, 1)
    sent.clear()
    assert shell.ensure_rebuilt(in_recovery=False) is None
    assert sent == []


def test_a_record_left_out_is_never_counted_as_acknowledged_by_faust():
    """The agent marks the messages of records left out as acked before take_events acks its
    batch; Faust then does not put their offsets in its list of acknowledged ones (which would
    be committed if the partition came back before they were read again)."""
    from faust.transport.consumer import ConsumerMessage

    class Counting:
        def __init__(self) -> None:
            self.acked: list[int] = []

        def ack(self, message) -> bool:
            self.acked.append(message.offset)
            return True

    consumer = Counting()
    kept, left = (ConsumerMessage("events.grid", 0, offset, 0.0, 0, None, b"k", b"v", b"k", b"v")
                  for offset in (7, 8))
    left.acked = True  # what the agent does for a record left out
    for message in (kept, left):
        message.ack(consumer)
    assert consumer.acked == [7]


def test_a_recovery_is_stalled_on_the_partitions_left_without_records_for_a_while():
    from streams.shell import stalled_recovery

    p2, p3, p4 = ("cases-changelog", 2), ("cases-changelog", 3), ("cases-changelog", 4)
    remaining = {P0: 0, P1: 12, p2: 88, p3: 97, p4: 5}
    last_event = {P1: 100.0, p4: 112.0}  # P0 done; P1 quiet for 20 s; p2, p3 never got one
    assert stalled_recovery(remaining, last_event, started=95.0, now=120.0, after=15.0) == {P1, p2, p3}
    assert stalled_recovery(remaining, last_event, started=110.0, now=120.0, after=15.0) == {P1}
    assert stalled_recovery(remaining, {}, started=119.0, now=120.0, after=15.0) == set()


def test_a_recovery_sought_again_and_again_to_the_same_offset_is_given_up():
    from streams.shell import futile_seeks

    p2 = ("cases-changelog", 2)
    sought: dict = {}
    futile: dict = {}
    # P0 never moves from 40; P1 moved between the second and third seek (records applied)
    rounds = [{P0: 40, P1: 7}, {P0: 40, P1: 7}, {P0: 40, P1: 9}, {P0: 40, P1: 9}, {P0: 40, p2: 3}]
    stuck = [futile_seeks(offsets, sought, futile, limit=4) for offsets in rounds]
    assert stuck == [[], [], [], [], [P0]]
    assert futile == {P0: 5, P1: 2, p2: 1}
