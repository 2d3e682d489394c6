"""DESIGN §6a on real dates: returns and re-dispatch (按责转办), suspension (挂起) on both clocks,
auto-resume at max_suspension, a milestone met while suspended, a step seen in two exports.

Every expected instant is worked out by hand in the comments (2026 calendar: National Day
holidays Oct 1-7, Sat Oct 10 a make-up working day; limits from schemas/default_policy.toml;
alerts at 0.8 / 1.0 / 1.5 / 2.0 / 3.0 of the limit).
"""

from __future__ import annotations

from datetime import datetime

from schemas.enums import AlertEnd, CaseStatus
from streams.calendar import to_us
from streams.cases import reduce_case
from tests.conftest import cn, ev

HOT = "hotline:12345:"


def fired(state, clock: datetime) -> dict[str, tuple[datetime, str | None]]:
    """alert suffix (milestone:cycle:level) -> (instant, unit charged)."""
    return {p.alert_id.split(":", 3)[3]: (p.fires_at, p.unit) for p in state.fired(clock)}


def ends(state, clock: datetime) -> dict[str, tuple[int, AlertEnd]]:
    sent: dict = {}
    changes, _, _ = state.evaluate(sent, to_us(clock))
    return {f"{c.milestone}:{c.cycle}:{c.level}": (c.ended_at, c.end_reason)
            for c in changes if c.kind == "end"}


def case_a(policy, calendar):
    """Hotline, normal (respond 1wd, resolve 5wd, feedback 7wd). Created Mon 10-12 09:00,
    dispatched to U1 09:30, U1 returns it Tue 10-13 20:00, the centre re-dispatches it to U2
    Fri 10-16 15:00, U2 responds Tue 10-20 09:00, resolves Wed 10-21 10:00, feedback 15:00."""
    c = HOT + "A"
    return reduce_case([
        ev("a1", "created", cn(2026, 10, 12, 9, 0), case=c, urgency="normal", district="370102"),
        ev("a2", "dispatched", cn(2026, 10, 12, 9, 30), case=c, unit="U1"),
        ev("a3", "returned", cn(2026, 10, 13, 20, 0), case=c, unit="U1", reason="不属本单位职责"),
        ev("a4", "reassigned", cn(2026, 10, 16, 15, 0), case=c, unit="U2"),
        ev("a5", "responded", cn(2026, 10, 20, 9, 0), case=c, unit="U2"),
        ev("a6", "resolved", cn(2026, 10, 21, 10, 0), case=c, unit="U2"),
        ev("a7", "feedback", cn(2026, 10, 21, 15, 0), case=c, satisfaction="satisfied"),
    ], policy, calendar)


def test_a_return_and_re_dispatch_charge_each_holder_and_restart_respond(policy, calendar):
    state = case_a(policy, calendar)
    got = fired(state, cn(2026, 11, 1))
    # respond cycle 0 counts from 24:00 Mon: yellow 0.8 wd = Tue 19:12 (U1 still holds it), red
    # 24:00 Tue (returned: nobody holds it), esc1 1.5 wd = Wed 12:00, esc2 2 wd = 24:00 Wed,
    # esc3 3 wd = 24:00 Thu, all before the re-dispatch Fri 15:00 closed the cycle
    # respond cycle 1 for U2 from Fri 15:00: Sat, Sun off, yellow Mon 10-19 19:12, red 24:00 Mon;
    # met Tue 09:00, before esc1 (Tue 12:00)
    # resolve 5 wd (Tue..Fri, Mon): yellow 4 wd = 24:00 Fri 10-16 (U2 since 15:00), red 24:00 Mon;
    # esc1 7.5 wd = Thu 10-22 12:00, after the resolution
    # feedback 7 wd: yellow 5.6 wd = Tue 10-20 14:24, red 24:00 Wed 10-21, after the feedback
    assert got == {
        "respond:0:yellow": (cn(2026, 10, 13, 19, 12), "U1"),
        "respond:0:red": (cn(2026, 10, 14), None),
        "respond:0:escalation1": (cn(2026, 10, 14, 12, 0), None),
        "respond:0:escalation2": (cn(2026, 10, 15), None),
        "respond:0:escalation3": (cn(2026, 10, 16), None),
        "respond:1:yellow": (cn(2026, 10, 19, 19, 12), "U2"),
        "respond:1:red": (cn(2026, 10, 20), "U2"),
        "resolve:0:yellow": (cn(2026, 10, 17), "U2"),
        "resolve:0:red": (cn(2026, 10, 20), "U2"),
        "feedback:0:yellow": (cn(2026, 10, 20, 14, 24), "U2"),
    }
    assert (state.holder_unit, state.returned_count, state.reassigned_count) == ("U2", 1, 1)
    assert ends(state, cn(2026, 11, 1))["respond:0:escalation3"] == (
        to_us(cn(2026, 10, 16, 15, 0)), AlertEnd.RESTARTED)
    assert ends(state, cn(2026, 11, 1))["respond:1:red"] == (to_us(cn(2026, 10, 20, 9, 0)), AlertEnd.MET)
    snap = state.snapshot(cn(2026, 11, 1))
    assert (snap.respond_due, snap.responded_at, snap.respond_late_seconds) == (
        cn(2026, 10, 20), cn(2026, 10, 20, 9, 0), 9 * 3600)


