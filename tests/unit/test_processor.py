"""The worker logic without Kafka: determinism, late events, and restarts."""

from __future__ import annotations

import io
from datetime import datetime, timedelta

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from producers.base import Reject
from producers.grid import GridAdapter
from producers.simulator import simulate_grid
from schemas.topics import CONTROL_KEY
from streams.cases import reduce_case
from streams.processor import CaseProcessor, Mode, Record
from tests.conftest import cn, ev

PARTITIONS = 3


def records_for(events):
    return [Record("events.grid", sum(e.case_id.encode()) % PARTITIONS, e.case_id.encode(),
                   e.to_json()) for e in events]


def final_markers(as_of):
    payload = orjson.dumps({"run": "t", "clock": as_of.isoformat(), "final": True})
    return [Record("events.grid", p, CONTROL_KEY, payload, control=True) for p in range(PARTITIONS)]


def kind_of(alert: dict) -> str:
    """The three record kinds of alerts.sla (schemas/case.py Alert)."""
    if alert["retracted"]:
        return "retract"
    return "fire" if alert["ended_at"] is None else "end"


def run(policy, calendar, records, batch, store=None):
    """Alert records keyed by (alert_id, kind); a record seen twice fails the run."""
    processor = CaseProcessor(policy, calendar, {} if store is None else store, mode=Mode.REPLAY)
    alerts, snapshots = {}, {}
    for i in range(0, len(records), batch):
        out = processor.process(records[i:i + batch])
        for _, _, value in out.alerts:
            alert = orjson.loads(value)
            key = (alert["alert_id"], kind_of(alert))
            assert key not in alerts, f"{key} emitted twice"
            alerts[key] = value
        for _, key, value in out.snapshots:
            snap = orjson.loads(value)
            if snap["version"] >= orjson.loads(snapshots.get(key, b'{"version":-1}'))["version"]:
                snapshots[key] = value
    return processor, alerts, snapshots


@pytest.fixture(scope="module")
def month_events():
    lines = simulate_grid(seed=3, start=cn(2026, 10, 5).date(), days=10, cases_per_day=15,
                          districts=2, faults=False)
    events = [e for e in GridAdapter().parse(io.BytesIO(b"\n".join(lines)), "sim") if not isinstance(e, Reject)]
    return sorted(events, key=lambda e: (e.occurred_at, e.event_id))


def test_replay_matches_the_pure_reduction_and_any_batching(policy, calendar, month_events):
    as_of = month_events[-1].occurred_at
    records = records_for(month_events) + final_markers(as_of)
    _, alerts_small, snaps_small = run(policy, calendar, records, batch=7)
    _, alerts_big, snaps_big = run(policy, calendar, records, batch=5000)
    assert alerts_small == alerts_big  # byte for byte, emitted_at included
    assert snaps_small == snaps_big
    by_case: dict[str, list] = {}
    for e in month_events:
        by_case.setdefault(e.case_id, []).append(e)
    predicted = {p.alert_id for events in by_case.values()
                 for p in reduce_case(events, policy, calendar).fired(as_of)}
    assert {aid for aid, kind in alerts_big if kind == "fire"} == predicted
    assert len(predicted) > 20
    assert all(not orjson.loads(v)["retracted"] for v in alerts_big.values())


def test_an_event_later_than_the_allowed_lateness_retracts_the_alert_it_proves_wrong(policy, calendar):
    created = ev("c1", "created", cn(2026, 10, 16, 17, 0))
    other = ev("o1", "created", cn(2026, 10, 19, 20, 0), case="grid:jn-grid:OTHER")
    # responded at 19:00 Mon, before the yellow at 19:12, but arriving after the clock passed it
    late_answer = ev("c2", "responded", cn(2026, 10, 19, 19, 0))
    processor = CaseProcessor(policy, calendar, {}, mode=Mode.REPLAY)
    first = processor.process([Record("events.grid", 0, b"k", e.to_json()) for e in (created, other)])
    sent = [orjson.loads(v) for _, _, v in first.alerts]
    assert [(a["level"], a["retracted"]) for a in sent] == [("yellow", False)]
    assert sent[0]["emitted_at"] == cn(2026, 10, 19, 19, 50).isoformat()  # watermark = 20:00 - 10 min
    second = processor.process([Record("events.grid", 0, b"k", late_answer.to_json())])
    again = [orjson.loads(v) for _, _, v in second.alerts]
    assert [(a["alert_id"], a["retracted"]) for a in again] == [(sent[0]["alert_id"], True)]
    assert processor.counts["late"] == 1


