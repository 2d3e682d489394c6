-- When each alert row landed in ClickHouse: live latency is measured where users see it
-- (landing time minus the alert's instant), not from the worker's own send time.
ALTER TABLE {db}.alerts ADD COLUMN IF NOT EXISTS landed_at DateTime64(3, 'UTC') DEFAULT now64(3);
