"""`make bench`: every benchmark, each figure with its same-run baseline and ratio."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable

from bench import bench_ingest, bench_notify, bench_sink, bench_worker, bench_year
from bench.common import Result


def main() -> int:
    runs: dict[str, Callable[[], Iterable[Result]]] = {"ingest": bench_ingest.run, "worker": bench_worker.run,
            "worker-processor": lambda: bench_worker.processor_figures()[0],
            "worker-e2e": bench_worker.end_to_end, "worker-live": bench_worker.live_latency,
            "worker-failover": bench_worker.failover, "sink": bench_sink.run_sink,
            "rates": bench_sink.run_rates, "notify": bench_notify.run,
            "notify-live": bench_notify.run_live, "year": bench_year.run}
    parts = {"worker-processor", "worker-e2e", "worker-live", "worker-failover"}
    for name in sys.argv[1:] or [name for name in runs if name not in parts]:
        print(f"== {name}", flush=True)
        for result in runs[name]():
            print(result.line(), flush=True)
    return 0


raise SystemExit(main())