def test_restart_rebuilds_deadlines_without_refiring(policy, calendar, month_events):
    as_of = month_events[-1].occurred_at
    records = records_for(month_events)
    half = len(records) // 2
    store: dict[str, bytes] = {}
    first, alerts_first, _ = run(policy, calendar, records[:half], batch=500, store=store)
    # a new worker on the same state: heaps rebuilt from the store, then the rest of the input
    second = CaseProcessor(policy, calendar, store, mode=Mode.REPLAY)
    rebuilt, out = second.rebuild({("events.grid", p) for p in range(PARTITIONS)})
    assert out.alerts == [] and out.snapshots == []
    assert rebuilt == len({e.case_id for e in month_events[:half]})
    alerts_second = {}
    for i in range(half, len(records), 500):
        for _, _, value in second.process(records[i:i + 500]).alerts:
            alert = orjson.loads(value)
            alerts_second[(alert["alert_id"], kind_of(alert))] = value
    for _, _, value in second.process(final_markers(as_of)).alerts:
        alert = orjson.loads(value)
        alerts_second[(alert["alert_id"], kind_of(alert))] = value
    assert not set(alerts_first) & set(alerts_second)  # nothing fired or ended twice
    _, alerts_once, _ = run(policy, calendar, records + final_markers(as_of), batch=500)
    assert set(alerts_first) | set(alerts_second) == set(alerts_once)


def test_a_non_event_on_the_topic_becomes_a_dead_letter(policy, calendar):
    processor = CaseProcessor(policy, calendar, {}, mode=Mode.REPLAY)
    out = processor.process([Record("events.grid", 0, b"k", b'{"nope": 1}')])
    assert len(out.rejects) == 1
    assert "not a canonical event" in orjson.loads(out.rejects[0][1])["reason"]


def test_live_mode_fires_on_the_wall_clock(policy, calendar):
    # by hand: created Fri 16 Oct 17:00; grid respond = 1 working day, counted from 24:00 of the
    # start day, so it runs over Mon 19 Oct (the weekend does not count): due Tue 00:00, yellow
    # at 0.8 of those 24 working hours = Mon 19:12
    yellow_at = cn(2026, 10, 19, 19, 12)
    now = [cn(2026, 10, 16, 17, 0)]
    processor = CaseProcessor(policy, calendar, {}, mode=Mode.LIVE, wall_clock=lambda: now[0])
    processor.process([Record("events.grid", 0, b"k", ev("c1", "created", now[0]).to_json())])
    assert processor.tick(yellow_at - timedelta(seconds=1)).alerts == []  # not before its instant
    now[0] = yellow_at + timedelta(seconds=1, milliseconds=300)  # the first tick after it
    fired = [orjson.loads(v) for _, _, v in processor.tick().alerts]
    assert [(a["level"], a["fires_at"], a["due_at"]) for a in fired] == [
        ("yellow", yellow_at.isoformat(), cn(2026, 10, 20, 0, 0).isoformat())]
    # stamped with the wall clock of the tick that fired it, within 2 s of its instant
    emitted = datetime.fromisoformat(fired[0]["emitted_at"])
    assert emitted == now[0]
    assert timedelta(0) < emitted - datetime.fromisoformat(fired[0]["fires_at"]) <= timedelta(seconds=2)
    assert processor.tick(now[0] + timedelta(seconds=1)).alerts == []  # once


def test_a_live_worker_taking_over_a_partition_keeps_the_alerts_its_predecessor_fired(policy, calendar):
    """The yellow (Mon 19:12, worked out in the test above) fired by a tick of the first worker;
    a second worker on the same state (a takeover or a restart) gets a record of the case before
    its first tick: it must not retract the yellow (the partition's stored clock is that of the
    last batch, before the tick), and must not fire it again."""
    now = [cn(2026, 10, 16, 17, 0)]
    store: dict[str, bytes] = {}
    first = CaseProcessor(policy, calendar, store, mode=Mode.LIVE, wall_clock=lambda: now[0])
    first.process([Record("events.grid", 0, b"k", ev("c1", "created", now[0]).to_json())])
    now[0] = cn(2026, 10, 19, 19, 13)
    assert [orjson.loads(v)["level"] for _, _, v in first.tick().alerts] == ["yellow"]
    second = CaseProcessor(policy, calendar, store, mode=Mode.LIVE, wall_clock=lambda: now[0])
    _, rebuilt = second.rebuild({("events.grid", 0)})
    now[0] = cn(2026, 10, 19, 19, 14)
    dispatched = ev("c2", "dispatched", cn(2026, 10, 19, 19, 13, 30), unit="U1")
    out = second.process([Record("events.grid", 0, b"k", dispatched.to_json())])
    assert rebuilt.alerts == [] and out.alerts == []


