-- 督办: the alerts active now (DESIGN §9a): fired, not retracted, and not ended (alert_ends, 0008)
-- since they (last) fired. An end emitted with the same clock as its fire (a replay's batch) ends it.
CREATE OR REPLACE VIEW {db}.active_alerts AS
SELECT
    a.alert_id AS alert_id, a.case_id AS case_id, a.source AS source, a.district AS district,
    a.street AS street, a.unit AS unit, a.category AS category, a.milestone AS milestone,
    a.cycle AS cycle, a.level AS level, a.due_at AS due_at, a.fires_at AS fires_at,
    a.emitted_at AS emitted_at
FROM {db}.alerts AS a FINAL
LEFT JOIN
(
    SELECT alert_id, max(emitted_at) AS last_end FROM {db}.alert_ends GROUP BY alert_id
) AS e ON a.alert_id = e.alert_id
WHERE NOT a.retracted AND (e.last_end IS NULL OR e.last_end < a.emitted_at);
