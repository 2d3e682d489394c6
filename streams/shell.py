"""What the Faust agent and the live timer do with the processor, apart from Faust: which
partitions the deadline heaps cover and when they are rebuilt, which records a batch hands on.
Faust supplies the facts (the assignment, whether the table is recovering) as callables, so the
rules can be driven without a broker."""

from __future__ import annotations

from collections.abc import Callable

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

    def recovered(self) -> None:
        """The case table finished a recovery."""
        self.recoveries += 1

    def ensure_rebuilt(self, in_recovery: bool) -> tuple[int, int] | None:
        """Rebuild the deadline heaps when the assignment changed; (cases, partitions) if it did."""
        if in_recovery:
            return None
        assigned = self.assigned()
        if assigned == self.known:
            return None
        count, out = self.processor.rebuild(assigned)
        self.send(out)
        self.known = assigned
        return count, len(assigned)

    def process(self, records: list[Record]) -> Output:
        """One batch: processed, and its outputs sent (returned for the metrics)."""
        out = self.processor.process(records)
        self.send(out)
        return out
