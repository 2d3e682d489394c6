"""ClickHouse sink: batched JSONEachRow inserts, one per table per batch; idempotent by design:
ReplacingMergeTree keys leave one row per key in what users read (FINAL), and an insert made with
a de-duplication token ClickHouse has seen before is not written again (raw rows stay single)."""

from __future__ import annotations

import re
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


# ClickHouse error codes that are about the rows sent (a value that does not parse or fit its
# column): the rows go to dead letter. Every other server error (a missing or detached table,
# read-only, too many parts, memory, timeouts) is about ClickHouse, not the rows: retried.
DATA_ERROR_CODES = frozenset({
    6,    # CANNOT_PARSE_TEXT
    25,   # CANNOT_PARSE_ESCAPE_SEQUENCE
    26,   # CANNOT_PARSE_QUOTED_STRING
    27,   # CANNOT_PARSE_INPUT_ASSERTION_FAILED
    32,   # ATTEMPT_TO_READ_AFTER_EOF
    33,   # CANNOT_READ_ALL_DATA
    38,   # CANNOT_PARSE_DATE
    41,   # CANNOT_PARSE_DATETIME
    53,   # TYPE_MISMATCH
    69,   # ARGUMENT_OUT_OF_BOUND
    70,   # CANNOT_CONVERT_TYPE
    72,   # CANNOT_PARSE_NUMBER
    117,  # INCORRECT_DATA
    131,  # TOO_LARGE_STRING_SIZE
    321,  # VALUE_IS_OUT_OF_RANGE_OF_DATA_TYPE
    349,  # CANNOT_INSERT_NULL_IN_ORDINARY_COLUMN
    376,  # CANNOT_PARSE_UUID
    467,  # CANNOT_PARSE_BOOL
})
_ERROR_CODE = re.compile(r"Code: (\d+)\.")


def is_data_error(exc: Exception) -> bool:
    """Whether ClickHouse refused the rows themselves (by the first error code it names)."""
    match = _ERROR_CODE.search(str(exc))
    return match is not None and int(match.group(1)) in DATA_ERROR_CODES


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
    """The sink contract: `add` rows (raw JSON lines) per table and source partition,
    `take_pending` them as one batch (per table, partition by partition: the same records make
    the same bytes however they were fetched), `write` a batch (the runner writes on its own
    thread and commits after)."""

    def __init__(self, client: Client, database: str) -> None:
        self.client = client
        self.database = database
        self._pending: dict[tuple[str, str, int], list[bytes]] = defaultdict(list)
        self._count = 0
        # an insert without a token is a plain insert (ClickHouse 26 renamed the switch)
        known = getattr(client, "server_settings", None) or {}
        self._plain_insert: dict[str, object] = (
            {"deduplicate_insert": "disable"} if "deduplicate_insert" in known
            else {"insert_deduplicate": 0})

    def add(self, table: str, row: bytes, topic: str = "", partition: int = 0) -> None:
        self._pending[(table, topic, partition)].append(row)
        self._count += 1

    def take_pending(self) -> dict[str, list[bytes]]:
        pending: dict[str, list[bytes]] = {}
        for table, topic, partition in sorted(self._pending):
            pending.setdefault(table, []).extend(self._pending[(table, topic, partition)])
        self._pending.clear()
        self._count = 0
        return pending

    @property
    def pending(self) -> int:
        return self._count

    def write(self, blocks: dict[str, tuple[bytes, int]], written: dict[str, int],
              token: str | None = None) -> None:
        """One insert per table not yet in `written` (`blocks`: table -> JSON lines joined, row
        count); records each table once ClickHouse took it, so a retry after a failure writes
        only what is left. With a `token`, each table's insert carries `token:table` for
        ClickHouse's de-duplication."""
        for table, (block, count) in blocks.items():
            if count and table not in written:
                self.insert_block(table, block, None if token is None else f"{token}:{table}")
                written[table] = count

    def insert_json(self, table: str, rows: list[bytes], token: str | None = None) -> None:
        self.insert_block(table, b"\n".join(rows), token)

    def insert_block(self, table: str, block: bytes, token: str | None = None) -> None:
        """Insert JSON lines; with a `token`, ClickHouse skips the insert if it has already
        written one with that token (an insert without one is never de-duplicated)."""
        settings: dict[str, object] = {**INSERT_SETTINGS}
        if token is None:
            settings.update(self._plain_insert)
        else:
            settings["insert_deduplication_token"] = token
        try:
            self.client.raw_insert(f"{self.database}.{table}", insert_block=block,
                                   fmt="JSONEachRow", settings=settings)
        except OperationalError as exc:
            raise SinkUnavailable(f"ClickHouse unavailable while writing {table}: {exc}") from exc
        except DatabaseError as exc:
            if is_data_error(exc):
                raise SinkDataError(f"ClickHouse refused rows for {table}: {exc}") from exc
            raise SinkUnavailable(f"ClickHouse cannot take rows for {table} now: "
                                  f"{first_line(exc)}") from exc


def first_line(exc: Exception) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:300] if text else type(exc).__name__


T = TypeVar("T")


def with_retry(action: Callable[[], T], on_retry: Callable[[Exception, float], None],
               attempts: int | None = 8, first_delay: float = 0.5, max_delay: float = 30.0,
               stopping: Callable[[], bool] = lambda: False) -> T:
    """Run `action`, retrying with exponential backoff while ClickHouse is unavailable: up to
    `attempts` times (None: until it succeeds or `stopping()` says to give up)."""
    delay = first_delay
    attempt = 0
    while True:
        try:
            return action()
        except SinkUnavailable as exc:
            attempt += 1
            if (attempts is not None and attempt >= attempts) or stopping():
                raise
            on_retry(exc, delay)
            waited = 0.0
            while waited < delay and not stopping():
                time.sleep(min(0.1, delay - waited))
                waited += 0.1
            delay = min(delay * 2, max_delay)
