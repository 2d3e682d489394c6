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


def migrate(client: Client, database: str, upto: int | None = None) -> list[str]:
    """Apply the migrations not yet recorded; returns the names applied now."""
    client.command(f"CREATE DATABASE IF NOT EXISTS {database}")
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
            client.command(statement)
        client.insert(f"{database}.schema_migrations", [[version, name]],
                      column_names=["version", "name"])
        applied.append(name)
    return applied
