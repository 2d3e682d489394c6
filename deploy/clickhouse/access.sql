-- Production access for civicflow on a ClickHouse server (run once as an administrator;
-- passwords come from your secret store: replace the placeholders, never commit them).
-- Writer: the sink and `civicflow db migrate`. BI reader: dashboards and analysts, read-only.

CREATE ROLE IF NOT EXISTS civicflow_writer;
GRANT SELECT, INSERT, CREATE TABLE, CREATE VIEW, ALTER, DROP VIEW ON civicflow.* TO civicflow_writer;
GRANT CREATE DATABASE ON civicflow.* TO civicflow_writer;

CREATE ROLE IF NOT EXISTS civicflow_bi_reader;
GRANT SELECT ON civicflow.* TO civicflow_bi_reader;

-- BI queries are read-only and bounded, so one dashboard cannot starve the sink
CREATE SETTINGS PROFILE IF NOT EXISTS civicflow_bi
    SETTINGS readonly = 1, max_execution_time = 60, max_memory_usage = 10000000000,
             max_result_rows = 1000000
    TO civicflow_bi_reader;

CREATE USER IF NOT EXISTS civicflow_sink
    IDENTIFIED WITH sha256_password BY 'REPLACE-WITH-WRITER-SECRET'
    DEFAULT ROLE civicflow_writer;

CREATE USER IF NOT EXISTS civicflow_bi
    IDENTIFIED WITH sha256_password BY 'REPLACE-WITH-BI-SECRET'
    DEFAULT ROLE civicflow_bi_reader;
