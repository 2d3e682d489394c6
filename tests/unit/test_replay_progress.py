"""Replay progress: the ETA from the worker's recent rate, and which stage stalled."""

from __future__ import annotations

from civicflow.progress import Reading, ReplayProgress, duration


def reading(at: float, processed: int, *, produced: int = 10_000, worker_waiting: int = 0,
            sink_waiting: int = 0, landed: int = 0) -> Reading:
    return Reading(at, produced, processed, worker_waiting, sink_waiting, {"events": landed})


def test_eta_from_the_rate_over_the_last_minute():
    progress = ReplayProgress(total=20_000, stall_timeout=300)
    for second in range(0, 61, 10):
        progress.add(reading(second, 50 * second))  # 50/s: 3,000 done at 60 s
    for second in range(70, 131, 10):
        progress.add(reading(second, 3_000 + 100 * (second - 60)))  # then 100/s
    # the window is the last minute, 70..130 s: (10,000 - 4,000) / 60 s = 100/s, and
    # 20,000 - 10,000 left at 100/s is 100 s; the slower first minute no longer counts
    assert progress.rate() == 100
    assert progress.eta_seconds() == 100
    assert "ETA 1m40s" in progress.line() and "worker at 10,000/20,000" in progress.line()
    progress.add(reading(140, 20_000))
    assert progress.eta_seconds() == 0


def test_no_eta_before_the_worker_moves():
    progress = ReplayProgress(total=500, stall_timeout=300)
    assert progress.eta_seconds() is None and progress.line() == "starting"
    progress.add(reading(0, 0))
    progress.add(reading(5, 0))
    assert progress.eta_seconds() is None
    assert "ETA unknown" in progress.line()


def test_a_stall_names_the_worker_while_it_has_records_waiting():
    progress = ReplayProgress(total=1_000, stall_timeout=60)
    progress.add(reading(0, 100, worker_waiting=900, landed=100))
    progress.add(reading(59, 100, worker_waiting=900, landed=100))
    assert progress.stalled_stage() is None and progress.still_for() == 59
    progress.add(reading(60, 100, worker_waiting=900, landed=100))
    assert progress.stalled_stage() == "worker"


def test_a_stall_names_the_sink_when_the_worker_has_caught_up():
    progress = ReplayProgress(total=1_000, stall_timeout=60)
    progress.add(reading(0, 1_000, sink_waiting=400, landed=600))
    progress.add(reading(61, 1_000, sink_waiting=400, landed=600))
    assert progress.stalled_stage() == "sink"


def test_any_movement_restarts_the_stall_clock():
    progress = ReplayProgress(total=1_000, stall_timeout=60)
    progress.add(reading(0, 100, worker_waiting=900))
    progress.add(reading(50, 100, worker_waiting=900, landed=1))  # the sink wrote a row
    progress.add(reading(100, 100, worker_waiting=900, landed=1))
    assert progress.stalled_stage() is None and progress.still_for() == 50
    progress.add(reading(111, 100, produced=10_001, worker_waiting=900, landed=1))
    progress.add(reading(170, 100, produced=10_001, worker_waiting=900, landed=1))
    assert progress.stalled_stage() is None
    progress.add(reading(171, 100, produced=10_001, worker_waiting=900, landed=1))
    assert progress.stalled_stage() == "worker"


def test_durations_read_as_a_person_writes_them():
    assert [duration(s) for s in (0, 59.4, 61, 3600, 3 * 3600 + 25 * 60 + 59)] == [
        "0s", "59s", "1m01s", "1h00m", "3h25m"]


def test_the_worker_group_read_is_the_workers_own():
    from civicflow.pipeline import WORKER_GROUP
    from streams.app import APP_ID

    assert WORKER_GROUP == APP_ID


def test_readings_that_could_not_be_taken_do_not_stop_the_stall_clock():
    progress = ReplayProgress(total=1_000, stall_timeout=60)
    progress.add(reading(0, 100, worker_waiting=900))
    assert progress.stalled_stage(now=59) is None
    assert progress.stalled_stage(now=61) == "worker" and progress.still_for(now=61) == 61