def test_a_step_seen_in_two_exports_is_one_step(policy, calendar):
    """The order export's 派单时间 and the circulation log's 派单 row of the same instant."""
    c = HOT + "B"
    created = ev("b1", "created", cn(2026, 10, 12, 9, 0), case=c, district="370102")
    from_export = ev("b2", "dispatched", cn(2026, 10, 12, 9, 30), case=c, unit="U1")
    from_log = ev("b3", "dispatched", cn(2026, 10, 12, 9, 30), case=c.replace("12345:", "12345:"),
                  unit="U1").model_copy(update={"system": "12345-flow"})
    once = reduce_case([created, from_export], policy, calendar)
    both = reduce_case([created, from_export, from_log], policy, calendar)
    assert both.event_count == once.event_count == 2
    assert both.snapshot(cn(2026, 10, 13)).version == once.snapshot(cn(2026, 10, 13)).version
    assert both.holders == once.holders


def test_suspension_on_the_hours_clock_moves_what_it_had_not_reached(policy, calendar):
    """Hotline urgent (respond 2h, resolve 24h, feedback 3wd), created Sat 10-17 08:00,
    responded 08:40, suspended 10:00-14:00 (4 h), resolved Sun 10-18 11:00, feedback Tue."""
    c = HOT + "C"
    state = reduce_case([
        ev("c1", "created", cn(2026, 10, 17, 8, 0), case=c, urgency="urgent"),
        ev("c2", "dispatched", cn(2026, 10, 17, 8, 10), case=c, unit="U3"),
        ev("c3", "responded", cn(2026, 10, 17, 8, 40), case=c, unit="U3"),
        ev("c4", "suspended", cn(2026, 10, 17, 10, 0), case=c, reason="等待申请人补充材料"),
        ev("c5", "resumed", cn(2026, 10, 17, 14, 0), case=c),
        ev("c6", "resolved", cn(2026, 10, 18, 11, 0), case=c),
        ev("c7", "feedback", cn(2026, 10, 20, 10, 0), case=c, satisfaction="satisfied"),
    ], policy, calendar)
    # resolve yellow 19.2 h = Sun 03:12, not reached at 10:00 Sat: +4 h = 07:12; red 08:00 + 4 h =
    # 12:00, after the resolution. respond (met 08:40) and feedback (counts from 24:00 Sat: the
    # pause lies in the start day) do not move.
    assert fired(state, cn(2026, 11, 1)) == {"resolve:0:yellow": (cn(2026, 10, 18, 7, 12), "U3")}
    snap = state.snapshot(cn(2026, 11, 1))
    assert (snap.resolve_due, snap.paused_seconds, snap.suspended) == (cn(2026, 10, 18, 12, 0), 4 * 3600,
                                                                       False)
    assert snap.feedback_due == cn(2026, 10, 22)  # 24:00 Wed: Mon, Tue, Wed


def test_suspension_starting_on_a_holiday_pauses_only_working_time(policy, calendar):
    """Grid (1, 2, 3 wd), created Tue 09-29 10:00, responded 09-30 11:00; suspended Fri 10-02
    09:00 (National Day) until Mon 10-12 09:00; resolved Tue 10-13 08:00; feedback Wed 10-14 10:00.
    Working days after Tue 09-29: Wed 09-30, Thu 10-08, Fri 10-09, Sat 10-10 (make-up), Mon 10-12.
    The pause holds 10-08, 10-09, 10-10 whole and 9 h of 10-12: 81 h = 3.375 working days."""
    c = "grid:jn-grid:D"
    state = reduce_case([
        ev("d1", "created", cn(2026, 9, 29, 10, 0), case=c, unit="U4"),
        ev("d2", "responded", cn(2026, 9, 30, 11, 0), case=c),
        ev("d3", "suspended", cn(2026, 10, 2, 9, 0), case=c),
        ev("d4", "resumed", cn(2026, 10, 12, 9, 0), case=c),
        ev("d5", "resolved", cn(2026, 10, 13, 8, 0), case=c),
        ev("d6", "feedback", cn(2026, 10, 14, 10, 0), case=c, satisfaction="satisfied"),
    ], policy, calendar)
    # resolve yellow 1.6 + 3.375 = 4.975 wd: 4 whole (to 10-10) + 23.4 h of Mon = 10-12 23:24;
    # red 5.375 wd: Mon whole + 9 h of Tue = 10-13 09:00 (after the resolution)
    # feedback yellow 2.4 + 3.375 = 5.775 wd: 10-13 18:36; red 6.375 wd: 10-14 09:00; esc1
    # 7.875 wd: 10-15 21:00, after the feedback
    assert fired(state, cn(2026, 11, 1)) == {
        "resolve:0:yellow": (cn(2026, 10, 12, 23, 24), "U4"),
        "feedback:0:yellow": (cn(2026, 10, 13, 18, 36), "U4"),
        "feedback:0:red": (cn(2026, 10, 14, 9, 0), "U4"),
    }
    snap = state.snapshot(cn(2026, 11, 1))
    assert (snap.resolve_due, snap.paused_seconds) == (cn(2026, 10, 13, 9, 0), 81 * 3600)
    assert snap.feedback_late_seconds == 3600


