"""The worker's logic without Kafka: records in, snapshots / alerts / control records out.

The Faust agent (streams/app.py) stays thin: it hands each batch of raw records to
`CaseProcessor.process` and sends what comes back. State lives in a `CaseStore`
(a Faust table in the worker, a dict in tests).

Clocks: in replay mode a partition's clock is its watermark (largest `occurred_at` seen
minus the allowed lateness), and a final control record moves it to `--as-of`. In live mode
the clock is the injected wall clock, advanced by `tick`.
"""

from __future__ import annotations

import bisect
import heapq
from collections import Counter, OrderedDict
from collections.abc import Callable, Iterator, MutableMapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

import orjson

from schemas.case import Alert
from schemas.enums import AlertLevel, EventType, Milestone
from schemas.errors import InvalidRecord
from schemas.event import Event
from schemas.policy import SlaPolicy
from streams.alerts import SentAlert, reconcile
from streams.calendar import WorkingDayCalendar
from streams.cases import CaseState, reduce_case, supersedes

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
TopicPartition = tuple[str, int]


class Mode(StrEnum):
    LIVE = "live"
    REPLAY = "replay"


@dataclass(frozen=True, slots=True)
class Record:
    topic: str
    partition: int
    key: bytes | None
    value: bytes
    control: bool = False


@dataclass
class Output:
    snapshots: list[tuple[int, bytes, bytes]] = field(default_factory=list)  # partition, key, value
    alerts: list[tuple[int, bytes, bytes]] = field(default_factory=list)
    controls: list[tuple[str, int, bytes]] = field(default_factory=list)  # from topic, partition, payload
    rejects: list[tuple[bytes, bytes]] = field(default_factory=list)  # key, value
    alert_models: list[Alert] = field(default_factory=list)

    def extend(self, other: Output) -> None:
        self.snapshots += other.snapshots
        self.alerts += other.alerts
        self.controls += other.controls
        self.rejects += other.rejects
        self.alert_models += other.alert_models


@dataclass
class CaseRecord:
    """A case as the worker keeps it: its distinct events and the alerts it sent."""

    tp: TopicPartition
    events: dict[str, Event]
    sent: dict[str, SentAlert]
    # the reduction of `events`, kept while they do not change (not stored)
    state: CaseState | None = field(default=None, compare=False, repr=False)
    # events applied since the last evaluation that may meet a milestone (for the histograms)
    fresh: list[Event] = field(default_factory=list, compare=False, repr=False)
    # each event's JSON form, kept so that encoding a busy case does not dump it again
    dumps: dict[str, dict[str, Any]] = field(default_factory=dict, compare=False, repr=False)

    def encode(self) -> bytes:
        """Compact form (v2): fields every event shares are stored once, alert ids without the
        case id. Roughly halves the state kept per case."""
        dumped = []
        for event_id, event in self.events.items():
            row = self.dumps.get(event_id)
            if row is None:
                row = self.dumps[event_id] = event.model_dump(mode="json", exclude_none=True)
            dumped.append(row)
        common: dict[str, Any] = dict(dumped[0]) if dumped else {}
        for row in dumped[1:]:
            for key in [k for k, v in common.items() if row.get(k) != v]:
                del common[key]
        prefix = len(str(common.get("case_id", ""))) + 1
        return orjson.dumps(
            {
                "v": 2,
                "tp": list(self.tp),
                "common": common,
                "events": [{k: v for k, v in row.items() if k not in common} for row in dumped],
                "sent": {
                    aid[prefix:]: [s.due_at.isoformat(), s.fires_at.isoformat(), s.retracted]
                    for aid, s in self.sent.items()
                },
            }
        )

    @classmethod
    def decode(cls, raw: bytes) -> CaseRecord:
        data = orjson.loads(raw)
        tp = (data["tp"][0], int(data["tp"][1]))
        if data.get("v") != 2:  # the first, verbose form: still readable after an upgrade
            events = {e["event_id"]: Event.model_validate(e) for e in data["events"]}
            sent = {
                aid: SentAlert(Milestone(m), c, AlertLevel(lv), datetime.fromisoformat(d),
                               datetime.fromisoformat(f), r)
                for aid, (m, c, lv, d, f, r) in data["sent"].items()
            }
            return cls(tp, events, sent)
        common = data["common"]
        events = {}
        dumps = {}
        for row in data["events"]:
            full = {**common, **row}
            event = Event.model_validate(full)
            events[event.event_id] = event
            dumps[event.event_id] = full
        case_id = next(iter(events.values())).case_id if events else ""
        sent = {}
        for suffix, (due, fires, retracted) in data["sent"].items():
            milestone, cycle, level = suffix.split(":")
            sent[f"{case_id}:{suffix}"] = SentAlert(
                Milestone(milestone), int(cycle), AlertLevel(level), datetime.fromisoformat(due),
                datetime.fromisoformat(fires), retracted)
        return cls(tp, events, sent, dumps=dumps)


