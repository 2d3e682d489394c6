-- BI views (DESIGN §8). A milestone counts as due once it was met or its due time is before
-- the pipeline clock; cancelled cases never count.
CREATE OR REPLACE VIEW {db}.current_clock AS
SELECT ifNull((SELECT argMax(clock, version) FROM {db}.pipeline_clock WHERE name = 'main'),
              toDateTime64(0, 3, 'UTC')) AS clock;

CREATE OR REPLACE VIEW {db}.unit_rates_daily AS
WITH (SELECT clock FROM {db}.current_clock) AS pipeline_clock
SELECT
    toDate(created_at, 'Asia/Shanghai') AS day,
    source, district, street, unit, category,
    count() AS created,
    countIf(respond_due IS NOT NULL AND (responded_at IS NOT NULL OR respond_due < pipeline_clock))
        AS respond_due_count,
    countIf(respond_due IS NOT NULL AND responded_at IS NOT NULL AND responded_at <= respond_due)
        AS responded_on_time,
    countIf(resolve_due IS NOT NULL AND (resolved_at IS NOT NULL OR resolve_due < pipeline_clock))
        AS resolve_due_count,
    countIf(resolve_due IS NOT NULL AND resolved_at IS NOT NULL AND resolved_at <= resolve_due)
        AS resolved_on_time,
    countIf(resolved_at IS NOT NULL) AS resolved,
    countIf(satisfaction IS NOT NULL) AS surveyed,
    countIf(satisfaction IN ('satisfied', 'basically_satisfied')) AS satisfied,
    countIf(status != 'closed' AND (
        (respond_due IS NOT NULL AND responded_at IS NULL AND respond_due < pipeline_clock)
        OR (resolve_due IS NOT NULL AND resolved_at IS NULL AND resolve_due < pipeline_clock)))
        AS overdue_open
FROM {db}.cases FINAL
WHERE status != 'cancelled'
GROUP BY day, source, district, street, unit, category;

-- 督办 list: open cases past a due time, most overdue first
CREATE OR REPLACE VIEW {db}.overdue_open_cases AS
WITH (SELECT clock FROM {db}.current_clock) AS pipeline_clock
SELECT
    case_id, source, district, street, unit, category, urgency, status, created_at,
    multiIf(responded_at IS NULL AND respond_due < pipeline_clock, 'respond',
            resolved_at IS NULL AND resolve_due < pipeline_clock, 'resolve', 'feedback') AS milestone,
    multiIf(responded_at IS NULL AND respond_due < pipeline_clock, respond_due,
            resolved_at IS NULL AND resolve_due < pipeline_clock, resolve_due, feedback_due) AS due_at,
    dateDiff('second', due_at, pipeline_clock) AS overdue_seconds,
    escalation_level
FROM {db}.cases FINAL
WHERE status NOT IN ('closed', 'cancelled')
  AND ((responded_at IS NULL AND respond_due < pipeline_clock)
       OR (resolved_at IS NULL AND resolve_due < pipeline_clock)
       OR (feedback_at IS NULL AND feedback_due < pipeline_clock));
