"""The one settings class: env prefix CIVICFLOW_, command-line flags override."""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CIVICFLOW_", extra="ignore")

    # Kafka bootstrap servers; empty means start the embedded Tansu broker.
    bootstrap: str | None = None
    # ClickHouse DSN: http://user:pass@host:8123 or chdb:///abs/path; empty means ./var/clickhouse.
    clickhouse: str | None = None
    database: str = "civicflow"
    var_dir: Path = Path("var")
    partitions: int = Field(default=4, ge=1, le=256)
    policy: Path | None = None
    holiday_file: Path | None = None
    allowed_lateness_seconds: int = Field(default=600, ge=0)
    # keyed HMAC for caller phone numbers; set a real secret in production
    caller_hash_key: SecretStr = SecretStr("civicflow-dev-key-change-me")
    # property firms' webhook secrets: {"company_code": "secret"} (JSON in the env variable)
    property_secrets: dict[str, SecretStr] = Field(default_factory=dict)
    webhook_host: str = "127.0.0.1"
    webhook_port: int = Field(default=8088, ge=1, le=65535)
    # records per worker batch and how long a batch waits to fill: state is written once per case
    # per batch, so a replay takes big batches; live mode keeps them short for latency.
    # Unset: 10,000 / 0.2 s live, 50,000 / 2 s replay
    worker_batch: int | None = Field(default=None, ge=1)
    worker_batch_seconds: float | None = Field(default=None, gt=0)
    worker_rebalance_timeout: float = Field(default=3.0, gt=0)
    worker_session_timeout: float = Field(default=10.0, gt=0)
    # Faust standby replicas of the case table: a second worker keeps a warm copy, so failover
    # does not wait for the changelog to be read again
    worker_standby_replicas: int = Field(default=0, ge=0, le=3)
    # cases the worker keeps decoded with their fold (~5-12 KB each), most recently used first;
    # a case not among them is decoded and folded again from the store when its next event or
    # timer comes. Replay is bound by that work (a 160-day replay took 1.5x as long with 20,000
    # as with 100,000), live mode by memory. Unset: 20,000 live, 100,000 replay
    worker_cached_cases: int | None = Field(default=None, ge=100)
    clock_report_seconds: float = Field(default=5.0, gt=0)
    # a settled case (closed or cancelled, nothing left to fire) keeps its whole state in the
    # worker this many days after its last event, then only marks of its events (~40 bytes):
    # the worker's memory grows with the cases of this period, not with every case of a year.
    # An event for it arriving later is a dead letter; 0 keeps every case whole
    case_archive_days: int = Field(default=30, ge=0, le=3650)
    # how often the live worker moves its clock to the wall clock and fires what is due (an
    # alert waits up to this long after its instant); unset: 0.1 s live, 0.5 s replay (where the
    # tick only reports lag)
    worker_tick_seconds: float | None = Field(default=None, gt=0)
    # the sink writes a batch once it holds sink_batch_rows (behind), or once caught up: a replay
    # after sink_batch_seconds (big inserts, throughput); live as soon as nothing more is queued
    # and the previous batch is in (ops are woken by these alerts: latency)
    sink_batch_rows: int = Field(default=200_000, ge=1)
    sink_batch_seconds: float = Field(default=0.5, gt=0)
    # how long one read of the sink waits for more records before it looks at its batch: live,
    # a caught-up batch is written after at most this (the alerts of one tick go in one insert);
    # unset: 0.02 s live, 0.1 s replay
    sink_linger_seconds: float | None = Field(default=None, gt=0)
    # how long the broker may hold a sink fetch that finds no new record. Tansu (the embedded
    # broker) answers only when that wait ends, even if records arrive meanwhile (Kafka answers
    # as soon as they arrive), so it bounds how late an alert is seen. Each idle fetch costs the
    # broker: on Tansu ~6 % of a core at 50 ms, ~24 % at 10 ms. Unset: 50 ms live, 500 ms replay
    sink_fetch_wait_ms: int | None = Field(default=None, ge=0, le=10_000)
    # longest wait between two attempts while ClickHouse is unavailable (the sink backs off
    # from 0.5 s, doubling); it retries until ClickHouse is back, never dropping a batch
    sink_retry_max_seconds: float = Field(default=30.0, gt=0)
    # Prometheus endpoint of this process; 0 = none (the worker, sink and webhook use it)
    metrics_port: int = Field(default=0, ge=0, le=65535)
    metrics_host: str = "127.0.0.1"
    broker_start_timeout: float = 20.0
    # a replay fails when nothing (produced, processed or landed) moved for this long
    stall_timeout_seconds: float = Field(default=300.0, gt=0)
    # events one sort run holds in memory before it spills to disk (replay and ingest):
    # ~1.2 KB each, so the default is ~120 MB
    sort_run_events: int = Field(default=100_000, ge=1)
    # the embedded broker refuses records on events.* that are not canonical events (Tansu's
    # schema registry, generated from schemas/contracts.py). Off by default: Tansu then produces
    # ~10x slower on every topic, and a large replay's producer queue outlives its delivery timeout
    broker_validate_events: bool = False
    # how long a produced event may wait for the broker before it counts as not delivered
    delivery_timeout_seconds: float = Field(default=30.0, gt=0)

    # Alertmanager for `civicflow notify` (and `replay --notify`), e.g. http://127.0.0.1:9093
    alertmanager_url: str | None = None
    # active alerts are re-sent this often, each valid this long in Alertmanager: the
    # validity bounds how long an alert outlives a notifier that is gone for good
    notify_resend_seconds: float = Field(default=60.0, gt=0)
    notify_alert_ttl_seconds: float = Field(default=900.0, gt=0)

    def as_env(self) -> dict[str, str]:
        """Every setting as the CIVICFLOW_* environment of a child process, so a worker or
        sink started by the CLI gets exactly these settings (not a hand-picked few)."""
        env: dict[str, str] = {}
        for name, value in self.model_dump().items():
            if value is None:
                continue
            if isinstance(value, SecretStr):
                value = value.get_secret_value()
            if isinstance(value, dict):
                text = json.dumps({k: v.get_secret_value() if isinstance(v, SecretStr) else v
                                   for k, v in value.items()})
            elif isinstance(value, Path):
                text = str(value.resolve())
            else:
                text = str(value)
            env[f"CIVICFLOW_{name.upper()}"] = text
        return env

    def clickhouse_dsn(self) -> str:
        if self.clickhouse:
            return self.clickhouse
        return f"chdb://{(self.var_dir / 'clickhouse').resolve()}"
