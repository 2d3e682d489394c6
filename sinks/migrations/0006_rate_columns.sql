-- The 三率 read from small per-case columns computed once at insert (MATERIALIZED), not from
-- the Nullable times on every query: over 10 M cases the rates read 1-byte flags and one
-- time per milestone instead of six Nullable DateTime64 columns (3x less time here).
-- Parts written before this migration compute the columns on read until they are merged
-- (`civicflow db optimize` merges them), so the answers are the same from the first query.
--
-- <milestone>_met:      the milestone has a due time and was met (late or not)
-- <milestone>_on_time:  ... and was met by its due time
-- <milestone>_open_due: the due time of a milestone still unmet, else 2299-12-31; it is
--                       overdue, and counts as due, once this is before the pipeline clock
ALTER TABLE {db}.cases ADD COLUMN IF NOT EXISTS day Date
    MATERIALIZED toDate(created_at, 'Asia/Shanghai');
ALTER TABLE {db}.cases ADD COLUMN IF NOT EXISTS respond_met UInt8
    MATERIALIZED respond_due IS NOT NULL AND responded_at IS NOT NULL;
ALTER TABLE {db}.cases ADD COLUMN IF NOT EXISTS respond_on_time UInt8
    MATERIALIZED ifNull(responded_at <= respond_due, 0);
ALTER TABLE {db}.cases ADD COLUMN IF NOT EXISTS respond_open_due DateTime64(3, 'UTC')
    MATERIALIZED if(respond_due IS NOT NULL AND responded_at IS NULL, assumeNotNull(respond_due),
                    toDateTime64('2299-12-31 00:00:00', 3, 'UTC'));
ALTER TABLE {db}.cases ADD COLUMN IF NOT EXISTS resolve_met UInt8
    MATERIALIZED resolve_due IS NOT NULL AND resolved_at IS NOT NULL;
ALTER TABLE {db}.cases ADD COLUMN IF NOT EXISTS resolve_on_time UInt8
    MATERIALIZED ifNull(resolved_at <= resolve_due, 0);
ALTER TABLE {db}.cases ADD COLUMN IF NOT EXISTS resolve_open_due DateTime64(3, 'UTC')
    MATERIALIZED if(resolve_due IS NOT NULL AND resolved_at IS NULL, assumeNotNull(resolve_due),
                    toDateTime64('2299-12-31 00:00:00', 3, 'UTC'));
ALTER TABLE {db}.cases ADD COLUMN IF NOT EXISTS is_resolved UInt8
    MATERIALIZED resolved_at IS NOT NULL;
ALTER TABLE {db}.cases ADD COLUMN IF NOT EXISTS is_surveyed UInt8
    MATERIALIZED satisfaction IS NOT NULL;
ALTER TABLE {db}.cases ADD COLUMN IF NOT EXISTS is_satisfied UInt8
    MATERIALIZED ifNull(satisfaction IN ('satisfied', 'basically_satisfied'), 0);

-- per case (not cancelled): what it adds to each 三率 sum as of the pipeline clock; the two
-- views below only sum it, so what counts is written once
CREATE OR REPLACE VIEW {db}.case_rate_inputs AS
WITH (SELECT clock FROM {db}.current_clock) AS pipeline_clock
SELECT
    day, source, district, street, unit, category,
    respond_met OR respond_open_due < pipeline_clock AS respond_counted,
    respond_on_time,
    resolve_met OR resolve_open_due < pipeline_clock AS resolve_counted,
    resolve_on_time, is_resolved, is_surveyed, is_satisfied,
    status != 'closed' AND (respond_open_due < pipeline_clock OR resolve_open_due < pipeline_clock)
        AS is_overdue_open
FROM {db}.cases FINAL
WHERE status != 'cancelled';

-- same columns and meaning as in 0002
CREATE OR REPLACE VIEW {db}.unit_rates_daily AS
SELECT
    day, source, district, street, unit, category,
    count() AS created,
    sum(respond_counted) AS respond_due_count, sum(respond_on_time) AS responded_on_time,
    sum(resolve_counted) AS resolve_due_count, sum(resolve_on_time) AS resolved_on_time,
    sum(is_resolved) AS resolved, sum(is_surveyed) AS surveyed, sum(is_satisfied) AS satisfied,
    sum(is_overdue_open) AS overdue_open
FROM {db}.case_rate_inputs
GROUP BY day, source, district, street, unit, category;

-- the leaders' 三率 per district and day: unit_rates_daily without the street / unit /
-- category split (half its cost over a year of cases)
CREATE OR REPLACE VIEW {db}.district_rates_daily AS
SELECT
    day, source, district,
    count() AS created,
    sum(respond_counted) AS respond_due_count, sum(respond_on_time) AS responded_on_time,
    sum(resolve_counted) AS resolve_due_count, sum(resolve_on_time) AS resolved_on_time,
    sum(is_resolved) AS resolved, sum(is_surveyed) AS surveyed, sum(is_satisfied) AS satisfied,
    sum(is_overdue_open) AS overdue_open
FROM {db}.case_rate_inputs
GROUP BY day, source, district;
