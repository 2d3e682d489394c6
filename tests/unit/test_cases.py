"""The case state machine: lifecycle, cycles, extensions, stops, and order independence."""

from __future__ import annotations

from datetime import timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from schemas.enums import AlertLevel, CaseStatus, Milestone
from streams.cases import reduce_case
from tests.conftest import cn, ev


def fired_ids(state, clock):
    return sorted(p.alert_id.split(":", 3)[3] for p in state.fired(clock))


def test_unanswered_friday_case_fires_what_the_calendar_says(policy, calendar):
    # Fri 2026-10-16 17:00, grid "123". Working days after it: Mon 10-19, Tue 10-20, Wed 10-21.
    state = reduce_case([ev("a", "created", cn(2026, 10, 16, 17, 0), grid="370102001001001")],
                        policy, calendar)
    points = {p.alert_id.split(":", 3)[3]: p.fires_at for p in state.points}
    assert points["respond:0:yellow"] == cn(2026, 10, 19, 19, 12)
    assert points["respond:0:red"] == cn(2026, 10, 20)
    assert points["respond:0:escalation1"] == cn(2026, 10, 20, 12, 0)
    assert points["respond:0:escalation2"] == cn(2026, 10, 21)
    assert points["resolve:0:yellow"] == cn(2026, 10, 20, 14, 24)
    assert points["feedback:0:yellow"] == cn(2026, 10, 21, 9, 36)
    assert fired_ids(state, cn(2026, 10, 21, 12, 0)) == [
        "feedback:0:yellow", "resolve:0:red", "resolve:0:yellow", "respond:0:escalation1",
        "respond:0:escalation2", "respond:0:red", "respond:0:yellow"]
    assert state.escalation_level(cn(2026, 10, 21, 12, 0)) == 2
    assert state.snapshot(cn(2026, 10, 21, 12, 0)).respond_due == cn(2026, 10, 20)


def test_met_at_the_instant_does_not_fire_and_met_late_records_lateness(policy, calendar):
    created = cn(2026, 10, 16, 17, 0)
    on_the_dot = reduce_case([ev("a", "created", created), ev("b", "responded", cn(2026, 10, 19, 19, 12))],
                             policy, calendar)
    assert "respond:0:yellow" not in fired_ids(on_the_dot, cn(2026, 10, 30))
    late = reduce_case([ev("a", "created", created), ev("b", "responded", cn(2026, 10, 20, 1, 0))],
                       policy, calendar)
    assert {"respond:0:yellow", "respond:0:red"} <= set(fired_ids(late, cn(2026, 10, 30)))
    assert "respond:0:escalation1" not in fired_ids(late, cn(2026, 10, 30))
    assert late.snapshot(cn(2026, 10, 30)).respond_late_seconds == 3600


def test_reopen_starts_a_new_cycle_for_resolve_and_feedback(policy, calendar):
    events = [
        ev("1", "created", cn(2026, 10, 17, 10, 0)),
        ev("2", "responded", cn(2026, 10, 19, 20, 0)),
        ev("3", "resolved", cn(2026, 10, 20, 9, 0)),
        ev("4", "feedback", cn(2026, 10, 20, 12, 0), satisfaction="unsatisfied"),
        ev("5", "reopened", cn(2026, 10, 20, 13, 0)),
    ]
    state = reduce_case(events, policy, calendar)
    snap = state.snapshot(cn(2026, 10, 21, 12, 0))
    assert (snap.status, snap.reopen_count, snap.cycle) == (CaseStatus.REOPENED, 1, 1)
    assert snap.resolved_at is None and snap.feedback_at is None
    assert snap.responded_at == cn(2026, 10, 19, 20, 0)
    # cycle 1 from Tue 10-20 13:00: 2 working days = Wed + Thu -> 24:00 Thu
    assert snap.resolve_due == cn(2026, 10, 23)
    assert snap.satisfaction == "unsatisfied"
    assert fired_ids(state, cn(2026, 10, 21, 12, 0)) == ["respond:0:yellow"]


