"""The accounting every fault test shares: what went in, what landed, and every copy counted.

- **Records.** `records read = events in ClickHouse (raw rows, no FINAL) + dead letters +
  duplicates the importer skipped` — raw rows count every copy the sink wrote, so an event
  written twice breaks the equation instead of hiding behind FINAL.
- **Raw rows.** ReplacingMergeTree removes copies when it merges parts in the background, which
  would hide a doubled write within seconds: `freeze_merges` stops merges on a test database
  before anything lands, so raw counts are what the sink wrote.
- **Results.** Cases and alerts (FINAL: what users read) equal a clean run of the same input,
  every column compared, not counts. Left out: columns ClickHouse fills on arrival (`LANDING`),
  and, in live mode only, `emitted_at` (alerts and alert ends) and the alert `version` derived
  from it: live alerts are stamped with the wall clock, so two live runs legitimately differ
  there. In replay mode `emitted_at` is event time and is compared like every other column.
- **Alert copies.** `alerts.sla` is read in full from the broker: every record kind (fire, end,
  retraction) of every alert counted, copies reported — what a notifier would send twice.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import orjson
from confluent_kafka import Consumer, KafkaError, TopicPartition

from schemas.topics import ALERTS_TOPIC, is_control

# tables the sink writes and a fault could double
RAW_TABLES = ("events", "cases", "alerts", "alert_ends", "rejects")
# filled by ClickHouse when a row arrives: differs between any two runs
LANDING = {"events": ("ingested_at",), "rejects": ("received_at",), "alerts": ("landed_at",),
           "control_markers": ("landed_at",)}
# stamped with the wall clock in live mode (alerts.version is derived from emitted_at)
LIVE_CLOCK = {"alerts": ("emitted_at", "version"), "alert_ends": ("emitted_at",)}
# what makes one row one record of its table
ROW_KEY = {"events": "event_id", "cases": "case_id, version", "alerts": "alert_id, retracted",
           "alert_ends": "alert_id", "rejects": "file, line, reason"}


def freeze_merges(client: Any, db: str) -> None:
    """Stop background merges on the sink's tables of a test database, so that raw row counts
    show every copy written (a merge of a ReplacingMergeTree keeps one row per key)."""
    for table in RAW_TABLES:
        client.command(f"ALTER TABLE {db}.{table} MODIFY SETTING "
                       "max_bytes_to_merge_at_max_space_in_pool = 1, "
                       "max_bytes_to_merge_at_min_space_in_pool = 1")


def columns_of(client: Any, db: str, table: str, live: bool = False) -> list[str]:
    """Every column (materialized ones too) except those that legitimately differ by run."""
    skip = set(LANDING.get(table, ())) | (set(LIVE_CLOCK.get(table, ())) if live else set())
    return [row[0] for row in client.query(f"DESCRIBE {db}.{table}").result_rows
            if row[0] not in skip]


def final_rows(client: Any, db: str, table: str, live: bool = False) -> tuple[list[str], list[tuple]]:
    """What users read: the FINAL rows of a table, every compared column, in a fixed order."""
    columns = columns_of(client, db, table, live)
    names = ", ".join(f"`{c}`" for c in columns)
    rows = client.query(f"SELECT {names} FROM {db}.{table} FINAL ORDER BY {names}").result_rows
    return columns, [tuple(r) for r in rows]


def differences(expected: tuple[list[str], list[tuple]], got: tuple[list[str], list[tuple]],
                limit: int = 5) -> list[str]:
    """Rows one side has and the other lacks, column by column, for a readable failure."""
    columns, want = expected
    got_columns, have = got
    if columns != got_columns:
        return [f"columns differ: {columns} vs {got_columns}"]
    missing = Counter(want) - Counter(have)
    extra = Counter(have) - Counter(want)
    out = [f"{sum(missing.values())} rows missing, {sum(extra.values())} rows not expected"]
    for row in list(missing)[:limit]:
        twin = next((r for r in extra if r[0] == row[0]), None)
        if twin is None:
            out.append(f"  missing {dict(zip(columns, row, strict=True))}")
        else:
            changed = {c: (a, b) for c, a, b in zip(columns, row, twin, strict=True) if a != b}
            out.append(f"  {columns[0]}={row[0]}: expected vs got {changed}")
    for row in list(extra)[:limit]:
        if not any(r[0] == row[0] for r in missing):
            out.append(f"  not expected {dict(zip(columns, row, strict=True))}")
    return out if missing or extra else []


def assert_same_results(client: Any, clean_db: str, db: str, live: bool = False,
                        tables: tuple[str, ...] = ("cases", "alerts", "alert_ends")) -> dict[str, int]:
    """Cases and alerts of `db` equal the clean run's, every column; returns rows per table."""
    sizes = {}
    for table in tables:
        expected = final_rows(client, clean_db, table, live)
        got = final_rows(client, db, table, live)
        diff = differences(expected, got)
        assert not diff, f"{table} differs from the clean run:\n" + "\n".join(diff)
        sizes[table] = len(got[1])
    return sizes


def raw_copies(client: Any, db: str) -> dict[str, dict[str, int]]:
    """Per table: rows (raw), distinct records, and copies beyond the first."""
    out = {}
    for table in RAW_TABLES:
        raw, distinct = client.query(
            f"SELECT count(), uniqExact({ROW_KEY[table]}) FROM {db}.{table}").result_rows[0]
        out[table] = {"raw": int(raw), "distinct": int(distinct), "copies": int(raw - distinct)}
    return out


