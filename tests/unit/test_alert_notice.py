"""What Alertmanager is told: labels and Chinese annotations of DESIGN §9a, and that the
postings keep its view equal to civicflow's through duplicates, batches and restarts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from sinks.alert_notice import ActiveAlerts, api_alert, coalesce, duration_zh, labels_for
from tests.alert_records import end, fire, later, retract

T0 = datetime(2026, 10, 3, 16, 0, tzinfo=UTC)  # 2026-10-04 00:00 in Beijing
CASE = "grid:jn-grid:C1"


def test_labels_are_those_of_design_9a():
    red = fire(CASE, "red", T0, milestone="resolve", cycle=1)
    assert labels_for(red) == {
        "alertname": "CaseOverdue", "level": "red", "milestone": "resolve", "cycle": "1",
        "case_id": CASE, "source": "grid", "district": "370102", "street": "370102001",
        "unit": "370102001-wg", "category": "G03.01"}
    assert labels_for(fire(CASE, "yellow", T0))["alertname"] == "CaseDueSoon"
    assert labels_for(fire(CASE, "escalation3", T0))["alertname"] == "CaseOverdue"
    # a case still with the dispatch centre has no unit: the label is absent, never "None"
    assert "unit" not in labels_for(fire(CASE, "red", T0, unit=None))


def test_chinese_annotations_say_due_time_how_overdue_unit_and_explain():
    red = fire(CASE, "red", T0, milestone="resolve", due_at=T0)
    notes = api_alert(ActiveAlerts().apply(red, T0)[0], T0, timedelta(minutes=15))["annotations"]
    assert notes["summary"] == (
        "红牌（超期）：网格事件 grid:jn-grid:C1（矛盾纠纷/邻里纠纷，370102 370102001）「办结」"
        "已到截止时间，截止 2026-10-04 00:00（北京时间），责任单位 370102001-wg。"
        "详情：civicflow explain grid:jn-grid:C1")
    assert notes["explain"] == "civicflow explain grid:jn-grid:C1"
    assert notes["due_at"] == "2026-10-04 00:00（北京时间）"
    # 0.8 of 2 working days = 38.4 h of a 48 h limit: 9 h 36 min before the due time
    yellow = fire(CASE, "yellow", T0 - timedelta(hours=9, minutes=36), due_at=T0)
    assert api_alert(ActiveAlerts().apply(yellow, T0)[0], T0, timedelta(1))["annotations"][
        "overdue"] == "距截止还有9小时36分"
    escalation = fire(CASE, "escalation1", T0 + timedelta(hours=36), due_at=T0)
    summary = api_alert(ActiveAlerts().apply(escalation, T0)[0], T0, timedelta(1))["annotations"]["summary"]
    assert summary.startswith("一级督办（超期升级）：") and "已超期1天12小时" in summary
    assert duration_zh(timedelta(seconds=48)) == "48秒"
    unheld = ActiveAlerts().apply(fire(CASE, "red", T0, unit=None), T0)[0]
    assert "未派单（在调度中心）" in api_alert(unheld, T0, timedelta(1))["annotations"]["summary"]


def test_an_active_alert_is_valid_for_the_ttl_and_an_end_carries_its_time():
    alerts = ActiveAlerts()
    red = fire(CASE, "red", T0)
    now = later(T0, 2)
    posted = api_alert(alerts.apply(red, now)[0], now, timedelta(minutes=15))
    assert posted["startsAt"] == "2026-10-03T16:00:00+00:00"
    assert posted["endsAt"] == "2026-10-03T16:15:02+00:00"
    met_at = later(T0, 600)
    (ended,) = alerts.apply(end(red, met_at), later(T0, 601))
    assert api_alert(ended, later(T0, 601), timedelta(minutes=15))["endsAt"] == "2026-10-03T16:10:00+00:00"
    assert ended.reason == "met" and len(alerts) == 0


def test_an_end_resolves_what_was_posted_even_if_its_labels_differ():
    alerts = ActiveAlerts()
    yellow = fire(CASE, "yellow", T0)
    alerts.apply(yellow, T0)
    # the end record names another unit (the case moved on): Alertmanager's alert is the fired one
    (ended,) = alerts.apply(end(yellow.model_copy(update={"unit": "370102002-wg"}), later(T0, 5)),
                            later(T0, 6))
    assert labels_for(ended.alert) == labels_for(yellow)


def test_retraction_ends_now_and_duplicates_change_nothing():
    alerts = ActiveAlerts()
    red = fire(CASE, "red", T0)
    assert [p.new for p in alerts.apply(red, T0)] == [True]
    assert alerts.apply(red, later(T0, 1)) == []  # delivered twice
    now = later(T0, 30)
    (retraction,) = alerts.apply(retract(red, now), now)
    assert (retraction.reason, retraction.ends_at) == ("retracted", now)
    # a re-fire after a retraction is active again
    assert [p.new for p in alerts.apply(red, later(T0, 40))] == [True]


def test_end_times_are_never_in_the_future_nor_before_the_start():
    alerts = ActiveAlerts()
    red = fire(CASE, "red", T0)
    alerts.apply(red, T0)
    (future,) = alerts.apply(end(red, later(T0, 3600)), later(T0, 10))
    assert future.ends_at == later(T0, 10)
    alerts.apply(red, T0)
    (early,) = alerts.apply(end(red, later(T0, -60)), later(T0, 10))
    assert early.ends_at == T0


def test_a_fire_with_new_labels_ends_the_old_one():
    alerts = ActiveAlerts()
    red = fire(CASE, "red", T0)
    alerts.apply(red, T0)
    moved = red.model_copy(update={"unit": "370102002-wg"})
    old, new = alerts.apply(moved, later(T0, 1))
    assert (labels_for(old.alert)["unit"], old.ends_at is not None) == ("370102001-wg", True)
    assert (labels_for(new.alert)["unit"], new.ends_at) == ("370102002-wg", None)


def test_coalesce_keeps_the_last_posting_per_alert():
    alerts = ActiveAlerts()
    red = fire(CASE, "red", T0)
    postings = alerts.apply(red, T0) + alerts.apply(end(red, later(T0, 1)), later(T0, 1))
    (only,) = coalesce(postings)
    assert only.ends_at == later(T0, 1)


# --- property: Alertmanager's view equals civicflow's, whatever the batching and restarts ---

ALERTS = [fire(f"grid:jn-grid:C{case}", level, later(T0, 10 * i), unit=f"U{case}")
          for i, (case, level) in enumerate((c, lv) for c in range(3) for lv in ("yellow", "red"))]
RECORD = st.tuples(st.integers(0, len(ALERTS) - 1), st.sampled_from(["fire", "end", "retract"]))


def record_for(index: int, kind: str, step: int):
    alert, at = ALERTS[index], later(T0, 100 + step)
    return {"fire": alert, "end": end(alert, at), "retract": retract(alert, at)}[kind]


@settings(max_examples=300, deadline=None)
@given(st.lists(RECORD, max_size=40), st.lists(st.integers(1, 6), min_size=1, max_size=40),
       st.integers(0, 40), st.sets(st.integers(0, 40)))
def test_alertmanager_ends_with_exactly_the_active_alerts(records, batch_sizes, crash_at, doubled):
    """Records (some delivered twice) go through in batches; each batch is posted, then its
    active set saved, then committed. At `crash_at` the notifier dies after posting a batch
    and before saving it: it restarts from the saved set and the last commit."""
    stream = []
    for step, (index, kind) in enumerate(records):
        stream.append(record_for(index, kind, step))
        if step in doubled:
            stream.append(stream[-1])
    # expected, computed apart: an alert is active iff its last record is a fire
    last: dict[str, object] = {}
    for record in stream:
        last[record.alert_id] = record
    expected = {tuple(sorted(labels_for(r).items())) for r in last.values()
                if r.end_reason is None and not r.retracted}

    alertmanager: dict[tuple, bool] = {}  # labels -> firing
    saved: dict = {}
    committed = 0
    alerts = ActiveAlerts(saved)
    crashed = False
    sizes = iter(batch_sizes * 50)
    now = later(T0, 10_000)
    while committed < len(stream):
        batch = stream[committed:committed + next(sizes)]
        postings = [p for record in batch for p in alerts.apply(record, now)]
        for posting in coalesce(postings):
            alertmanager[tuple(sorted(labels_for(posting.alert).items()))] = posting.ends_at is None
        if not crashed and committed >= crash_at:
            crashed = True
            alerts = ActiveAlerts(saved)  # restart: the set as last saved, from the last commit
            resent = {tuple(sorted(labels_for(p.alert).items())) for p in alerts.postings()}
            # a restart re-sends what it restored; the rest lapses in Alertmanager (its ttl)
            alertmanager = {labels: labels in resent for labels in alertmanager} | dict.fromkeys(resent, True)
            continue
        saved = dict(alerts.active)
        committed += len(batch)
    assert {labels for labels, firing in alertmanager.items() if firing} == expected
    assert {tuple(sorted(labels_for(a).items())) for a in alerts.active.values()} == expected