def test_extension_moves_unreached_points_and_keeps_reached_ones(policy, calendar):
    base = [ev("1", "created", cn(2026, 10, 15, 9, 0)), ev("2", "responded", cn(2026, 10, 15, 10, 0))]
    # extended early (Fri 12:00): 2 + 2 = 4 working days -> Fri, Mon, Tue, Wed: due 24:00 Wed
    early = reduce_case([*base, ev("3", "extended", cn(2026, 10, 16, 12, 0), extension_days=2)],
                        policy, calendar)
    points = {p.alert_id.split(":", 3)[3]: p for p in early.points}
    assert points["resolve:0:yellow"].fires_at == cn(2026, 10, 21, 4, 48)  # 3.2 wd
    assert points["resolve:0:red"].fires_at == cn(2026, 10, 22)
    assert early.snapshot(cn(2026, 10, 21)).resolve_due == cn(2026, 10, 22)
    # extended after the yellow (Mon 10-19 14:24) was reached: yellow stays, red moves
    after = reduce_case([*base, ev("3", "extended", cn(2026, 10, 19, 16, 0), extension_days=2)],
                        policy, calendar)
    points = {p.alert_id.split(":", 3)[3]: p for p in after.points}
    assert points["resolve:0:yellow"].fires_at == cn(2026, 10, 19, 14, 24)
    assert points["resolve:0:yellow"].due_at == cn(2026, 10, 20)  # the limit in force then
    assert points["resolve:0:red"].fires_at == cn(2026, 10, 22)


def test_cancel_and_close_stop_every_clock(policy, calendar):
    created = cn(2026, 10, 14, 10, 0)
    cancelled = reduce_case([ev("1", "created", created), ev("2", "cancelled", created + timedelta(hours=1))],
                            policy, calendar)
    assert cancelled.status is CaseStatus.CANCELLED and cancelled.fired(cn(2026, 12, 1)) == []
    closed = reduce_case([ev("1", "created", created), ev("2", "closed", cn(2026, 10, 15, 20, 0))],
                         policy, calendar)
    # respond yellow (Thu 19:12) was reached before the close at 20:00; nothing after it fires
    assert fired_ids(closed, cn(2026, 12, 1)) == ["respond:0:yellow"]
    assert closed.next_instant(cn(2026, 10, 15, 20, 0)) is None


def test_hotline_urgent_runs_on_the_hours_clock(policy, calendar):
    case = "hotline:12345:H1"
    state = reduce_case([ev("1", "created", cn(2026, 10, 17, 23, 30), case=case, urgency="urgent")],
                        policy, calendar)
    points = {p.alert_id.split(":", 3)[3]: p.fires_at for p in state.points}
    assert points["respond:0:red"] == cn(2026, 10, 18, 1, 30)
    assert points["resolve:0:red"] == cn(2026, 10, 18, 23, 30)
    assert points["feedback:0:red"] == cn(2026, 10, 22)  # 3 wd: Mon, Tue, Wed


LIFECYCLE = ["created", "dispatched", "responded", "extended", "supervised", "resolved",
             "feedback", "reopened", "resolved", "feedback", "closed", "cancelled"]


@st.composite
def case_histories(draw):
    start = cn(2026, 10, 12, 8, 0) + timedelta(minutes=draw(st.integers(0, 60 * 24 * 10)))
    count = draw(st.integers(1, 9))
    events = []
    at = start
    for index in range(count):
        kind = "created" if index == 0 else draw(st.sampled_from(LIFECYCLE[1:]))
        extra: dict = {}
        if kind == "extended":
            extra["extension_days"] = draw(st.integers(1, 5))
        if kind == "feedback":
            extra["satisfaction"] = draw(st.sampled_from(["satisfied", "unsatisfied"]))
        events.append(ev(f"e{index}", kind, at, **extra))
        at += timedelta(minutes=draw(st.integers(0, 60 * 30)))
    return events


@settings(max_examples=150, deadline=None)
@given(case_histories(), st.randoms(use_true_random=False), st.integers(0, 3))
def test_any_arrival_order_and_duplicates_give_the_same_state(policy, calendar, events, rnd, dups):
    expected = reduce_case(events, policy, calendar)
    shuffled = list(events) + [rnd.choice(events) for _ in range(dups)]
    rnd.shuffle(shuffled)
    again = reduce_case(shuffled, policy, calendar)
    clock = events[-1].occurred_at + timedelta(days=30)
    assert again.snapshot(clock) == expected.snapshot(clock)
    assert again.points == expected.points


@settings(max_examples=150, deadline=None)
@given(case_histories())
def test_no_alert_fires_for_a_milestone_met_before_its_instant(policy, calendar, events):
    state = reduce_case(events, policy, calendar)
    for point in state.fired(events[-1].occurred_at + timedelta(days=60)):
        clock = next(c for c in state.clocks
                     if c.milestone is point.milestone and c.cycle == point.cycle)
        assert clock.met_at is None or clock.met_at > point.fires_at
        assert clock.stopped_at is None or clock.stopped_at > point.fires_at
        assert point.fires_at >= clock.start


def test_escalation_levels_order(policy, calendar):
    state = reduce_case([ev("a", "created", cn(2026, 10, 12, 9, 0))], policy, calendar)
    respond = [p for p in state.points if p.milestone is Milestone.RESPOND]
    assert [p.level for p in respond] == list(AlertLevel)
    assert [p.fires_at for p in respond] == sorted(p.fires_at for p in respond)
