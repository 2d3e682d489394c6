"""Merging what the sink wrote: `civicflow db optimize`, for a nightly job.

ReplacingMergeTree keeps every version of a row until a merge; reads take `FINAL`, which
merges the versions at query time. A partition merged down to one part costs `FINAL` nothing,
so merging the partitions that have more than one part keeps the BI views fast (measured in
bench/bench_sink.py). Merges also write the MATERIALIZED columns of parts older than their
migration."""

from __future__ import annotations

from collections.abc import Callable

from clickhouse_connect.driver.client import Client

# the tables the views read with FINAL
MERGED_TABLES = ("cases", "alerts", "events")


def partitions_to_merge(client: Client, database: str, table: str) -> list[tuple[str, int, int]]:
    """(partition id, active parts, rows) of each partition with more than one active part."""
    rows = client.query(
        "SELECT partition_id, count() AS parts, sum(rows) FROM system.parts "
        "WHERE database = {db:String} AND table = {table:String} AND active "
        "GROUP BY partition_id HAVING parts > 1 ORDER BY partition_id",
        parameters={"db": database, "table": table}).result_rows
    return [(str(pid), int(parts), int(count)) for pid, parts, count in rows]


def optimize(client: Client, database: str, on_progress: Callable[[str], None],
             cluster: str | None = None, tables: tuple[str, ...] = MERGED_TABLES) -> int:
    """Merge every partition that has more than one part; returns how many were merged."""
    if cluster:  # system.parts is per node: merge the local tables everywhere
        for table in tables:
            on_progress(f"merging {database}.{table}_local on cluster {cluster}")
            client.command(f"OPTIMIZE TABLE {database}.{table}_local ON CLUSTER '{cluster}' FINAL")
        return len(tables)
    merged = 0
    for table in tables:
        todo = partitions_to_merge(client, database, table)
        if not todo:
            on_progress(f"{database}.{table}: already merged")
        for index, (partition, parts, rows) in enumerate(todo, 1):
            on_progress(f"{database}.{table}: merging partition {partition} "
                        f"({parts} parts, {rows:,} rows) [{index}/{len(todo)}]")
            client.command(f"OPTIMIZE TABLE {database}.{table} PARTITION ID '{partition}' FINAL")
            merged += 1
    return merged
