"""The worker's logic without Kafka: records in; snapshots, alerts, dead letters, forwarded
control records and case-state writes out.

The Faust agent (streams/app.py) stays thin: it hands each batch of raw records to
`CaseProcessor.process` and sends what comes back (`Output`); it never reaches into the
processor. State lives in a `CaseStore` (the local data of a Faust table in the worker, a dict
in tests); `Output.state_writes` are what the shell must also put on the table's changelog.

Clocks: in replay mode a partition's clock is its watermark (largest `occurred_at` seen minus
the allowed lateness), and a control record moves it to `--as-of`. In live mode the clock is the
injected wall clock, advanced by `tick`.

Speed (DESIGN §9b): events are decoded once from their bytes into `Step`s (no pydantic model
per event); a case's fold is kept in a working set and an event that arrives in order is
applied to it (full re-reduction only when one does not); only the alert instants the clock has
reached and the next one are computed; state is encoded once per case per batch.
"""

from __future__ import annotations

import bisect
import heapq
import struct
import zlib
from collections import OrderedDict
from collections.abc import Callable, Iterator, MutableMapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Final

import orjson

from schemas.enums import AlertLevel, CaseStatus, EventType, Milestone, Satisfaction, Source, Urgency
from schemas.errors import CalendarUnknown, InvalidRecord
from schemas.policy import SlaPolicy
from streams.calendar import WorkingDayCalendar, from_us, to_us
from streams.cases import (
    ESCALATION_RANK,
    MEETS,
    MILESTONES,
    SETTLED,
    CaseState,
    distinct_steps,
    fold_steps,
)
from streams.observer import BatchStats, Observer, Tally
from streams.snapshots import alert_json, snapshot_json
from streams.steps import AttrsCache, CaseAttrs, Step, parse_step

TopicPartition = tuple[str, int]
CaseStore = MutableMapping[str, bytes]
CLOCK_PREFIX: Final = "\x00clock:"
STATE_VERSION: Final = 3
ARCHIVE_TAG: Final = b"A"
MAX_DEAD_LETTER_RAW: Final = 4096
_TOPIC_OF: Final = {s: f"events.{s.value}" for s in Source}
_TYPES: Final = list(EventType)
_TYPE_INDEX: Final = {t: i for i, t in enumerate(_TYPES)}
_SATISFACTIONS: Final = list(Satisfaction)
_SATISFACTION_INDEX: Final = {s: i for i, s in enumerate(_SATISFACTIONS)}
# enum members the code below tests against, as module constants: compiled, reading
# `EventType.CLOSED` calls the enum class's `__getattr__` every time (~10x a dict lookup);
# a Final name is a C static
_EV_CREATED: Final = EventType.CREATED
_EV_RETURNED: Final = EventType.RETURNED


class Mode(StrEnum):
    LIVE = "live"
    REPLAY = "replay"


class Record:
    """One record of an event topic as the shell hands it over. A plain class, not a dataclass:
    compiled, a dataclass keeps the generated `__init__`, run as interpreted code (one call
    per record)."""

    __slots__ = ("control", "key", "partition", "topic", "value")

    def __init__(self, topic: str, partition: int, key: bytes | None, value: bytes,
                 control: bool = False) -> None:
        self.topic = topic
        self.partition = partition
        self.key = key
        self.value = value
        self.control = control

    def __repr__(self) -> str:
        return f"Record({self.topic}/{self.partition}, {self.value[:60]!r})"


@dataclass
class Output:
    """Everything one call caused, for the shell to send before it acknowledges the input."""

    snapshots: list[tuple[int, bytes, bytes]] = field(default_factory=list)  # partition, key, value
    alerts: list[tuple[int, bytes, bytes]] = field(default_factory=list)
    controls: list[tuple[str, int, bytes]] = field(default_factory=list)  # from topic, partition, payload
    rejects: list[tuple[bytes, bytes]] = field(default_factory=list)  # key, value
    state_writes: list[tuple[int, bytes, bytes]] = field(default_factory=list)  # partition, key, value

    def extend(self, other: Output) -> None:
        self.snapshots += other.snapshots
        self.alerts += other.alerts
        self.controls += other.controls
        self.rejects += other.rejects
        self.state_writes += other.state_writes


@dataclass
class PartitionState:
    clock: int = 0
    high_water: int = 0
    heap: list[tuple[int, str]] = field(default_factory=list)
    scheduled: dict[str, int] = field(default_factory=dict)


