-- Contract tables of DESIGN §8. Times are stored in UTC; BI converts to Asia/Shanghai.
CREATE TABLE IF NOT EXISTS {db}.events
(
    event_id        String,
    case_id         String,
    source          LowCardinality(String),
    system          LowCardinality(String),
    type            LowCardinality(String),
    occurred_at     DateTime64(3, 'UTC'),
    district        LowCardinality(Nullable(String)),
    street          LowCardinality(Nullable(String)),
    community       Nullable(String),
    grid            Nullable(String),
    category        LowCardinality(String),
    urgency         LowCardinality(String),
    unit            LowCardinality(Nullable(String)),
    satisfaction    LowCardinality(Nullable(String)),
    extension_days  Nullable(UInt16),
    caller_hash     Nullable(String),
    schema_version  UInt8,
    ingested_at     DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(occurred_at)
ORDER BY (source, toDate(occurred_at, 'Asia/Shanghai'), case_id, event_id);

CREATE TABLE IF NOT EXISTS {db}.cases
(
    case_id          String,
    source           LowCardinality(String),
    system           LowCardinality(String),
    district         LowCardinality(Nullable(String)),
    street           LowCardinality(Nullable(String)),
    community        Nullable(String),
    grid             Nullable(String),
    category         LowCardinality(String),
    urgency          LowCardinality(String),
    unit             LowCardinality(Nullable(String)),
    status           LowCardinality(String),
    created_at       DateTime64(3, 'UTC'),
    responded_at     Nullable(DateTime64(3, 'UTC')),
    resolved_at      Nullable(DateTime64(3, 'UTC')),
    feedback_at      Nullable(DateTime64(3, 'UTC')),
    closed_at        Nullable(DateTime64(3, 'UTC')),
    respond_due      Nullable(DateTime64(3, 'UTC')),
    resolve_due      Nullable(DateTime64(3, 'UTC')),
    feedback_due     Nullable(DateTime64(3, 'UTC')),
    satisfaction     LowCardinality(Nullable(String)),
    reopen_count     UInt16,
    escalation_level UInt8,
    cycle            UInt16,
    respond_late_seconds  Nullable(Int64),
    resolve_late_seconds  Nullable(Int64),
    feedback_late_seconds Nullable(Int64),
    version          UInt64
)
ENGINE = ReplacingMergeTree(version)
ORDER BY (source, case_id);

CREATE TABLE IF NOT EXISTS {db}.alerts
(
    alert_id    String,
    case_id     String,
    source      LowCardinality(String),
    district    LowCardinality(Nullable(String)),
    street      LowCardinality(Nullable(String)),
    unit        LowCardinality(Nullable(String)),
    category    LowCardinality(String),
    milestone   LowCardinality(String),
    cycle       UInt16,
    level       LowCardinality(String),
    due_at      DateTime64(3, 'UTC'),
    fires_at    DateTime64(3, 'UTC'),
    emitted_at  DateTime64(3, 'UTC'),
    retracted   Bool,
    -- a later emission (a retraction, or a re-fire after one) replaces an earlier one
    version     UInt64 MATERIALIZED toUInt64(toUnixTimestamp64Milli(emitted_at)) * 2 + retracted
)
ENGINE = ReplacingMergeTree(version)
ORDER BY alert_id;

-- dead letters: records that became no event, with the reason a person can act on
CREATE TABLE IF NOT EXISTS {db}.rejects
(
    format      LowCardinality(String),
    source      LowCardinality(String),
    file        String,
    line        UInt64,
    reason      String,
    raw         String,
    received_at DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree
ORDER BY (source, file, line, reason);

-- the event-time clock the worker last reported; rates count a milestone as due against it
CREATE TABLE IF NOT EXISTS {db}.pipeline_clock
(
    name        LowCardinality(String),
    clock       DateTime64(3, 'UTC'),
    version     UInt64
)
ENGINE = ReplacingMergeTree(version)
ORDER BY name;

-- control records that reached the sink: how a replay knows every event has landed
CREATE TABLE IF NOT EXISTS {db}.control_markers
(
    run_id      String,
    topic       LowCardinality(String),
    from_topic  LowCardinality(String),
    partition   UInt16,
    clock       DateTime64(3, 'UTC'),
    landed_at   DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree
ORDER BY (run_id, topic, from_topic, partition);
