"""What the Faust agent and the live timer do with the processor, apart from Faust: which
partitions the deadline heaps cover and when they are rebuilt, which records a batch hands on.
Faust supplies the facts (the assignment, whether the table is recovering) as callables, so the
rules can be driven without a broker."""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping
from typing import TypeVar

from streams.processor import CaseProcessor, Output, Record, TopicPartition


class WorkerShell:
    def __init__(self, processor: CaseProcessor, send: Callable[[Output], None],
                 assigned: Callable[[], set[TopicPartition]],
                 owned: Callable[[], set[TopicPartition]]) -> None:
        """`assigned`: the event partitions Faust's assignor holds active for this worker;
        `owned`: those in the consumer's assignment, the only ones whose offsets it can commit."""
        self.processor = processor
        self.send = send
        self.assigned = assigned
        self.owned = owned
        self.known: set[TopicPartition] = set()
        self.recoveries = 0
        self._recoveries_rebuilt = 0

    def recovered(self) -> None:
        """The case table finished a recovery."""
        self.recoveries += 1

    def ensure_rebuilt(self, in_recovery: bool) -> tuple[int, int] | None:
        """Rebuild the deadline heaps when the assignment changed or the table finished a
        recovery since the last rebuild; (cases, partitions) if it did. A recovery can bring
        cases another worker created while the assignment, when next looked at, is the same
        (a partition gone and back), or come after a rebuild that saw the new assignment before
        Faust raised its recovery flag: only a rebuild after it puts those cases on the heaps."""
        if in_recovery:
            return None
        assigned = self.assigned()
        recoveries = self.recoveries
        if assigned == self.known and recoveries == self._recoveries_rebuilt:
            return None
        count, out = self.processor.rebuild(assigned)
        self.send(out)
        self.known = assigned
        self._recoveries_rebuilt = recoveries
        return count, len(assigned)

    def process(self, records: list[Record]) -> list[int]:
        """One batch: its records of partitions this worker still owns processed and the outputs
        sent; returns the positions of the records left out. A batch taken before a rebalance
        can hold records of partitions since given to another worker, which may have read their
        changelog already: processing them here would write case state it never sees and fire
        from heaps nobody rebuilds. They are left out; their offsets cannot be committed from
        here (Faust drops commits of partitions outside the assignment), so the new owner reads
        them again. The caller must keep Faust from counting them as acknowledged: an offset
        acknowledged after its partition was revoked stays in Faust's list, and if the partition
        comes back it would be committed before the record is read again."""
        owned = self.owned()
        left = [i for i, r in enumerate(records) if (r.topic, r.partition) not in owned]
        mine = [r for r in records if (r.topic, r.partition) in owned] if left else records
        self.send(self.processor.process(mine) if mine else Output())
        return left


Partition = TypeVar("Partition", bound=Hashable)


def stalled_recovery(remaining: Mapping[Partition, int], last_event: Mapping[Partition, float],
                     started: float, now: float, after: float) -> set[Partition]:
    """The changelog partitions a table recovery still needs records of but has received none
    from for `after` seconds (counted from the recovery's start when none came at all). Faust
    fetches them and then drops what it fetched when its read offset for the partition is stale
    (robinhood/faust#542: a partition of this worker's before the rebalance): the recovery then
    waits forever, and the cases of those partitions never fire."""
    return {tp for tp, left in remaining.items()
            if left > 0 and now - last_event.get(tp, started) >= after}


def futile_seeks(offsets: Mapping[Partition, int], sought: dict[Partition, int],
                 futile: dict[Partition, int], limit: int) -> list[Partition]:
    """Counts, per stalled partition, the seeks in a row to the same offset (`sought` and
    `futile` are updated); returns the partitions sought more than `limit` times without a
    record applied in between. Faust measures what a recovery still needs against the high
    water it read once at the start: a changelog that lost its tail since (a broker restart
    without its data) is never caught up by seeking, and its table would wait forever."""
    for tp, offset in offsets.items():
        futile[tp] = futile.get(tp, 0) + 1 if sought.get(tp) == offset else 1
        sought[tp] = offset
    return sorted((tp for tp in offsets if futile[tp] > limit), key=str)
