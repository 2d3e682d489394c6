-- Views the report reads (it reads views only): totals and alerts per day.
CREATE OR REPLACE VIEW {db}.report_totals AS
SELECT
    (SELECT count() FROM {db}.events FINAL) AS events,
    (SELECT count() FROM {db}.rejects FINAL) AS rejects,
    (SELECT count() FROM {db}.cases FINAL) AS cases,
    (SELECT countIf(status NOT IN ('closed', 'cancelled')) FROM {db}.cases FINAL) AS open_cases,
    (SELECT countIf(status = 'cancelled') FROM {db}.cases FINAL) AS cancelled_cases;

CREATE OR REPLACE VIEW {db}.alerts_daily AS
SELECT toDate(fires_at, 'Asia/Shanghai') AS day, source, district, milestone, level,
       countIf(NOT retracted) AS alerts, countIf(retracted) AS retracted_alerts
FROM {db}.alerts FINAL
GROUP BY day, source, district, milestone, level;
