"""Numbered .sql migrations, recorded in `schema_migrations`, safe to re-run."""

from __future__ import annotations

import re
from importlib import resources

from clickhouse_connect.driver.client import Client

_NAME_RE = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")


def migration_files() -> list[tuple[int, str, str]]:
    folder = resources.files("sinks").joinpath("migrations")
    found = []
    for entry in folder.iterdir():
        match = _NAME_RE.match(entry.name)
        if match:
            found.append((int(match.group(1)), entry.name, entry.read_text("utf-8")))
    return sorted(found)


def split_statements(sql: str) -> list[str]:
    lines = [line for line in sql.splitlines() if not line.strip().startswith("--")]
    return [stmt.strip() for stmt in "\n".join(lines).split(";") if stmt.strip()]


_CREATE_TABLE = re.compile(r"^CREATE TABLE IF NOT EXISTS (\S+)\.(\w+)\s*\(", re.S)
_ENGINE = re.compile(r"ENGINE = (ReplacingMergeTree)(?:\((\w*)\))?")
_SHARD_KEY = {"events": "cityHash64(case_id)", "cases": "cityHash64(case_id)",
              "alerts": "cityHash64(case_id)", "alert_ends": "cityHash64(case_id)"}


def cluster_statements(statement: str, cluster: str) -> list[str]:
    """One single-node migration statement as it runs on a cluster: tables become
    Replicated*MergeTree `<name>_local` on every shard plus a Distributed `<name>` over them
    (sharded by case id, so FINAL sees every version of a key on one shard); views and
    ALTERs run ON CLUSTER."""
    on = f"ON CLUSTER '{cluster}'"
    match = _CREATE_TABLE.match(statement)
    if match:
        db, table = match.groups()
        local = statement.replace(f"{db}.{table}", f"{db}.{table}_local {on}", 1)

        def replicated(engine: re.Match[str]) -> str:
            version = f", {engine.group(2)}" if engine.group(2) else ""
            return (f"ENGINE = ReplicatedReplacingMergeTree("
                    f"'/clickhouse/tables/{{shard}}/{db}/{table}', '{{replica}}'{version})")

        local = _ENGINE.sub(replicated, local, count=1)
        shard_key = _SHARD_KEY.get(table, "rand()")
        distributed = (f"CREATE TABLE IF NOT EXISTS {db}.{table} {on} AS {db}.{table}_local "
                       f"ENGINE = Distributed('{cluster}', '{db}', '{table}_local', {shard_key})")
        return [local, distributed]
    if "non_replicated_deduplication_window" in statement:
        return []  # Replicated tables de-duplicate tokened inserts by default
    if statement.startswith("ALTER TABLE "):
        head, rest = statement[len("ALTER TABLE "):].split(" ", 1)
        return [f"ALTER TABLE {head}_local {on} {rest}", f"ALTER TABLE {head} {on} {rest}"]
    if statement.startswith("CREATE OR REPLACE VIEW "):
        head, rest = statement[len("CREATE OR REPLACE VIEW "):].split(" ", 1)
        return [f"CREATE OR REPLACE VIEW {head} {on} {rest}"]
    return [statement]


def migrate(client: Client, database: str, upto: int | None = None,
            cluster: str | None = None) -> list[str]:
    """Apply the migrations not yet recorded; returns the names applied now."""
    on = f" ON CLUSTER '{cluster}'" if cluster else ""
    client.command(f"CREATE DATABASE IF NOT EXISTS {database}{on}")
    client.command(
        f"CREATE TABLE IF NOT EXISTS {database}.schema_migrations "
        "(version UInt32, name String, applied_at DateTime64(3, 'UTC') DEFAULT now64(3)) "
        "ENGINE = ReplacingMergeTree ORDER BY version"
    )
    done = {row[0] for row in client.query(
        f"SELECT version FROM {database}.schema_migrations FINAL").result_rows}
    applied = []
    for version, name, sql in migration_files():
        if version in done or (upto is not None and version > upto):
            continue
        for statement in split_statements(sql.replace("{db}", database)):
            for command in cluster_statements(statement, cluster) if cluster else [statement]:
                client.command(command)
        client.insert(f"{database}.schema_migrations", [[version, name]],
                      column_names=["version", "name"])
        applied.append(name)
    return applied
