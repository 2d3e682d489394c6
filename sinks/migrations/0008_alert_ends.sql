-- The end of an active alert (alerts.sla records with end_reason set): when its milestone was met,
-- its case closed or cancelled, or its clock restarted. Kept apart from `alerts`, whose row stays
-- the alert as it fired (or its retraction).
CREATE TABLE IF NOT EXISTS {db}.alert_ends
(
    alert_id    String,
    case_id     String,
    source      LowCardinality(String),
    district    LowCardinality(Nullable(String)),
    unit        LowCardinality(Nullable(String)),
    milestone   LowCardinality(String),
    cycle       UInt16,
    level       LowCardinality(String),
    fires_at    DateTime64(3, 'UTC'),
    ended_at    DateTime64(3, 'UTC'),
    end_reason  LowCardinality(String),
    emitted_at  DateTime64(3, 'UTC')
)
ENGINE = ReplacingMergeTree(emitted_at)
ORDER BY alert_id;
