"""`make bench`: every benchmark, each figure with its same-run baseline and ratio."""

from __future__ import annotations

import sys

from bench import bench_ingest, bench_replay


def main() -> int:
    names = sys.argv[1:] or ["ingest", "replay"]
    modules = {"ingest": bench_ingest, "replay": bench_replay}
    for name in names:
        print(f"== {name}", flush=True)
        for result in modules[name].run():
            print(result.line(), flush=True)
    return 0


raise SystemExit(main())
