"""`make bench`: every benchmark, each figure with its same-run baseline and ratio."""

from __future__ import annotations

import sys

from bench import bench_ingest, bench_notify, bench_sink, bench_worker, bench_year


def main() -> int:
    runs = {"ingest": bench_ingest.run, "worker": bench_worker.run, "sink": bench_sink.run_sink,
            "rates": bench_sink.run_rates, "notify": bench_notify.run,
            "notify-live": bench_notify.run_live, "year": bench_year.run}
    for name in sys.argv[1:] or list(runs):
        print(f"== {name}", flush=True)
        for result in runs[name]():
            print(result.line(), flush=True)
    return 0


raise SystemExit(main())
