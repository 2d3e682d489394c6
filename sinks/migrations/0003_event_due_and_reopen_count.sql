-- Events carry a source-given resolve due (Open311 Due Date) and a reported reopen count
-- (12345 重办次数) since schema 1 gained them; older rows read NULL.
ALTER TABLE {db}.events ADD COLUMN IF NOT EXISTS due_at Nullable(DateTime64(3, 'UTC')) AFTER caller_hash;
ALTER TABLE {db}.events ADD COLUMN IF NOT EXISTS reopen_count Nullable(UInt16) AFTER due_at;
