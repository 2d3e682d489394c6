"""`make bench`: every benchmark, each figure with its same-run baseline and ratio."""

from __future__ import annotations

import sys

from bench import bench_ingest, bench_replay, bench_sink


def main() -> int:
    names = sys.argv[1:] or ["ingest", "replay", "sink"]
    modules = {"ingest": bench_ingest, "replay": bench_replay, "sink": bench_sink}
    for name in names:
        print(f"== {name}", flush=True)
        for result in modules[name].run():
            print(result.line(), flush=True)
    return 0


raise SystemExit(main())
