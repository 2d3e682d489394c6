"""A fix to Faust's offset bookkeeping (faust-streaming 0.15.3), installed when the worker app is
built.

Faust commits, per partition, the end of the first run of consecutive offsets in its list of
acknowledged offsets. Offsets it never received (a "gap") are added to that list at commit time
so the run can pass over them. When a gap overlaps offsets that were received and acknowledged
as well, each of those offsets is in the list twice, a run ends at every duplicate, and each
commit advances the partition by one offset: after a worker took over a partition mid-replay,
its committed offset crept forward by one record a second while every record had long been
processed (the "survivor stall" of issue 13; robinhood/faust#625 and #559 saw the same). Here a
gap only adds the offsets that are not acknowledged already."""

from __future__ import annotations

from collections.abc import Callable, MutableSequence
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


def install() -> None:
    """Wraps `Consumer._new_offset` once: the gaps are filled here first, so Faust's own gap
    filling finds nothing left to add."""
    original: Callable[[Consumer, Any], int | None] = Consumer._new_offset
    if getattr(original, "civicflow_fix", False):
        return

    def _new_offset(self: Consumer, tp: Any) -> int | None:
        acked = self._acked[tp]
        fill_gaps(acked, self._acked_index[tp], self._gap[tp])
        without_duplicates(acked)
        return original(self, tp)

    _new_offset.civicflow_fix = True  # type: ignore[attr-defined]
    Consumer._new_offset = _new_offset  # type: ignore[method-assign]