@dataclass(frozen=True)
class RecordAccount:
    """`records read = raw events + dead letters + duplicates skipped`, with each figure."""

    read: int
    raw_events: int
    distinct_events: int
    dead_letters: int
    skipped: int

    @property
    def balanced(self) -> bool:
        return self.read == self.raw_events + self.dead_letters + self.skipped

    def line(self) -> str:
        return (f"records read {self.read:,} = events in ClickHouse {self.raw_events:,} (raw; "
                f"{self.distinct_events:,} distinct) + dead letters {self.dead_letters:,} + "
                f"duplicates skipped {self.skipped:,}: "
                + ("balanced" if self.balanced else
                   f"OFF BY {self.raw_events + self.dead_letters + self.skipped - self.read:+,}"))


def account_records(client: Any, db: str, read: int, skipped: int = 0) -> RecordAccount:
    raw, distinct = client.query(f"SELECT count(), uniqExact(event_id) FROM {db}.events").result_rows[0]
    dead = client.query(f"SELECT count() FROM {db}.rejects").result_rows[0][0]
    return RecordAccount(read, int(raw), int(distinct), int(dead), skipped)


def alert_kind(value: dict) -> str:
    """The three record kinds of alerts.sla (schemas/case.py `Alert`)."""
    if value.get("retracted"):
        return "retract"
    return "end" if value.get("ended_at") else "fire"


@dataclass
class AlertLedger:
    """Every record on alerts.sla, counted per (alert_id, kind)."""

    counts: Counter[tuple[str, str]] = field(default_factory=Counter)
    records: int = 0
    # every record of the alerts whose case id starts with `keep` (a failing test shows them)
    keep: str | None = None
    kept: list[dict] = field(default_factory=list)

    def add(self, value: bytes) -> None:
        alert = orjson.loads(value)
        self.counts[(alert["alert_id"], alert_kind(alert))] += 1
        self.records += 1
        if self.keep is not None and alert["case_id"].startswith(self.keep):
            self.kept.append(alert)

    @property
    def distinct(self) -> set[tuple[str, str]]:
        return set(self.counts)

    @property
    def duplicates(self) -> dict[tuple[str, str], int]:
        """(alert_id, kind) -> how many copies beyond the first."""
        return {key: n - 1 for key, n in self.counts.items() if n > 1}

    @property
    def copies(self) -> int:
        return sum(self.duplicates.values())

    def by_kind(self) -> Counter[str]:
        return Counter(kind for _, kind in self.counts)

    def line(self) -> str:
        kinds = ", ".join(f"{k} {n:,}" for k, n in sorted(self.by_kind().items()))
        return (f"alerts.sla: {self.records:,} records, {len(self.counts):,} distinct "
                f"(alert, kind) ({kinds}), {self.copies:,} copies")


def read_topic(bootstrap: str, topic: str, idle: float = 3.0, timeout: float = 120.0
               ) -> list[tuple[int, int, bytes | None, bytes | None, bool]]:
    """Every record of a topic, from the first offset to the end of each partition:
    (partition, offset, key, value, is_control). Reads on until every partition reported its end
    and no data record (control records of a live worker come every few seconds) came for `idle`
    seconds (the end Tansu reports can fall inside a batch)."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"accounting-{time.time_ns()}",
                         "enable.auto.commit": False, "enable.partition.eof": True,
                         "log_level": 3})
    try:
        partitions = sorted(consumer.list_topics(topic, timeout=10).topics[topic].partitions)
        consumer.assign([TopicPartition(topic, p, 0) for p in partitions])
        out = []
        at_end: set[int] = set()
        deadline = time.monotonic() + timeout
        last_record = time.monotonic()
        while time.monotonic() < deadline:
            messages = consumer.consume(10_000, timeout=0.5)
            for message in messages:
                error = message.error()
                if error is not None:
                    if error.code() == KafkaError._PARTITION_EOF:
                        at_end.add(int(message.partition() or 0))
                        continue
                    raise AssertionError(f"reading {topic}: {error}")
                control = is_control(message.key(), message.headers())
                if not control:
                    last_record = time.monotonic()
                out.append((int(message.partition() or 0), int(message.offset() or 0),
                            message.key(), message.value(), control))
            if at_end >= set(partitions) and time.monotonic() - last_record >= idle:
                return out
        raise AssertionError(f"{topic} not read to its end in {timeout:.0f}s")
    finally:
        consumer.close()


def read_alerts(bootstrap: str, keep: str | None = None) -> AlertLedger:
    """alerts.sla read in full (control records left out)."""
    ledger = AlertLedger(keep=keep)
    for _, _, _, value, control in read_topic(bootstrap, ALERTS_TOPIC):
        if not control and value is not None:
            ledger.add(value)
    return ledger


def query_other_process(dsn: str, sql: str, timeout: float = 120.0) -> list[list[Any]]:
    """Rows of a query on a chDB path another process owns (chDB allows one path per process)."""
    code = ("import json, sys, clickhouse_connect\n"
            "c = clickhouse_connect.get_client(dsn=sys.argv[1])\n"
            "print(json.dumps(c.query(sys.argv[2]).result_rows, default=str))\n")
    done = subprocess.run([sys.executable, "-c", code, dsn, sql], capture_output=True, text=True,
                          timeout=timeout)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])