def test_stored_case_state_round_trips_and_earlier_forms_still_decode(policy, calendar, month_events):
    from streams.processor import CaseEntry

    store: dict[str, bytes] = {}
    run(policy, calendar, records_for(month_events) + final_markers(month_events[-1].occurred_at),
        batch=1000, store=store)
    cases = {k: v for k, v in store.items() if not k.startswith("\x00")}
    by_case: dict[str, list] = {}
    for e in month_events:
        by_case.setdefault(e.case_id, []).append(e)
    with_alerts = 0
    for case_id, raw in cases.items():
        entry = CaseEntry.decode(raw)
        assert {s.event_id for s in entry.steps.values()} == {e.event_id for e in by_case[case_id]}
        again = CaseEntry.decode(entry.encode())
        assert again.sent == entry.sent and again.partition == entry.partition
        assert all(again.steps[k].same(v) for k, v in entry.steps.items())
        with_alerts += bool(entry.sent)
        # the verbose form (v1) written by earlier versions decodes to the same case
        from streams.calendar import from_us
        from streams.cases import decode_alert_code

        sent = {}
        for code, (fires, due, flags) in entry.sent.items():
            milestone, cycle, level = decode_alert_code(code)
            sent[f"{case_id}:{milestone}:{cycle}:{level}"] = [
                milestone.value, cycle, level.value, from_us(due).isoformat(),
                from_us(fires).isoformat(), bool(flags & 1)]
        verbose = orjson.dumps({
            "tp": ["events.grid", entry.partition],
            "events": [e.model_dump(mode="json", exclude_none=True) for e in by_case[case_id]],
            "sent": sent})
        old = CaseEntry.decode(verbose)
        assert {k: v[:2] + [v[2] & 1] for k, v in old.sent.items()} == {
            k: v[:2] + [v[2] & 1] for k, v in entry.sent.items()}
        assert all(old.steps[k].same(v) for k, v in entry.steps.items())
    assert with_alerts > 10
    sizes = sorted(len(v) for v in cases.values())
    assert sum(sizes) / len(sizes) <= 512, f"stored state per case {sum(sizes) / len(sizes):.0f} B"


def test_when_the_official_schedule_arrives_open_cases_are_re_evaluated(policy, tmp_path):
    """A 疑难 hotline case from 2026-11-20 runs into 2027, past chinese-calendar 1.11: its resolve
    escalation3 (45 wd) falls at 24:00 Mon 2027-01-25 on the provisional calendar (worked out in
    test_calendar.py). Then the 2027 schedule is installed and, in it, Mon 01-04 is a holiday too:
    the 45th working day becomes Tue 01-26, later than the clock (01-26 12:00), so the worker,
    restarted on the same state, retracts that alert and nothing else."""
    from streams.calendar import WorkingDayCalendar

    case = "hotline:12345:GDC001"
    created = ev("c", "created", cn(2026, 11, 20, 9, 0), case=case, urgency="complex")
    clock = orjson.dumps({"run": "t", "clock": cn(2027, 1, 26, 12, 0).isoformat(), "final": True})
    store: dict[str, bytes] = {}
    first = CaseProcessor(policy, WorkingDayCalendar(), store, mode=Mode.REPLAY)
    out = first.process([Record("events.hotline", 0, case.encode(), created.to_json()),
                         Record("events.hotline", 0, CONTROL_KEY, clock, control=True)])
    fired = {a["alert_id"].split(":", 3)[3]: a for a in map(orjson.loads, (v for _, _, v in out.alerts))}
    esc3 = fired["resolve:0:escalation3"]
    assert esc3["fires_at"] == cn(2027, 1, 26).isoformat() and esc3["provisional"]
    assert not fired["resolve:0:red"]["provisional"]  # 24:00 2026-12-11: official

    schedule = tmp_path / "holidays.toml"
    schedule.write_text('[2027]\nholidays = ["2027-01-01", "2027-01-04"]\nworkdays = []\n')
    official = WorkingDayCalendar.from_override_file(schedule)
    second = CaseProcessor(policy, official, store, mode=Mode.REPLAY)
    count, out = second.rebuild({("events.hotline", 0)})
    changes = [orjson.loads(v) for _, _, v in out.alerts]
    assert count == 1
    assert [(a["alert_id"].split(":", 3)[3], a["retracted"]) for a in changes] == [
        ("resolve:0:escalation3", True)]
    snapshot = orjson.loads(out.snapshots[-1][2])
    assert snapshot["provisional"] is False
    # restarting again on the same schedule changes nothing
    third = CaseProcessor(policy, official, store, mode=Mode.REPLAY)
    assert third.rebuild({("events.hotline", 0)})[1].alerts == []


EVENT_KINDS = ["created", "dispatched", "responded", "resolved", "feedback", "reopened", "extended",
               "supervised", "cancelled", "closed", "returned", "reassigned", "suspended", "resumed"]