def test_a_suspension_ends_by_itself_at_max_suspension(policy, calendar):
    """Grid, created Mon 10-12 09:00, responded 10:00, suspended Tue 10-13 09:00 and never
    resumed: 15 working days from Tue (10-14..16, 19-23, 26-30, 11-02, 11-03) end it at 24:00
    Tue 11-03. The pause holds 15 h of 10-13 and 15 whole days: 15.625 wd. Resolved 11-05 10:00;
    a resume on 11-10 changes nothing."""
    c = "grid:jn-grid:E"
    events = [
        ev("e1", "created", cn(2026, 10, 12, 9, 0), case=c, unit="U5"),
        ev("e2", "responded", cn(2026, 10, 12, 10, 0), case=c),
        ev("e3", "suspended", cn(2026, 10, 13, 9, 0), case=c),
        ev("e4", "resolved", cn(2026, 11, 5, 10, 0), case=c),
    ]
    state = reduce_case(events, policy, calendar)
    # resolve yellow 1.6 + 15.625 = 17.225 wd after Mon: 11-04 is the 17th, + 5.4 h = 11-05 05:24;
    # red 17.625 wd = 11-05 15:00 (after the resolution)
    assert fired(state, cn(2026, 11, 10))["resolve:0:yellow"] == (cn(2026, 11, 5, 5, 24), "U5")
    assert "resolve:0:red" not in fired(state, cn(2026, 11, 10))
    waiting = reduce_case(events[:3], policy, calendar)  # before the resolution
    during = waiting.snapshot(cn(2026, 11, 3, 23, 0))
    assert during.suspended and during.status == CaseStatus.SUSPENDED
    after = waiting.snapshot(cn(2026, 11, 4, 0, 1))
    assert not after.suspended and after.status == CaseStatus.RESPONDED
    late_resume = reduce_case([*events, ev("e5", "resumed", cn(2026, 11, 10, 9, 0), case=c)],
                              policy, calendar)
    assert late_resume.points == state.points


def test_a_milestone_met_while_suspended_is_met(policy, calendar):
    """Grid, created Mon 10-12 09:00, responded 10:00, suspended Tue 10-13 09:00, resolved Wed
    10-14 10:00 while suspended, resumed Thu 10-15 09:00, feedback Tue 10-20 08:00. The pause
    holds 48 h of working time = 2 wd."""
    c = "grid:jn-grid:F"
    state = reduce_case([
        ev("f1", "created", cn(2026, 10, 12, 9, 0), case=c, unit="U6"),
        ev("f2", "responded", cn(2026, 10, 12, 10, 0), case=c),
        ev("f3", "suspended", cn(2026, 10, 13, 9, 0), case=c),
        ev("f4", "resolved", cn(2026, 10, 14, 10, 0), case=c),
        ev("f5", "resumed", cn(2026, 10, 15, 9, 0), case=c),
        ev("f6", "feedback", cn(2026, 10, 20, 8, 0), case=c),
    ], policy, calendar)
    # resolve: met during the pause, so its due moved by the whole pause: 2 + 2 = 4 wd = 24:00
    # Fri 10-16; no resolve alert. feedback yellow 2.4 + 2 = 4.4 wd = Mon 10-19 09:36, red 5 wd =
    # 24:00 Mon 10-19, both before the feedback (late 8 h)
    assert fired(state, cn(2026, 11, 1)) == {
        "feedback:0:yellow": (cn(2026, 10, 19, 9, 36), "U6"),
        "feedback:0:red": (cn(2026, 10, 20), "U6"),
    }
    snap = state.snapshot(cn(2026, 11, 1))
    assert (snap.resolved_at, snap.resolve_due, snap.resolve_late_seconds) == (
        cn(2026, 10, 14, 10, 0), cn(2026, 10, 17), None)
    assert snap.feedback_late_seconds == 8 * 3600


def test_a_suspension_while_suspended_and_a_resume_while_running_are_ignored(policy, calendar):
    c = "grid:jn-grid:G"
    base = [ev("g1", "created", cn(2026, 10, 12, 9, 0), case=c),
            ev("g2", "suspended", cn(2026, 10, 13, 9, 0), case=c),
            ev("g3", "resumed", cn(2026, 10, 14, 9, 0), case=c)]
    plain = reduce_case(base, policy, calendar)
    noisy = reduce_case([*base, ev("g4", "suspended", cn(2026, 10, 13, 12, 0), case=c),
                         ev("g5", "resumed", cn(2026, 10, 15, 9, 0), case=c)], policy, calendar)
    assert noisy.points == plain.points and noisy.pauses == plain.pauses
