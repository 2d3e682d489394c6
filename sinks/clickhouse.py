"""ClickHouse sink: batched JSONEachRow inserts, one per table per batch; idempotent by design
(ReplacingMergeTree keys), so a batch delivered twice leaves one row per key."""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import clickhouse_connect
from clickhouse_connect.driver.client import Client
from clickhouse_connect.driver.exceptions import DatabaseError, OperationalError

from schemas.errors import CivicflowError, ConfigError, SinkUnavailable
from schemas.topics import ALERTS_TOPIC, EVENT_TOPICS, INVALID_TOPIC, SNAPSHOTS_TOPIC

TABLE_FOR_TOPIC: dict[str, str] = {
    **{topic: "events" for topic in EVENT_TOPICS.values()},
    SNAPSHOTS_TOPIC: "cases",
    ALERTS_TOPIC: "alerts",
    INVALID_TOPIC: "rejects",
}
_ENDED_ALERT = b'"end_reason":"'


def table_for(topic: str, value: bytes) -> str:
    """The table a record lands in: by topic, except that the end of an alert (alerts.sla
    record with `end_reason` set) goes to `alert_ends` and leaves the alert's own row alone."""
    table = TABLE_FOR_TOPIC[topic]
    if table == "alerts" and _ENDED_ALERT in value:
        return "alert_ends"
    return table


INSERT_SETTINGS = {
    "date_time_input_format": "best_effort",
    "input_format_skip_unknown_fields": 1,
}


class SinkDataError(CivicflowError):
    """ClickHouse refused the rows themselves (not the connection): they go to dead letter."""


def connect(dsn: str) -> Client:
    if dsn.startswith("chdb://"):
        check_chdb_path(Path(dsn.removeprefix("chdb://").split("?", 1)[0]))
    try:
        return clickhouse_connect.get_client(dsn=dsn)
    except OperationalError as exc:
        raise SinkUnavailable(f"ClickHouse at {redact(dsn)} is unreachable: {exc}") from exc
    except Exception as exc:  # noqa: BLE001 - chDB raises plain errors for a bad path
        # chDB puts its C++ stack in the message: the first line says what went wrong
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise SinkUnavailable(f"cannot open ClickHouse {redact(dsn)}: {first}") from exc


def check_chdb_path(path: Path) -> None:
    """chDB needs a directory it can write; it reports anything else with a C++ stack trace."""
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / ".write-test"
        probe.write_bytes(b"ok")
        probe.unlink()
    except OSError as exc:
        raise ConfigError(f"cannot use {path} as the chDB data directory ({exc.strerror}): choose "
                          "a writable one with --clickhouse chdb:///path or CIVICFLOW_CLICKHOUSE, "
                          "or --var-dir") from exc


def redact(dsn: str) -> str:
    if "@" in dsn and "://" in dsn:
        scheme, rest = dsn.split("://", 1)
        return f"{scheme}://***@{rest.split('@', 1)[1]}"
    return dsn


@dataclass
class FlushResult:
    rows: dict[str, int]
    seconds: float


class ClickHouseSink:
    """The sink contract: `add` rows (raw JSON lines) per table, `take_pending` them as one
    batch, `write` a batch (the runner writes on its own thread and commits after)."""

    def __init__(self, client: Client, database: str) -> None:
        self.client = client
        self.database = database
        self._pending: dict[str, list[bytes]] = defaultdict(list)

    def add(self, table: str, row: bytes) -> None:
        self._pending[table].append(row)

    def take_pending(self) -> dict[str, list[bytes]]:
        pending = dict(self._pending)
        self._pending.clear()
        return pending

    @property
    def pending(self) -> int:
        return sum(len(rows) for rows in self._pending.values())

    def write(self, rows_by_table: dict[str, list[bytes]], written: dict[str, int]) -> None:
        """One insert per table not yet in `written`; records each table once ClickHouse took
        it, so a retry after a failure writes only what is left."""
        for table, rows in rows_by_table.items():
            if rows and table not in written:
                self.insert_json(table, rows)
                written[table] = len(rows)

    def insert_json(self, table: str, rows: list[bytes]) -> None:
        try:
            self.client.raw_insert(f"{self.database}.{table}", insert_block=b"\n".join(rows),
                                   fmt="JSONEachRow", settings=INSERT_SETTINGS)
        except OperationalError as exc:
            raise SinkUnavailable(f"ClickHouse unavailable while writing {table}: {exc}") from exc
        except DatabaseError as exc:
            raise SinkDataError(f"ClickHouse refused rows for {table}: {exc}") from exc


T = TypeVar("T")


def with_retry(action: Callable[[], T], on_retry: Callable[[Exception, float], None],
               attempts: int = 8, first_delay: float = 0.5) -> T:
    """Run `action`, retrying with exponential backoff while ClickHouse is unavailable."""
    delay = first_delay
    for attempt in range(attempts):
        try:
            return action()
        except SinkUnavailable as exc:
            if attempt == attempts - 1:
                raise
            on_retry(exc, delay)
            time.sleep(delay)
            delay = min(delay * 2, 30.0)
    raise AssertionError("unreachable")
