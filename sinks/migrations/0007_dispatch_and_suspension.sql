-- DESIGN §6a: who holds a case, its returns (退单) and re-dispatches (改派), suspension (挂起).
-- Cases written before this migration read the defaults: the holder is the case's unit (there
-- were no returns or re-dispatches), nothing returned, re-dispatched, suspended or paused.
ALTER TABLE {db}.cases ADD COLUMN IF NOT EXISTS holder_unit LowCardinality(Nullable(String))
    DEFAULT unit AFTER feedback_late_seconds;
ALTER TABLE {db}.cases ADD COLUMN IF NOT EXISTS returned_count UInt16 DEFAULT 0 AFTER holder_unit;
ALTER TABLE {db}.cases ADD COLUMN IF NOT EXISTS reassigned_count UInt16 DEFAULT 0 AFTER returned_count;
ALTER TABLE {db}.cases ADD COLUMN IF NOT EXISTS suspended Bool DEFAULT false AFTER reassigned_count;
ALTER TABLE {db}.cases ADD COLUMN IF NOT EXISTS paused_seconds UInt64 DEFAULT 0 AFTER suspended;
ALTER TABLE {db}.cases ADD COLUMN IF NOT EXISTS provisional Bool DEFAULT false AFTER paused_seconds;
ALTER TABLE {db}.alerts ADD COLUMN IF NOT EXISTS provisional Bool DEFAULT false AFTER retracted;
ALTER TABLE {db}.events ADD COLUMN IF NOT EXISTS reason Nullable(String) AFTER reopen_count;

-- Per case and unit that held it: when it first got the case (dispatched or reassigned to it),
-- whether it was the case's first holder, and whether it returned the case. A return belongs
-- to the holder at its instant (the latest dispatch or re-dispatch at or before it; at the same
-- instant a dispatch comes before a return and a return before a re-dispatch, as in the worker).
-- One row per case and unit, so a step seen through two exports (same case, type and time,
-- another event id) counts once. Cancelled cases are left out, as from every rate.
CREATE OR REPLACE VIEW {db}.case_unit_holdings AS
WITH
    steps AS
    (
        SELECT case_id, type, unit, occurred_at,
               toUnixTimestamp64Milli(occurred_at) * 4
                   + multiIf(type = 'dispatched', 1, type = 'returned', 2, 3) AS step_key
        FROM {db}.events FINAL
        WHERE type IN ('dispatched', 'reassigned', 'returned')
    ),
    assignments AS
    (
        SELECT case_id, assumeNotNull(unit) AS unit, occurred_at, step_key
        FROM steps
        WHERE type != 'returned' AND unit IS NOT NULL
    ),
    returned_by AS
    (
        SELECT DISTINCT r.case_id AS case_id, a.unit AS unit
        FROM (SELECT case_id, step_key FROM steps WHERE type = 'returned') AS r
        ASOF INNER JOIN assignments AS a ON r.case_id = a.case_id AND r.step_key >= a.step_key
    ),
    holdings AS
    (
        SELECT case_id, unit, min(occurred_at) AS first_at, min(step_key) AS first_key
        FROM assignments
        GROUP BY case_id, unit
    )
SELECT
    toDate(h.first_at, 'Asia/Shanghai') AS day,
    c.source AS source, c.district AS district, h.case_id AS case_id, h.unit AS unit,
    h.first_at AS first_held_at,
    toBool(h.first_key = min(h.first_key) OVER (PARTITION BY h.case_id)) AS first_holder,
    toBool((h.case_id, h.unit) IN (SELECT case_id, unit FROM returned_by)) AS returned
FROM holdings AS h
INNER JOIN (SELECT case_id, source, district, status FROM {db}.cases FINAL) AS c
    ON c.case_id = h.case_id
WHERE c.status != 'cancelled';

-- 退单率 per unit and day of the dispatch: cases dispatched or re-dispatched to the unit, and
-- how many of them it returned.
CREATE OR REPLACE VIEW {db}.unit_dispatch_daily AS
SELECT day, source, district, unit,
       count() AS dispatched_to,
       countIf(returned) AS returned_by,
       returned_by / dispatched_to AS return_rate
FROM {db}.case_unit_holdings
GROUP BY day, source, district, unit;

-- 派单准确率 of the dispatch centre per district and day of the first dispatch: cases
-- dispatched, and how many of them their first holder never returned.
CREATE OR REPLACE VIEW {db}.dispatch_accuracy_daily AS
SELECT day, source, district,
       count() AS dispatched,
       countIf(NOT returned) AS first_holder_kept,
       first_holder_kept / dispatched AS accuracy
FROM {db}.case_unit_holdings
WHERE first_holder
GROUP BY day, source, district;

