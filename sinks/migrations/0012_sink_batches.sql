-- Exactly one copy of each row the sink writes, even across a crash (DESIGN §8: insert dedup tokens).
-- Before it writes a batch, the sink records here which offsets the batch spans and the batch's id;
-- every insert of the batch carries a token made of that id. A sink that died before committing its
-- offsets finds the batch here on restart, reads exactly those offsets again and writes them with
-- the same tokens: ClickHouse skips what it already has. Non-replicated tables keep the tokens of
-- their last 1,000 inserts (Replicated ones de-duplicate by default, so a cluster skips the ALTERs).
ALTER TABLE {db}.events MODIFY SETTING non_replicated_deduplication_window = 1000;
ALTER TABLE {db}.cases MODIFY SETTING non_replicated_deduplication_window = 1000;
ALTER TABLE {db}.alerts MODIFY SETTING non_replicated_deduplication_window = 1000;
ALTER TABLE {db}.alert_ends MODIFY SETTING non_replicated_deduplication_window = 1000;
ALTER TABLE {db}.rejects MODIFY SETTING non_replicated_deduplication_window = 1000;
ALTER TABLE {db}.control_markers MODIFY SETTING non_replicated_deduplication_window = 1000;
ALTER TABLE {db}.pipeline_clock MODIFY SETTING non_replicated_deduplication_window = 1000;

CREATE TABLE IF NOT EXISTS {db}.sink_batches
(
    group_id    LowCardinality(String),
    batch_id    String,
    ranges      String,
    digest      String,
    version     UInt64,
    written_at  DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree(version)
ORDER BY group_id;
