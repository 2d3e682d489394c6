-- Monthly unit rankings by the 三率 (for 通报), with the rank change against last month.
-- score = mean of the three rates that exist for the unit that month.
CREATE OR REPLACE VIEW {db}.unit_rankings_monthly AS
WITH monthly AS
(
    SELECT
        toStartOfMonth(day) AS month, source, assumeNotNull(unit) AS unit,
        sum(created) AS cases,
        sum(responded_on_time) / nullIf(sum(respond_due_count), 0) AS response_rate,
        sum(resolved_on_time) / nullIf(sum(resolve_due_count), 0) AS on_time_rate,
        sum(satisfied) / nullIf(sum(surveyed), 0) AS satisfaction_rate,
        (ifNull(response_rate, 0) + ifNull(on_time_rate, 0) + ifNull(satisfaction_rate, 0))
            / nullIf(isNotNull(response_rate) + isNotNull(on_time_rate) + isNotNull(satisfaction_rate), 0)
            AS score
    FROM {db}.unit_rates_daily
    WHERE unit IS NOT NULL
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
    if(prev.unit = '', NULL, toInt64(prev.unit_rank) - toInt64(cur.unit_rank)) AS rank_change
FROM ranked AS cur
LEFT JOIN ranked AS prev
    ON prev.month = addMonths(cur.month, -1) AND prev.source = cur.source AND prev.unit = cur.unit
SETTINGS join_use_nulls = 0;

-- Category hotspots: a category whose daily count in a street is well above its own 28-day
-- baseline (mean of the 28 days before, missing days counting as 0): at least 3 cases and
-- more than mean + 3 standard deviations of a Poisson count.
CREATE OR REPLACE VIEW {db}.category_hotspots AS
WITH daily AS
(
    SELECT toDate(created_at, 'Asia/Shanghai') AS day, source, district, assumeNotNull(street) AS street,
           category, count() AS cases
    FROM {db}.cases FINAL
    WHERE status != 'cancelled' AND street IS NOT NULL
    GROUP BY day, source, district, street, category
),
scored AS
(
    SELECT *,
        sum(cases) OVER (PARTITION BY source, street, category ORDER BY toUInt32(day)
                         RANGE BETWEEN 28 PRECEDING AND 1 PRECEDING) / 28 AS baseline_mean
    FROM daily
)
SELECT day, source, district, street, category, cases, baseline_mean,
       cases / greatest(baseline_mean, 1 / 28) AS ratio
FROM scored
WHERE cases >= 3 AND cases > baseline_mean + 3 * sqrt(greatest(baseline_mean, 1 / 28));

-- Repeat calls: a call whose caller (keyed hash) called about the same category within the
-- previous 30 days. Counted per day, district and category; the hash itself is never shown.
CREATE OR REPLACE VIEW {db}.repeat_calls_daily AS
SELECT toDate(occurred_at, 'Asia/Shanghai') AS day, source, district, category,
       count() AS calls,
       countIf(previous_at > toDateTime64(0, 3, 'UTC')
               AND previous_at > occurred_at - toIntervalDay(30)) AS repeat_calls
FROM
(
    SELECT occurred_at, source, district, category,
        lagInFrame(occurred_at, 1, toDateTime64(0, 3, 'UTC')) OVER (
            PARTITION BY caller_hash, category ORDER BY occurred_at
            ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS previous_at
    FROM {db}.events FINAL
    WHERE type = 'created' AND caller_hash IS NOT NULL
)
GROUP BY day, source, district, category;