-- What each case adds to each unit's 三率 in the rankings, overdue charged to whoever held the
-- case when the time ran out (DESIGN §6a). A milestone met on time is credited to the case's
-- unit. One that ran out of time is charged to the unit of its red alert (the holder at the red
-- instant; nobody when the case sat with the dispatch centre then): the current resolve cycle,
-- as in the 三率, and every respond cycle, since each re-dispatch gives its new holder a respond
-- clock of its own. A late milestone without a red alert stays with the case's unit.
CREATE OR REPLACE VIEW {db}.unit_rate_inputs AS
WITH
    (SELECT clock FROM {db}.current_clock) AS pipeline_clock,
    red AS
    (
        SELECT case_id, milestone, cycle, any(unit) AS unit
        FROM {db}.alerts FINAL
        WHERE level = 'red' AND NOT retracted AND milestone IN ('respond', 'resolve')
        GROUP BY case_id, milestone, cycle
    ),
    counted AS
    (
        SELECT case_id, day, source, district, unit, cycle, reassigned_count,
               respond_on_time, respond_met OR respond_open_due < pipeline_clock AS respond_counted,
               resolve_on_time, resolve_met OR resolve_open_due < pipeline_clock AS resolve_counted,
               is_surveyed, is_satisfied
        FROM {db}.cases FINAL
        WHERE status != 'cancelled'
    )
SELECT * FROM
(
    SELECT day, source, district, unit, 1 AS cases,
           respond_on_time + (respond_counted AND NOT respond_on_time
               AND (case_id, reassigned_count) NOT IN (SELECT case_id, cycle FROM red
                                                       WHERE milestone = 'respond')) AS respond_due,
           respond_on_time,
           resolve_on_time + (resolve_counted AND NOT resolve_on_time
               AND (case_id, cycle) NOT IN (SELECT case_id, cycle FROM red
                                            WHERE milestone = 'resolve')) AS resolve_due,
           resolve_on_time, is_surveyed AS surveyed, is_satisfied AS satisfied
    FROM counted
    UNION ALL
    SELECT c.day, c.source, c.district, r.unit, 0, r.milestone = 'respond', 0,
           r.milestone = 'resolve', 0, 0, 0
    FROM red AS r
    INNER JOIN counted AS c ON c.case_id = r.case_id
    WHERE r.milestone = 'respond' OR r.cycle = c.cycle
);

-- Monthly unit rankings as in 0004, from unit_rate_inputs; `overdue` = the late milestones
-- charged to the unit.
CREATE OR REPLACE VIEW {db}.unit_rankings_monthly AS
WITH monthly AS
(
    SELECT
        toStartOfMonth(day) AS month, source, assumeNotNull(unit) AS unit,
        sum(cases) AS cases,
        sum(respond_on_time) / nullIf(sum(respond_due), 0) AS response_rate,
        sum(resolve_on_time) / nullIf(sum(resolve_due), 0) AS on_time_rate,
        sum(satisfied) / nullIf(sum(surveyed), 0) AS satisfaction_rate,
        (ifNull(response_rate, 0) + ifNull(on_time_rate, 0) + ifNull(satisfaction_rate, 0))
            / nullIf(isNotNull(response_rate) + isNotNull(on_time_rate) + isNotNull(satisfaction_rate), 0)
            AS score,
        sum(respond_due) - sum(respond_on_time) + sum(resolve_due) - sum(resolve_on_time) AS overdue
    -- filtered before `unit` is re-aliased (0004's WHERE read the alias and let NULL through as '')
    FROM (SELECT * FROM {db}.unit_rate_inputs WHERE unit IS NOT NULL)
    GROUP BY month, source, unit
),
ranked AS
(
    SELECT *, rank() OVER (PARTITION BY month, source ORDER BY score DESC, unit) AS unit_rank
    FROM monthly
)
SELECT
    cur.month AS month, cur.source AS source, cur.unit AS unit, cur.cases AS cases,
    cur.response_rate AS response_rate, cur.on_time_rate AS on_time_rate,
    cur.satisfaction_rate AS satisfaction_rate, cur.score AS score, cur.unit_rank AS unit_rank,
    if(prev.unit = '', NULL, prev.unit_rank) AS previous_rank,
    if(prev.unit = '', NULL, toInt64(prev.unit_rank) - toInt64(cur.unit_rank)) AS rank_change,
    cur.overdue AS overdue
FROM ranked AS cur
LEFT JOIN ranked AS prev
    ON prev.month = addMonths(cur.month, -1) AND prev.source = cur.source AND prev.unit = cur.unit
SETTINGS join_use_nulls = 0;