@st.composite
def case_histories(draw):
    """A few cases with random lifecycles (every event type, §6a ones included), as events."""
    events = []
    for number in range(draw(st.integers(1, 4))):
        case = f"hotline:12345:H{number}" if number % 2 else f"grid:jn-grid:G{number}"
        start = cn(2026, 9, 24, 8, 0) + timedelta(hours=draw(st.integers(0, 400)))
        events.append(ev(f"{number}-0", "created", start, case=case, unit="U0",
                         urgency=draw(st.sampled_from(["urgent", "normal", "complex"]))))
        for index in range(draw(st.integers(0, 9))):
            kind = draw(st.sampled_from(EVENT_KINDS[1:]))
            extra: dict = {}
            if kind in ("dispatched", "reassigned", "returned"):
                extra["unit"] = draw(st.sampled_from(["U1", "U2", "U3"]))
            if kind == "extended":
                extra["extension_days"] = draw(st.integers(1, 5))
            if kind == "feedback":
                extra["satisfaction"] = draw(st.sampled_from(["satisfied", "unsatisfied"]))
            at = start + timedelta(minutes=draw(st.integers(-30, 20 * 24 * 60)))
            events.append(ev(f"{number}-{index + 1}", kind, at, case=case, **extra))
    return events


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case_histories(), st.randoms(use_true_random=False), st.integers(1, 12))
def test_any_arrival_order_batching_and_duplicates_reach_the_pure_reduction(events, rng, batch):
    """The processor's final word per case (last snapshot; alerts fired minus retracted) equals
    the pure reduction of the same events, whatever the arrival order, batches and duplicates."""
    from schemas.policy import load_policy
    from streams.calendar import WorkingDayCalendar

    policy, calendar = load_policy(), WorkingDayCalendar()
    arrivals = events + [rng.choice(events) for _ in range(len(events) // 3)]  # duplicates
    rng.shuffle(arrivals)
    as_of = max(e.occurred_at for e in events) + timedelta(days=40)
    records = [Record(f"events.{e.source}", 0, e.case_id.encode(), e.to_json()) for e in arrivals]
    marker = orjson.dumps({"run": "h", "clock": as_of.isoformat(), "final": True})
    records += [Record(t, 0, CONTROL_KEY, marker, control=True) for t in ("events.grid", "events.hotline")]
    # archiving off, and on with a period longer than any disorder these histories have (their
    # events lie within 37 days): then it changes nothing the processor says
    runs = [_final_word(policy, calendar, records, batch, archive) for archive in (None, timedelta(days=40))]
    assert runs[0] == runs[1]
    active, last_snapshot = runs[0]
    by_case: dict[str, list] = {}
    for e in events:
        by_case.setdefault(e.case_id, []).append(e)
    expected_alerts = set()
    for case_id, case_events in by_case.items():
        state = reduce_case(case_events, policy, calendar)
        expected_alerts |= {p.alert_id for p in state.fired(as_of)}
        expected = orjson.loads(state.snapshot(as_of).model_dump_json())
        got = last_snapshot[case_id]
        assert {k: got[k] for k in expected if k.endswith(("_at", "_due"))} == {
            k: expected[k] and _same_instant(expected[k], got[k]) for k in expected
            if k.endswith(("_at", "_due"))} or _instants_equal(expected, got)
        plain = [k for k in expected if not k.endswith(("_at", "_due"))]
        assert {k: got[k] for k in plain} == {k: expected[k] for k in plain}, case_id
    assert {aid for aid, on in active.items() if on} == expected_alerts


def _final_word(policy, calendar, records, batch, archive_after):
    processor = CaseProcessor(policy, calendar, {}, mode=Mode.REPLAY, archive_after=archive_after)
    active: dict[str, bool] = {}
    last_snapshot: dict[str, dict] = {}
    for i in range(0, len(records), batch):
        out = processor.process(records[i:i + batch])
        assert not out.rejects
        for _, _, value in out.alerts:
            alert = orjson.loads(value)
            if alert["ended_at"] is None:
                active[alert["alert_id"]] = not alert["retracted"]
        for _, key, value in out.snapshots:
            last_snapshot[key.decode()] = orjson.loads(value)
    return active, last_snapshot


def _same_instant(a: str, b: str | None) -> str | None:
    return b if b is not None and datetime.fromisoformat(a) == datetime.fromisoformat(b) else a


def _instants_equal(expected: dict, got: dict) -> bool:
    for key, value in expected.items():
        if key.endswith(("_at", "_due")):
            if (value is None) != (got[key] is None):
                return False
            if value is not None and datetime.fromisoformat(value) != datetime.fromisoformat(got[key]):
                return False
    return True