class CaseEntry:
    """A case as the worker keeps it: its distinct events, the alerts it sent, and (not stored)
    its fold and derived state while its events do not change."""

    __slots__ = ("_blob", "partition", "sent", "shown", "state", "steps", "topic", "touched",
                 "upcoming")

    def __init__(self, partition: int) -> None:
        self.partition = partition
        self.steps: dict[str, Step] = {}
        self.sent: dict[int, list] = {}  # alert code -> [fires_at, due_at, flags]
        self.state: CaseState | None = None
        # the stored form of the steps so far: (base, attributes, their JSON, the steps' rows as
        # JSON), each without brackets; a step that comes after the base adds one row
        self._blob: tuple[int, list[CaseAttrs], bytes, bytes] | None = None
        # what the last snapshot showed of the clock-dependent fields (escalation, status,
        # suspended): a timer that changes none of them needs no new snapshot
        self.shown: tuple | None = None
        self.upcoming: int | None = None
        self.topic: str | None = None  # its events' topic, known from its first step
        # the clock when its events last changed: a case is archived only once both its last
        # event and the worker's last news of it are older than the archive period (a backfill
        # of old history into a live worker must not archive cases while their events arrive)
        self.touched = 0

    def add(self, step: Step, replaced: Step | None) -> None:
        """Take a new step (or one that supersedes `replaced`); keep the fold when the step
        simply comes after everything folded so far."""
        self.steps[step.event_id] = step
        blob = self._blob
        if blob is not None:
            base, attrs_list, attrs_body, rows_body = blob
            if replaced is not None or step.at < base:
                self._blob = None  # the step keeps its place, or every row moves
            else:
                index, attrs_body = _attrs_index(step.attrs, attrs_list, attrs_body)
                self._blob = (base, attrs_list, attrs_body,
                              rows_body + b"," + _encode_row(step, base, index))
        state = self.state
        if state is None or replaced is not None or state.last_at < 0:
            self.drop_state()
            return
        if step.at < state.last_at or (step.at == state.last_at and step.order <= state.last_order) or (
                step.kind is _EV_CREATED and state.origin.kind is not _EV_CREATED):
            self.drop_state()
            return
        state.apply(step)

    def drop_state(self) -> None:
        """Forget the fold (derived again when needed), freeing it at once (`CaseState.release`)."""
        if self.state is not None:
            self.state.release()
            self.state = None

    def derive(self, case_id: str, policy: SlaPolicy, calendar: WorkingDayCalendar) -> CaseState:
        state = self.state
        if state is None:
            state = self.state = fold_steps(case_id, distinct_steps(self.steps.values()), policy,
                                            calendar)
        return state

    # ---- the stored form (v3): compact JSON lists, times relative to the first event --------

    def encode(self) -> bytes:
        blob = self._blob
        if blob is None:
            blob = self._blob = self._encode_steps()
        base, _, attrs_body, rows_body = blob
        sent = orjson.dumps([[code, r[0] - base, r[1] - base, r[2]] for code, r in self.sent.items()])
        return b"[%d,%d,%d,%d,[%b],[%b],%b,%d]" % (
            STATE_VERSION, self.partition, self.upcoming or 0, base, attrs_body, rows_body, sent,
            (self.touched - base) // 1_000_000)

    def _encode_steps(self) -> tuple[int, list[CaseAttrs], bytes, bytes]:
        steps = list(self.steps.values())
        base = min(s.at for s in steps)
        attrs_list: list[CaseAttrs] = []
        attrs_body = b""
        rows = []
        for step in steps:
            index, attrs_body = _attrs_index(step.attrs, attrs_list, attrs_body)
            rows.append(_encode_row(step, base, index))
        return base, attrs_list, attrs_body, b",".join(rows) if len(rows) > 1 else _compact(rows[0])

    @classmethod
    def decode(cls, raw: bytes) -> CaseEntry:
        data = orjson.loads(raw)
        if type(data) is dict:
            return cls._decode_legacy(data)
        if data[0] != STATE_VERSION:
            raise ValueError(f"case state v{data[0]} is newer than this worker (v{STATE_VERSION})")
        _, partition, upcoming, base, attrs_rows, rows, sent, *touched = data
        entry = cls(partition)
        entry.upcoming = upcoming or None
        entry.touched = base + touched[0] * 1_000_000 if touched else 0  # stored in seconds
        attrs = [CaseAttrs(Source(a[0]), a[1], a[2], a[3], a[4], a[5], a[6], Urgency(a[7]), a[8])
                 for a in attrs_rows]
        for row in rows:
            row += [None] * (10 - len(row))
            kind, at, event_id, index, unit, satisfaction, ext, reopen, due, reason = row
            entry.steps[event_id] = Step(
                event_id, _TYPES[kind], base + at, attrs[index or 0], unit,
                None if satisfaction is None else _SATISFACTIONS[satisfaction], ext, reopen,
                None if due is None else base + due, reason)
        entry.sent = {code: [base + fires, base + due, flags] for code, fires, due, flags in sent}
        return entry


    @classmethod
    def _decode_legacy(cls, data: dict) -> CaseEntry:
        """The state earlier workers wrote (v1: whole events; v2: fields shared by the events
        stored once, alert ids without the case id): still readable after an upgrade."""
        from schemas.case import alert_id as make_alert_id
        from schemas.event import Event
        from streams.cases import LEVELS, alert_code

        entry = cls(int(data["tp"][1]))
        common = data.get("common", {})
        events = [Event.model_validate({**common, **row}) for row in data["events"]]
        for event in events:
            entry.steps[event.event_id] = Step.of(event)
        case_id = events[0].case_id if events else ""
        for key, value in data["sent"].items():
            if data.get("v") == 2:
                milestone, cycle, level = key.split(":")
                due, fires, retracted = value
            else:
                milestone, cycle, level, due, fires, retracted = value
                assert key == make_alert_id(case_id, Milestone(milestone), int(cycle),
                                            AlertLevel(level))
            code = alert_code(MILESTONES.index(Milestone(milestone)), int(cycle),
                              LEVELS.index(AlertLevel(level)))
            entry.sent[code] = [to_us(datetime.fromisoformat(fires)),
                                to_us(datetime.fromisoformat(due)), 1 if retracted else 0]
        return entry


class ArchivedCase:
    """What the worker keeps of a settled case (closed or cancelled, nothing left to fire, quiet
    for the archive period): when its last event happened and a 32-bit mark of each of its
    events, so a re-sent copy is still a duplicate and anything new is refused with the reason.
    ~40 bytes instead of the whole state: the table's memory then grows with the cases of the
    archive period, not with every case ever seen."""

    __slots__ = ("last_at", "marks")

    def __init__(self, last_at: int, marks: frozenset[int]) -> None:
        self.last_at = last_at
        self.marks = marks

    @staticmethod
    def mark(step: Step) -> int:
        return zlib.crc32(f"{step.event_id}|{step.kind.value}|{step.at}|{step.reopen_count}".encode())

    @classmethod
    def of(cls, entry: CaseEntry) -> ArchivedCase:
        steps = entry.steps.values()
        return cls(max(s.at for s in steps), frozenset(cls.mark(s) for s in steps))

    def encode(self) -> bytes:
        marks = sorted(self.marks)
        return ARCHIVE_TAG + struct.pack(f"<q{len(marks)}I", self.last_at, *marks)

    @classmethod
    def decode(cls, raw: bytes) -> ArchivedCase:
        count = (len(raw) - 9) // 4
        last_at, *marks = struct.unpack(f"<q{count}I", raw[1:])
        return cls(last_at, frozenset(marks))


def _attrs_index(attrs: CaseAttrs, attrs_list: list[CaseAttrs], attrs_body: bytes
                 ) -> tuple[int, bytes]:
    """The index of a step's attributes in the stored list (added, with its JSON, if new)."""
    for index, known in enumerate(attrs_list):
        if known is attrs or known == attrs:
            return index, attrs_body
    attrs_list.append(attrs)
    encoded = orjson.dumps(list(attrs))
    return len(attrs_list) - 1, (attrs_body + b"," + encoded) if attrs_body else _compact(encoded)


def _compact(data: bytes) -> bytes:
    """A right-sized copy: bytes from orjson keep a 4 KiB buffer, too much to keep per case."""
    return bytes(memoryview(data))


def _encode_row(step: Step, base: int, attrs_index: int) -> bytes:
    """One step as a compact list: times relative to `base`, trailing empty fields left out."""
    row = [_TYPE_INDEX[step.kind], step.at - base, step.event_id, attrs_index, step.unit,
           None if step.satisfaction is None else _SATISFACTION_INDEX[step.satisfaction],
           step.extension_days, step.reopen_count,
           None if step.due_at is None else step.due_at - base, step.reason]
    while row[-1] is None:
        row.pop()
    if len(row) == 4 and attrs_index == 0:
        row.pop()
    return orjson.dumps(row)


def tune_gc() -> None:
    """The worker keeps hundreds of thousands of small objects alive (its working set of cases):
    with CPython's default thresholds the cyclic collector rescans them all many times a second
    (measured: ~1.45x the processor's time). Collect young objects far less often."""
    import gc

    gc.set_threshold(100_000, 50, 1000)


def peek_upcoming(raw: bytes) -> tuple[TopicPartition, int | None, bool]:
    """(topic partition, next instant, whether the state is in an earlier form) of a stored case,
    for rebuilding the deadline heaps."""
    data = orjson.loads(raw)
    if type(data) is dict:
        return (str(data["tp"][0]), int(data["tp"][1])), None, True
    return (f"events.{data[4][0][0]}", data[1]), data[2] or None, False


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
        working_set: int = 100_000,
        observer: Observer | None = None,
        archive_after: timedelta | None = timedelta(days=30),
    ) -> None:
        self.policy = policy
        self.calendar = calendar
        self.store = store
        self.mode = mode
        self.lateness = allowed_lateness // timedelta(microseconds=1)
        self.wall_clock = wall_clock
        # a settled case's whole state leaves the store this long after its last event
        self.archive_after = None if not archive_after else archive_after // timedelta(microseconds=1)
        self.partitions: dict[TopicPartition, PartitionState] = {}
        self.counts: Tally[str] = Tally()
        self.observer = observer or Observer()
        # decoded cases recently used, with their folds: timers and the next batch of a busy case
        # need neither a decode nor a new reduction (the store stays the truth)
        self.working_set = working_set
        self._working: OrderedDict[str, CaseEntry] = OrderedDict()
        self._attrs: AttrsCache = {}
        # what re-evaluates stored cases when it changes: the policy and the official calendar
        self.fingerprint = f"{calendar.fingerprint}:{policy.fingerprint()}"
        self._stats = BatchStats()

    # ---- the closed interface ----------------------------------------------------------------

    def process(self, records: list[Record]) -> Output:
        """One batch of records from the event topics, in partition order."""
        out = Output()
        dirty: dict[str, CaseEntry] = {}
        # per partition, the clock after each record: an alert carries the first clock that
        # reached its instant, whatever the batching
        progress: dict[TopicPartition, list[int]] = {}
        live_now = self._live_now()
        for record in records:
            tp = (record.topic, record.partition)
            part = self._partition(tp)
            steps = progress.get(tp)
            if steps is None:
                if live_now > part.clock:
                    part.clock = live_now
                steps = progress[tp] = [part.clock]
            if record.control:
                self._flush(dirty, progress, out)
                self._control(tp, part, record, out)
                progress.clear()
                continue
            try:
                case_id, step = parse_step(record.value, self._attrs)
                self._apply(case_id, step, record.partition, tp, part, dirty, steps, out)
            except InvalidRecord as exc:
                self._reject(record, exc.reason, out)
            except Exception as exc:  # noqa: BLE001 - one record must never stop the worker
                self.counts["failed"] += 1
                self._reject(record, f"internal: the worker could not apply this event "
                                     f"({type(exc).__name__}: {exc}); it was set aside", out)
        self._flush(dirty, progress, out)
        for tp in progress:
            self._save_clock(tp, self.partitions[tp], out)
        self._report()
        return out

    def tick(self, now: datetime | None = None) -> Output:
        """Live mode: move every partition's clock to the wall clock and fire what is due."""
        out = Output()
        current = now or (self.wall_clock() if self.wall_clock else None)
        if current is None:
            return out
        at = to_us(current)
        for tp, part in self.partitions.items():
            if at > part.clock:
                part.clock = at
                self._fire_due(tp, part, [at], out)
        self._report()
        return out

    def rebuild(self, assigned: set[TopicPartition]) -> tuple[int, Output]:
        """After (re)assignment: rebuild the deadline heaps of the assigned partitions from the
        store (alerts already sent are remembered there, so none fires twice). Where the policy
        or the official calendar changed since a partition's state was written, its cases are
        re-evaluated: instants move, and alerts the new calendar proves wrong are retracted."""
        out = Output()
        for tp in list(self.partitions):
            if tp not in assigned:
                del self.partitions[tp]
        # recovery may have rewritten the store under us: the decoded working set is stale
        for cached in self._working.values():
            cached.drop_state()
        self._working.clear()
        stale: set[TopicPartition] = set()
        live_now = self._live_now()
        for tp in assigned:
            part = self._partition(tp)
            if live_now > part.clock:
                part.clock = live_now
            if self._stored_fingerprint(tp) not in (None, self.fingerprint):
                stale.add(tp)
        count = 0
        for key in list(self.store):
            if key.startswith(CLOCK_PREFIX):
                continue
            raw = self.store.get(key)
            if raw is None or raw[:1] == ARCHIVE_TAG:
                continue
            try:
                tp, upcoming, legacy = peek_upcoming(raw)
            except (ValueError, IndexError, TypeError, KeyError):
                continue
            if tp not in assigned:
                continue
            count += 1
            part = self._partition(tp)
            if tp in stale or legacy:
                entry = self._load(key)
                if isinstance(entry, CaseEntry):
                    self._evaluate(key, entry, part, [part.clock], out, events_changed=True)
            elif upcoming is not None:
                self._schedule(part, key, upcoming)
        for tp in assigned:
            self._save_clock(tp, self._partition(tp), out)
        self._report()
        return count, out

    def clock_markers(self, run: str = "live") -> list[tuple[str, int, bytes]]:
        """Control records carrying each partition's clock, for the sink's pipeline clock."""
        return [
            (tp[0], tp[1], orjson.dumps({"run": run, "clock": from_us(part.clock).isoformat()}))
            for tp, part in self.partitions.items()
            if part.clock > 0
        ]

    def clock(self) -> datetime | None:
        """The latest partition clock (for the clock gauge)."""
        if not self.partitions:
            return None
        latest = max(p.clock for p in self.partitions.values())
        return from_us(latest) if latest > 0 else None

    def cases(self) -> Iterator[tuple[str, CaseState]]:
        """Every stored case not archived, reduced (tests and tools; not on the hot path)."""
        for key, raw in list(self.store.items()):
            if not key.startswith(CLOCK_PREFIX) and raw[:1] != ARCHIVE_TAG:
                entry = CaseEntry.decode(raw)
                yield key, entry.derive(key, self.policy, self.calendar)

    # ---- internals ---------------------------------------------------------------------------

    def _live_now(self) -> int:
        """Live mode: the wall clock, which a partition's clock never trails when records are
        evaluated. The clock stored with a partition is that of its last batch, older than the
        ticks after it: a worker that takes the partition over (or restarts) and evaluated a case
        with it would retract the alerts those ticks fired. 0 in replay mode."""
        if self.mode is Mode.LIVE and self.wall_clock is not None:
            return to_us(self.wall_clock())
        return 0

    def _partition(self, tp: TopicPartition) -> PartitionState:
        state = self.partitions.get(tp)
        if state is None:
            state = self.partitions[tp] = PartitionState()
            raw = self.store.get(f"{CLOCK_PREFIX}{tp[0]}:{tp[1]}")
            if raw is not None:
                saved = orjson.loads(raw)
                state.clock = saved["clock"]
                state.high_water = saved["high_water"]
        return state

    def _stored_fingerprint(self, tp: TopicPartition) -> str | None:
        raw = self.store.get(f"{CLOCK_PREFIX}{tp[0]}:{tp[1]}")
        return None if raw is None else orjson.loads(raw).get("fingerprint")

    def _control(self, tp: TopicPartition, part: PartitionState, record: Record, out: Output) -> None:
        try:
            payload = orjson.loads(record.value)
            clock = payload.get("clock") if isinstance(payload, dict) else None
            at = to_us(datetime.fromisoformat(clock)) if clock else None
        except (orjson.JSONDecodeError, ValueError, TypeError):
            self._reject(record, "control record: not a JSON object with an ISO 8601 clock", out)
            return
        steps = [part.clock]
        if self.mode is Mode.REPLAY and at is not None and at > part.clock:
            part.clock = at
            steps.append(at)
        self._fire_due(tp, part, steps, out)
        self._save_clock(tp, part, out)
        out.controls.append((record.topic, record.partition, record.value))

    def _reject(self, record: Record, reason: str, out: Output) -> None:
        from producers.privacy import mask_text

        self.counts["rejected"] += 1
        self._stats.rejects[reason.split(":", 1)[0][:40]] += 1
        raw = record.value[:MAX_DEAD_LETTER_RAW].decode("utf-8", "replace")
        out.rejects.append((b"worker", orjson.dumps({
            "format": "canonical", "source": record.topic.removeprefix("events."),
            "file": f"{record.topic}/{record.partition}", "line": 0, "reason": reason[:500],
            "raw": mask_text(raw), "truncated": len(record.value) > MAX_DEAD_LETTER_RAW})))

    def _apply(self, case_id: str, step: Step, partition: int, tp: TopicPartition,
               part: PartitionState, dirty: dict[str, CaseEntry], steps: list[int],
               out: Output) -> None:
        entry = dirty.get(case_id)
        source = step.attrs.source
        if entry is None:
            loaded = self._load(case_id)
            if isinstance(loaded, ArchivedCase):
                self._archived_step(case_id, loaded, step)
                return
            entry = loaded or CaseEntry(partition)
            dirty[case_id] = entry
        kept = entry.steps.get(step.event_id)
        if kept is not None and not step.supersedes(kept):
            self.counts["duplicate"] += 1
            self._stats.duplicates[source] += 1
            return
        self.counts["processed"] += 1
        self._stats.events[(source, step.kind)] += 1
        if step.at > part.high_water:
            part.high_water = step.at
        lateness = self.lateness if self.mode is Mode.LIVE else 0
        late = step.at < part.clock - lateness
        if late and entry.sent and self.mode is Mode.REPLAY:
            # a late event may prove sent alerts wrong: settle the case as of before it
            self._evaluate(case_id, entry, part, steps, out, may_archive=False)
        entry.add(step, kept)
        if step.kind in MEETS:
            self._note_met(case_id, entry, step)
        elif step.kind is _EV_RETURNED and kept is None:
            # by the case's district: a circulation log's steps carry none themselves
            district = step.attrs.district or next(
                (s.attrs.district for s in entry.steps.values() if s.attrs.district), None)
            self._stats.returns[(source, district)] += 1
        if late:
            self.counts["late"] += 1
            self._stats.late[source] += 1
            self._evaluate(case_id, entry, part, [part.clock], out, may_archive=False)
        if self.mode is Mode.REPLAY:
            watermark = part.high_water - self.lateness
            if watermark > part.clock:
                part.clock = watermark
                steps.append(watermark)

    def _archived_step(self, case_id: str, archived: ArchivedCase, step: Step) -> None:
        """An event of an archived case: a copy of one it had is a duplicate; anything else is
        refused (raised as a dead letter) with what to do."""
        if ArchivedCase.mark(step) in archived.marks:
            self.counts["duplicate"] += 1
            self._stats.duplicates[step.attrs.source] += 1
            return
        days = (self.archive_after or 0) // 86_400_000_000
        raise InvalidRecord(
            f"case archived: case {case_id} was settled (closed or cancelled) and its last event "
            f"was on {from_us(archived.last_at).date().isoformat()}, more than {days} days before "
            f"the clock, so the worker keeps only its event marks; this event is new to it and "
            f"was not applied. To apply it, replay the case's feeds into a new var dir with a "
            f"larger CIVICFLOW_CASE_ARCHIVE_DAYS")

    def _note_met(self, case_id: str, entry: CaseEntry, step: Step) -> None:
        """Response / resolution time when this step meets its milestone (for the histograms)."""
        try:
            state = entry.derive(case_id, self.policy, self.calendar)
        except CalendarUnknown:
            return
        clock = state.current(MEETS[step.kind])
        if clock is not None and clock.met_us == step.at:
            self._stats.met.append((state.source, state.urgency, clock.milestone,
                                    (step.at - clock.start_us) / 1e6))

    def _flush(self, dirty: dict[str, CaseEntry], progress: dict[TopicPartition, list[int]],
               out: Output) -> None:
        for case_id, entry in dirty.items():
            tp = (_topic_of(entry), entry.partition)
            part = self._partition(tp)
            self._evaluate(case_id, entry, part, progress.get(tp, [part.clock]), out, events_changed=True)
        dirty.clear()
        for tp, steps in progress.items():
            self._fire_due(tp, self._partition(tp), steps, out)
            progress[tp] = [steps[-1]]

    def _fire_due(self, tp: TopicPartition, part: PartitionState, steps: list[int],
                  out: Output) -> None:
        heap = part.heap
        while heap and heap[0][0] <= part.clock:
            at, case_id = heapq.heappop(heap)
            if part.scheduled.get(case_id) != at:
                continue  # stale entry: the case was rescheduled since
            del part.scheduled[case_id]
            entry = self._load(case_id)
            if isinstance(entry, CaseEntry):
                self._evaluate(case_id, entry, part, steps, out)

    def _emitted_at(self, at: int, steps: list[int]) -> int:
        if self.mode is Mode.LIVE:
            return to_us(self.wall_clock()) if self.wall_clock else steps[-1]
        index = bisect.bisect_left(steps, at)
        return steps[index] if index < len(steps) else steps[-1]

    def _evaluate(self, case_id: str, entry: CaseEntry, part: PartitionState, steps: list[int],
                  out: Output, events_changed: bool = False, may_archive: bool = True) -> None:
        """Fire, end and retract what is due at the partition's clock; a new snapshot when the
        case's events changed or the clock changed what it shows; the state written when
        either its events or its sent alerts changed."""
        clock = part.clock
        try:
            state = entry.derive(case_id, self.policy, self.calendar)
            changes, upcoming, escalation = state.evaluate(entry.sent, clock)
        except Exception as exc:  # noqa: BLE001 - one case must never stop the worker
            # cannot happen within the bounds events and policies are held to (CalendarUnknown
            # included); if it does, the case is set aside with the reason, the batch goes on
            self._stats.rejects["case_failed"] += 1
            self.counts["case_failed"] += 1
            out.rejects.append((b"worker", orjson.dumps({
                "format": "canonical", "source": "worker", "file": case_id, "line": 0,
                "reason": f"internal: case {case_id} could not be evaluated "
                          f"({type(exc).__name__}: {exc})", "raw": ""})))
            return
        partition = entry.partition
        key = case_id.encode()
        for change in changes:
            if change.kind == "fire":
                at = change.fires_at
            elif change.kind == "end":
                at = change.ended_at or clock
            else:
                at = clock
            emitted = self._emitted_at(at, steps)
            out.alerts.append((partition, key, alert_json(state, change, emitted)))
            self._stats.alerts[(state.source, change.milestone, change.level, change.kind)] += 1
            if change.kind == "fire":
                self._stats.alert_delays.append(max(0.0, (emitted - change.fires_at) / 1e6))
        archive = False
        if events_changed:
            entry.touched = clock
        if upcoming is None and self.archive_after and state.status in SETTLED:
            last_at = max(s.at for s in entry.steps.values())
            archive_at = max(last_at, entry.touched) + self.archive_after
            if archive_at > clock:
                upcoming = archive_at
            else:
                archive = may_archive
        entry.upcoming = upcoming
        shown = (escalation, state.status_at(clock), state.suspended_at(clock))
        if events_changed or shown != entry.shown:
            out.snapshots.append((partition, key, snapshot_json(state, clock, escalation)))
            entry.shown = shown
        if archive:
            raw = ArchivedCase.of(entry).encode()
            self.store[case_id] = raw
            out.state_writes.append((partition, key, raw))
            self._working.pop(case_id, None)
            part.scheduled.pop(case_id, None)
            self.counts["archived"] += 1
            self._stats.archived[state.source] += 1
            self.observer.case(case_id, None)
            entry.drop_state()
            return
        if changes or events_changed:
            raw = entry.encode()
            self.store[case_id] = raw
            out.state_writes.append((partition, key, raw))
            self._remember(case_id, entry)
        self.observer.case(case_id, _facts(state, clock, escalation))
        tp = (_topic_of(entry), partition)
        if upcoming is None:
            part.scheduled.pop(case_id, None)
        else:
            self._schedule(part if tp in self.partitions else self._partition(tp), case_id, upcoming)

    def _load(self, case_id: str) -> CaseEntry | ArchivedCase | None:
        entry = self._working.get(case_id)
        if entry is not None:
            self._working.move_to_end(case_id)
            return entry
        raw = self.store.get(case_id)
        if raw is None:
            return None
        if raw[:1] == ARCHIVE_TAG:
            return ArchivedCase.decode(raw)
        entry = CaseEntry.decode(raw)
        self._remember(case_id, entry)
        return entry

    def _remember(self, case_id: str, entry: CaseEntry) -> None:
        working = self._working
        working[case_id] = entry
        working.move_to_end(case_id)
        if len(working) > self.working_set:
            _, evicted = working.popitem(last=False)
            if evicted is not entry:  # one still in the batch folds again when it is evaluated
                evicted.drop_state()

    def _schedule(self, part: PartitionState, case_id: str, at: int) -> None:
        if part.scheduled.get(case_id) == at:
            return
        part.scheduled[case_id] = at
        heapq.heappush(part.heap, (at, case_id))

    def _save_clock(self, tp: TopicPartition, part: PartitionState, out: Output) -> None:
        key = f"{CLOCK_PREFIX}{tp[0]}:{tp[1]}"
        raw = orjson.dumps({"clock": part.clock, "high_water": part.high_water,
                            "fingerprint": self.fingerprint})
        self.store[key] = raw
        out.state_writes.append((tp[1], key.encode(), raw))

    def _report(self) -> None:
        if self._stats:
            self._stats.cached_cases = len(self._working)
            self.observer.batch(self._stats)
            self._stats = BatchStats()


