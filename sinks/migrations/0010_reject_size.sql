-- A dead letter of an oversized record keeps only its first 4 KiB: `truncated` says so and
-- `size` is the record's size in the file (bytes); older rows read false and 0.
ALTER TABLE {db}.rejects ADD COLUMN IF NOT EXISTS truncated Bool DEFAULT false AFTER raw;
ALTER TABLE {db}.rejects ADD COLUMN IF NOT EXISTS size UInt64 DEFAULT 0 AFTER truncated;
