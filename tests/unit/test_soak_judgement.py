"""`make soak` judges a worker's RSS once its decoded cases stopped rising (after a restart it
decodes its cases again as they come back, up to its bound): what follows must stay flat."""

from __future__ import annotations

from bench.soak import Sample, judged_rss


def minute(t: int, rss: float, cached: float | None, pid: int = 7) -> Sample:
    return Sample(t * 60.0, "flat", 0, 0, 0, 100, 0, 0, {"worker0": rss}, {"worker0": pid},
                  {"worker0": cached})


def test_a_worker_is_judged_from_the_minute_its_decoded_cases_stopped_rising():
    samples = [minute(0, 240, 8_000), minute(1, 300, 13_000), minute(2, 370, 19_500),
               minute(3, 380, 20_000), minute(4, 381, 20_000), minute(5, 520, 20_000)]
    # warm-up to the bound at minute 3 (+0.6 % then: not rising); judged 380 -> 520: it grew
    assert judged_rss(samples, "worker0") == (380, 520)


def test_only_the_last_process_counts_and_too_short_a_window_is_not_judged():
    samples = [minute(0, 500, 20_000, pid=1), minute(1, 90, 1_000, pid=2),
               minute(2, 200, 9_000, pid=2), minute(3, 260, 15_000, pid=2)]
    assert judged_rss(samples, "worker0") is None  # still rising at the last minute
    samples.append(minute(4, 262, 15_100, pid=2))
    assert judged_rss(samples, "worker0") == (260, 262)
    # without the gauge (None) the whole window of the last process is judged
    unknown = [minute(0, 100, None), minute(1, 150, None)]
    assert judged_rss(unknown, "worker0") == (100, 150)
