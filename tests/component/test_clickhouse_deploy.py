"""Production ClickHouse SQL is checked by ClickHouse's own parser (formatQuery in chDB)."""

from __future__ import annotations

from pathlib import Path

import pytest

from sinks.clickhouse import connect
from sinks.migrate import cluster_statements, migration_files, split_statements

pytestmark = pytest.mark.component
DEPLOY = Path(__file__).parents[2] / "deploy" / "clickhouse"


@pytest.fixture(scope="module")
def client(chdb_var):
    return connect(f"chdb://{(chdb_var / 'clickhouse').resolve()}")


def parses(client, statement: str) -> str:
    return client.query("SELECT formatQuery({q:String})", parameters={"q": statement}).result_rows[0][0]


def test_access_sql_parses_and_bi_is_read_only(client):
    statements = split_statements((DEPLOY / "access.sql").read_text())
    assert len(statements) >= 8
    for statement in statements:
        parses(client, statement)
    text = (DEPLOY / "access.sql").read_text()
    assert "GRANT SELECT ON civicflow.* TO civicflow_bi_reader" in text
    assert "readonly = 1" in text


def test_every_migration_has_a_cluster_form_that_parses(client):
    tables = views = 0
    for _, _, sql in migration_files():
        for statement in split_statements(sql.replace("{db}", "civicflow")):
            for command in cluster_statements(statement, "city"):
                formatted = parses(client, command)
                assert "ON CLUSTER city" in formatted or "ON CLUSTER 'city'" in formatted
                tables += "ReplicatedReplacingMergeTree" in formatted
                views += formatted.startswith("CREATE OR REPLACE VIEW")
    # events, cases, alerts, alert_ends, rejects, pipeline_clock, control_markers, sink_batches
    assert tables == 8
    assert views >= 8
