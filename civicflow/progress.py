"""How far a replay is, when it will end, and which stage stopped moving. Pure: readings in
(taken by the pipeline from Kafka and the sink), figures and one line out."""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field

# the event rate behind the ETA is measured over this much of the recent past
RATE_WINDOW_SECONDS = 60.0


@dataclass(frozen=True)
class Reading:
    at: float  # monotonic seconds
    produced: int  # events the replay has sent
    processed: int  # records of the event topics the worker has acknowledged
    worker_waiting: int  # records of the event topics the worker has not acknowledged
    sink_waiting: int  # records of the sink's topics it has not acknowledged
    landed: Mapping[str, int] = field(default_factory=dict)  # rows written per table

    def moved_since(self, other: Reading) -> bool:
        return ((self.produced, self.processed, sum(self.landed.values()))
                != (other.produced, other.processed, sum(other.landed.values())))


class ReplayProgress:
    """Feed it `Reading`s as the replay goes; `total` is the number of records the worker
    will have acknowledged when it is done (events and end-of-input markers)."""

    def __init__(self, total: int, stall_timeout: float) -> None:
        self.total = total
        self.stall_timeout = stall_timeout
        self._recent: deque[Reading] = deque()
        self._last_move: Reading | None = None
        self.latest: Reading | None = None

    def add(self, reading: Reading) -> None:
        if self.latest is None or reading.moved_since(self.latest):
            self._last_move = reading
        self.latest = reading
        self._recent.append(reading)
        while len(self._recent) > 2 and reading.at - self._recent[1].at >= RATE_WINDOW_SECONDS:
            self._recent.popleft()

    def rate(self) -> float | None:
        """Records the worker acknowledged per second, over the recent window."""
        if len(self._recent) < 2:
            return None
        first, last = self._recent[0], self._recent[-1]
        seconds = last.at - first.at
        return (last.processed - first.processed) / seconds if seconds > 0 else None

    def eta_seconds(self) -> float | None:
        rate = self.rate()
        if self.latest is None or not rate or rate <= 0:
            return None
        return max(0, self.total - self.latest.processed) / rate

    def still_for(self, now: float | None = None) -> float:
        """Seconds since anything last moved, as of `now` (default: the latest reading; a
        reading that could not be taken moves nothing)."""
        if self.latest is None or self._last_move is None:
            return 0.0
        return (self.latest.at if now is None else now) - self._last_move.at

    def stalled_stage(self, now: float | None = None) -> str | None:
        """'worker' or 'sink' once nothing has moved for the stall timeout: the worker while it
        has records it has not acknowledged (or when nothing waits anywhere: then the end-of-
        input markers are what it has not passed on), else the sink."""
        if self.latest is None or self.still_for(now) < self.stall_timeout:
            return None
        if self.latest.worker_waiting > 0 or self.latest.sink_waiting == 0:
            return "worker"
        return "sink"

    def line(self) -> str:
        reading = self.latest
        if reading is None:
            return "starting"
        landed = ", ".join(f"{table} {rows:,}" for table, rows in sorted(reading.landed.items()))
        rate = self.rate()
        eta = self.eta_seconds()
        return (f"produced {reading.produced:,} events; worker at {reading.processed:,}/{self.total:,} "
                f"(lag {reading.worker_waiting:,}); landed {landed or 'nothing yet'}; "
                f"{f'{rate:,.0f} events/s' if rate else 'rate unknown'}; "
                f"ETA {duration(eta) if eta is not None else 'unknown'}")


def duration(seconds: float) -> str:
    seconds = round(seconds)
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    if minutes:
        return f"{minutes}m{secs:02d}s"
    return f"{secs}s"