CaseStore = MutableMapping[str, bytes]
_MEETS = {EventType.RESPONDED: Milestone.RESPOND, EventType.RESOLVED: Milestone.RESOLVE,
          EventType.FEEDBACK: Milestone.FEEDBACK}
CLOCK_PREFIX = "\x00clock:"


@dataclass
class PartitionState:
    clock: datetime = EPOCH
    high_water: datetime = EPOCH
    heap: list[tuple[datetime, str]] = field(default_factory=list)
    scheduled: dict[str, datetime] = field(default_factory=dict)


class Observer:
    """What the processor reports as it works; the worker's metrics implement it."""

    def event(self, source: str, kind: str) -> None: ...
    def duplicate(self, source: str) -> None: ...
    def late(self, source: str) -> None: ...
    def rejected(self, reason: str) -> None: ...
    def alert(self, alert: Alert) -> None: ...
    def milestone_met(self, source: str, urgency: str, milestone: Milestone, seconds: float) -> None: ...
    def case(self, case_id: str, state: CaseState, clock: datetime) -> None: ...


class CaseProcessor:
    def __init__(
        self,
        policy: SlaPolicy,
        calendar: WorkingDayCalendar,
        store: CaseStore,
        *,
        mode: Mode = Mode.REPLAY,
        allowed_lateness: timedelta = timedelta(minutes=10),
        wall_clock: Callable[[], datetime] | None = None,
        working_set: int = 50_000,
        observer: Observer | None = None,
    ) -> None:
        self.policy = policy
        self.calendar = calendar
        self.store = store
        self.mode = mode
        self.lateness = allowed_lateness
        self.wall_clock = wall_clock
        self.partitions: dict[TopicPartition, PartitionState] = {}
        self.counts: Counter[str] = Counter()
        self.observer = observer or Observer()
        # store keys written since the caller last drained this, with their partition
        self.touched: dict[str, int] = {}
        # decoded cases recently used, with their reductions: timers and the next batch of a
        # busy case need neither a decode nor a new reduction (the store stays the truth)
        self.working_set = working_set
        self._working: OrderedDict[str, CaseRecord] = OrderedDict()

    # ---- partition lifecycle -------------------------------------------------------------

    def partition(self, tp: TopicPartition) -> PartitionState:
        state = self.partitions.get(tp)
        if state is None:
            state = self.partitions[tp] = PartitionState()
            raw = self.store.get(f"{CLOCK_PREFIX}{tp[0]}:{tp[1]}")
            if raw is not None:
                saved = orjson.loads(raw)
                state.clock = datetime.fromisoformat(saved["clock"])
                state.high_water = datetime.fromisoformat(saved["high_water"])
        return state

    def rebuild(self, assigned: set[TopicPartition]) -> int:
        """After (re)assignment: rebuild the deadline heaps of the assigned partitions from the
        store. Alerts already sent are remembered in the store, so none fires twice."""
        for tp in list(self.partitions):
            if tp not in assigned:
                del self.partitions[tp]
        # recovery may have rewritten the store under us: the decoded working set is stale
        self._working.clear()
        count = 0
        for key, raw in list(self.store.items()):
            if key.startswith(CLOCK_PREFIX):
                continue
            record = CaseRecord.decode(raw)
            if record.tp not in assigned:
                continue
            state = self.partition(record.tp)
            case = reduce_case(record.events.values(), self.policy, self.calendar)
            self._schedule(state, key, case)
            count += 1
        return count

    # ---- processing ----------------------------------------------------------------------

    def process(self, records: list[Record]) -> Output:
        out = Output()
        dirty: dict[str, CaseRecord] = {}
        # per partition, the clock after each record: alerts carry the first clock >= their instant
        progress: dict[TopicPartition, list[datetime]] = {}
        for record in records:
            tp = (record.topic, record.partition)
            part = self.partition(tp)
            steps = progress.setdefault(tp, [part.clock])
            if record.control:
                self._flush(dirty, progress, out)
                payload = orjson.loads(record.value)
                if self.mode is Mode.REPLAY and payload.get("clock"):
                    part.clock = max(part.clock, datetime.fromisoformat(payload["clock"]))
                    steps.append(part.clock)
                self._fire_due(tp, part, steps, out)
                self._save_clock(tp, part)
                out.controls.append((record.topic, record.partition, record.value))
                progress.clear()
                continue
            try:
                event = Event.from_json(record.value)
            except InvalidRecord as exc:
                self.counts["rejected"] += 1
                self.observer.rejected("not_canonical_event")
                out.rejects.append((b"worker", orjson.dumps(
                    {"topic": record.topic, "partition": record.partition,
                     "reason": exc.reason, "raw": record.value.decode("utf-8", "replace")})))
                continue
            case = dirty.get(event.case_id)
            if case is None:
                case = self._load(event.case_id) or CaseRecord(tp, {}, {})
                dirty[event.case_id] = case
            kept = case.events.get(event.event_id)
            if kept is not None and not supersedes(event, kept):
                self.counts["duplicate"] += 1
                self.observer.duplicate(event.source.value)
                continue
            self.counts["processed"] += 1
            self.observer.event(event.source.value, event.type.value)
            if event.type in _MEETS:
                case.fresh.append(event)
            if event.occurred_at > part.high_water:
                part.high_water = event.occurred_at
            late = event.occurred_at < part.clock - (
                self.lateness if self.mode is Mode.LIVE else timedelta(0))
            if late and case.sent and self.mode is Mode.REPLAY:
                # a late event may prove sent alerts wrong: settle the case as of before it
                self._evaluate(event.case_id, case, part.clock, steps, part, out)
            case.events[event.event_id] = event
            case.dumps.pop(event.event_id, None)  # a superseding event replaces its JSON form too
            case.state = None
            if late:
                self.counts["late"] += 1
                self.observer.late(event.source.value)
                self._evaluate(event.case_id, case, part.clock, [part.clock], part, out)
            if self.mode is Mode.REPLAY:
                watermark = part.high_water - self.lateness
                if watermark > part.clock:
                    part.clock = watermark
                    steps.append(watermark)
        self._flush(dirty, progress, out)
        for tp, part in self.partitions.items():
            if tp in progress:
                self._save_clock(tp, part)
        return out

    def tick(self, now: datetime | None = None) -> Output:
        """Live mode: move every partition's clock to the wall clock and fire what is due."""
        out = Output()
        current = now or (self.wall_clock() if self.wall_clock else None)
        if current is None:
            return out
        for tp, part in self.partitions.items():
            if current > part.clock:
                part.clock = current
                self._fire_due(tp, part, [current], out)
        return out

    def clock_markers(self, run: str = "live") -> list[tuple[str, int, bytes]]:
        """Control records carrying each partition's clock, for the sink's pipeline clock."""
        return [
            (tp[0], tp[1], orjson.dumps({"run": run, "clock": part.clock.isoformat()}))
            for tp, part in self.partitions.items()
            if part.clock > EPOCH
        ]

    # ---- internals -----------------------------------------------------------------------

    def _flush(self, dirty: dict[str, CaseRecord], progress: dict[TopicPartition, list[datetime]],
               out: Output) -> None:
        for case_id, case in dirty.items():
            part = self.partition(case.tp)
            steps = progress.get(case.tp, [part.clock])
            self._evaluate(case_id, case, part.clock, steps, part, out, save=True)
        dirty.clear()
        for tp, steps in progress.items():
            self._fire_due(tp, self.partition(tp), steps, out)
            progress[tp] = [steps[-1]]

    def _fire_due(self, tp: TopicPartition, part: PartitionState, steps: list[datetime],
                  out: Output) -> None:
        while part.heap and part.heap[0][0] <= part.clock:
            at, case_id = heapq.heappop(part.heap)
            if part.scheduled.get(case_id) != at:
                continue  # stale entry: the case was rescheduled since
            del part.scheduled[case_id]
            case = self._load(case_id)
            if case is None:
                continue
            self._evaluate(case_id, case, part.clock, steps, part, out, save=True)

    def _emitted_at(self, fires_at: datetime, steps: list[datetime]) -> datetime:
        if self.mode is Mode.LIVE:
            return self.wall_clock() if self.wall_clock else steps[-1]
        index = bisect.bisect_left(steps, fires_at)
        return steps[index] if index < len(steps) else steps[-1]

    def _evaluate(self, case_id: str, case: CaseRecord, clock: datetime, steps: list[datetime],
                  part: PartitionState, out: Output, save: bool = False) -> CaseState:
        if case.state is None:
            case.state = reduce_case(case.events.values(), self.policy, self.calendar)
        state = case.state
        before = len(case.sent)
        retracted_before = sum(s.retracted for s in case.sent.values())
        alerts: list[Alert] = []
        for alert in reconcile(state, case.sent, clock, clock):
            # a retraction is sent now; a new alert when the clock first reached its instant
            at = clock if alert.retracted else alert.fires_at
            alerts.append(alert.model_copy(update={"emitted_at": self._emitted_at(at, steps)}))
        changed = bool(alerts) or save
        partition = case.tp[1]
        key = case_id.encode()
        for alert in alerts:
            self.counts[f"alert_{alert.level}"] += 1
            out.alerts.append((partition, key, alert.to_json()))
            out.alert_models.append(alert)
            self.observer.alert(alert)
        for event in case.fresh:
            milestone = _MEETS[event.type]
            mc = state.clock(milestone)
            if mc is not None and mc.met_at == event.occurred_at:
                self.observer.milestone_met(state.source.value, state.urgency.value, milestone,
                                            (event.occurred_at - mc.start).total_seconds())
        case.fresh.clear()
        self.observer.case(case_id, state, clock)
        if changed:
            out.snapshots.append((partition, key, state.snapshot(clock).to_json()))
        retracted_now = sum(s.retracted for s in case.sent.values())
        if save or len(case.sent) != before or retracted_now != retracted_before:
            self.store[case_id] = case.encode()
            self.touched[case_id] = partition
            self._remember(case_id, case)
        self._schedule(part, case_id, state)
        return state

    def _load(self, case_id: str) -> CaseRecord | None:
        case = self._working.get(case_id)
        if case is not None:
            self._working.move_to_end(case_id)
            return case
        raw = self.store.get(case_id)
        if raw is None:
            return None
        case = CaseRecord.decode(raw)
        self._remember(case_id, case)
        return case

    def _remember(self, case_id: str, case: CaseRecord) -> None:
        self._working[case_id] = case
        self._working.move_to_end(case_id)
        while len(self._working) > self.working_set:
            self._working.popitem(last=False)

    def _schedule(self, part: PartitionState, case_id: str, state: CaseState) -> None:
        nxt = state.next_instant(part.clock)
        if nxt is None:
            part.scheduled.pop(case_id, None)
            return
        if part.scheduled.get(case_id) == nxt:
            return
        part.scheduled[case_id] = nxt
        heapq.heappush(part.heap, (nxt, case_id))

    def _save_clock(self, tp: TopicPartition, part: PartitionState) -> None:
        key = f"{CLOCK_PREFIX}{tp[0]}:{tp[1]}"
        self.store[key] = orjson.dumps(
            {"clock": part.clock.isoformat(), "high_water": part.high_water.isoformat()}
        )
        self.touched[key] = tp[1]

    def cases(self) -> Iterator[tuple[str, CaseRecord]]:
        for key, raw in self.store.items():
            if not key.startswith(CLOCK_PREFIX):
                yield key, CaseRecord.decode(raw)
