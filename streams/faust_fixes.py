"""A fix to Faust's offset bookkeeping (faust-streaming 0.15.3), installed when the worker app is
built.

Faust commits, per partition, the end of the first run of consecutive offsets in its list of
acknowledged offsets. Offsets it never received (a "gap") are added to that list at commit time
so the run can pass over them. When a gap overlaps offsets that were received and acknowledged
as well, each of those offsets is in the list twice, a run ends at every duplicate, and each
commit advances the partition by one offset: after a worker took over a partition mid-replay,
its committed offset crept forward by one record a second while every record had long been
processed (the "survivor stall" of issue 13; robinhood/faust#625 and #559 saw the same). Here a
gap only adds the offsets that are not acknowledged already.

And two fixes for a record lost while partitions move (issue 13, a worker joining a live group):
Faust's stream skips a message that reaches it while flow control is suspended (from a rebalance
until the recovery's seek) or that was fetched in an earlier generation. Its compiled stream
iterator (faust/_cython/streams.pyx, the one that runs when the extension is built) never
acknowledges such a message; the pure-Python one (NO_CYTHON=1) acknowledges it all the same.
Either way its commit check lets the first acknowledged offset be one past the committed one
(`min(acked) - committed > 1`), so a skipped record at the committed offset itself is
committed past and never read. Here nothing is committed while the committed offset itself is
not acknowledged (nor, on a partition never committed, before the worker knows where it
starts: `lift_heads`), an acknowledgement of a skipped message is not counted (the pure-Python
route, and `take_events`' own acknowledgement of a batch handed over while flow stopped), and
the worker seeks a partition held back that way to its committed offset again (`held_back`), so
the skipped record is read and processed."""

from __future__ import annotations

from collections.abc import Callable, Mapping, MutableMapping, MutableSequence
from typing import Any

from faust.transport.consumer import Consumer


def fill_gaps(acked: MutableSequence[int], acked_index: set[int], gap: Any) -> None:
    """Moves the gap intervals below the highest acknowledged offset into `acked` (each offset
    once: what is in `acked_index` already is not added again) and chops them off `gap`, as
    Faust's `_new_offset` does, less its duplicates. `gap` is an `intervaltree.IntervalTree`."""
    if not acked or not gap:
        return
    highest = max(acked)
    intervals = sorted(gap.overlap(0, highest), key=lambda interval: interval.begin)
    if not intervals:
        return
    filled = [offset for interval in intervals for offset in range(interval.begin, interval.end)
              if offset not in acked_index]
    acked.extend(filled)
    acked_index.update(filled)
    gap.chop(0, max(intervals[-1].end - 1, highest + 1))


def without_duplicates(acked: MutableSequence[int]) -> None:
    """Each offset once, in order (the list Faust's run search expects)."""
    if len(set(acked)) != len(acked):
        acked[:] = sorted(set(acked))


def head_missing(acked: MutableSequence[int], committed: int | None) -> bool:
    """The offset to commit from (`committed`, the next one to read) is not acknowledged while
    later ones are: nothing may be committed past it. With no committed offset (a partition
    never committed: Faust's `perform_seek` leaves None, and turns a committed 0 into None) the
    offset to commit from is not known, so nothing is committed until the worker sets it
    (`lift_heads`): Faust would commit from whatever was acknowledged first, past a skipped
    first record."""
    return bool(acked) and (committed is None or min(acked) > committed)


def lift_heads(committed: MutableMapping[Any, int | None],
               earliest: Mapping[Any, int | None]) -> list[Any]:
    """Sets the offset to commit from to the partition's earliest one where Faust has none (never
    committed: reading began there, `auto_offset_reset="earliest"`) or one below it (deleted by
    retention: never read again, so its acknowledgement would be awaited forever and every
    seek back to it would replay the partition). Returns the partitions changed."""
    lifted = []
    for tp, first in earliest.items():
        if first is None or first < 0:
            continue
        current = committed.get(tp)
        if current is None or current < first:
            committed[tp] = first
            lifted.append(tp)
    return lifted


def held_back(heads: dict[Any, tuple[int, int]], since: dict[Any, float], now: float,
              after: float) -> list[Any]:
    """Partitions whose committed offset has been missing from the acknowledged ones for `after`
    seconds. `heads` maps a partition to (committed offset, lowest acknowledged offset) where
    the first is missing; `since` is updated (when each was first seen so), and forgets the
    partitions no longer held back."""
    for tp in list(since):
        if tp not in heads:
            del since[tp]
    for tp in heads:
        since.setdefault(tp, now)
    return sorted((tp for tp in heads if now - since[tp] >= after), key=str)


def counts_as_processed(flow_active: bool, generation: int | None, current: int) -> bool:
    """Whether Faust may count an acknowledgement: not for a message it skipped (flow control
    suspended, or fetched in another generation), which no agent processed."""
    return flow_active and (generation is None or generation == current)


def install() -> None:
    """Wraps `Consumer._new_offset` and `Consumer.ack` once: the gaps are filled here first, so
    Faust's own gap filling finds nothing left to add; a missing committed offset holds the
    commit; a skipped message's acknowledgement is not counted."""
    original: Callable[[Consumer, Any], int | None] = Consumer._new_offset
    if getattr(original, "civicflow_fix", False):
        return
    original_ack: Callable[[Consumer, Any], bool] = Consumer.ack

    def _new_offset(self: Consumer, tp: Any) -> int | None:
        acked = self._acked[tp]
        fill_gaps(acked, self._acked_index[tp], self._gap[tp])
        without_duplicates(acked)
        if head_missing(acked, self._committed_offset[tp]):
            return None
        return original(self, tp)

    def ack(self: Consumer, message: Any) -> bool:
        app = self.app
        if not counts_as_processed(app.flow_control.is_active(), message.generation_id,
                                   app.consumer_generation_id):
            return False
        return original_ack(self, message)

    _new_offset.civicflow_fix = True  # type: ignore[attr-defined]
    Consumer._new_offset = _new_offset  # type: ignore[method-assign]
    Consumer.ack = ack  # type: ignore[method-assign]