def _topic_of(entry: CaseEntry) -> str:
    topic = entry.topic
    if topic is None:
        for step in entry.steps.values():  # the first (compiled, a loop makes no iterator object)
            topic = entry.topic = _TOPIC_OF[step.attrs.source]
            return topic
        raise ValueError("a case entry without steps")
    return topic


_RED: Final = list(AlertLevel).index(AlertLevel.RED)
_CANCELLED: Final = CaseStatus.CANCELLED
_CLOSED: Final = CaseStatus.CLOSED


_FACT_FIELDS: Final = ("source", "district", "urgency", "created_us", "open", "overdue",
                       "respond_due", "respond_on_time", "resolve_due", "resolve_on_time", "suspended")


class CaseFacts:
    """A case's contribution to the live gauges (bounded labels only), made on every
    evaluation: a compiled class (a named tuple's `__new__` is interpreted code)."""

    __slots__ = ("created_us", "district", "open", "overdue", "resolve_due", "resolve_on_time",
                 "respond_due", "respond_on_time", "source", "suspended", "urgency")

    def __init__(self, source: str, district: str, urgency: str, created_us: int, open: bool,
                 overdue: bool, respond_due: bool, respond_on_time: bool, resolve_due: bool,
                 resolve_on_time: bool, suspended: bool) -> None:
        self.source = source
        self.district = district
        self.urgency = urgency
        self.created_us = created_us
        self.open = open
        self.overdue = overdue
        self.respond_due = respond_due  # met, or due before the clock
        self.respond_on_time = respond_on_time
        self.resolve_due = resolve_due
        self.resolve_on_time = resolve_on_time
        self.suspended = suspended

    def __eq__(self, other: object) -> bool:
        return isinstance(other, CaseFacts) and all(
            getattr(self, name) == getattr(other, name) for name in _FACT_FIELDS)

    def __repr__(self) -> str:
        return "CaseFacts(" + ", ".join(f"{name}={getattr(self, name)!r}"
                                        for name in _FACT_FIELDS) + ")"


def _facts(state: CaseState, clock: int, escalation: int) -> CaseFacts | None:
    """The case's contribution to the live gauges; None for cancelled cases (never counted)."""
    status = state.status
    if status is _CANCELLED:
        return None
    is_open = status is not _CLOSED
    overdue = False
    flags = [False, False, False, False]
    for index, milestone in enumerate(MILESTONES):
        current = state.current(milestone)
        if current is None:
            continue
        met = current.met_us
        if is_open and not overdue and met is None and current.stop_us is None:
            # red only after yellow: the yellow instant is known already, the red often not
            overdue = current.point(0)[0] <= clock and current.point(_RED)[0] <= clock
        if index < 2:
            due = current.due_us()[0]
            flags[2 * index] = met is not None or due < clock
            flags[2 * index + 1] = met is not None and met <= due
    return CaseFacts(state.source, state.district or "unknown", state.urgency,
                     state.created_us, is_open, overdue, flags[0], flags[1], flags[2], flags[3],
                     state.suspended_at(clock))


__all__ = ["ESCALATION_RANK", "ArchivedCase", "BatchStats", "CaseEntry", "CaseFacts", "CaseProcessor",
           "CaseStore", "Mode", "Observer", "Output", "Record"]
