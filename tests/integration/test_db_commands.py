"""`civicflow db migrate` and `db optimize` as an operator runs them."""

from __future__ import annotations

from tests.integration.test_cli_errors import civicflow


def test_migrate_then_optimize_reports_what_it_did(tmp_path):
    first = civicflow("db", "migrate", "--var-dir", str(tmp_path))
    assert first.returncode == 0, first.stderr
    assert "0006_rate_columns.sql" in first.stdout
    again = civicflow("db", "migrate", "--var-dir", str(tmp_path))
    assert "none (up to date)" in again.stdout
    optimized = civicflow("db", "optimize", "--var-dir", str(tmp_path))
    assert optimized.returncode == 0, optimized.stderr
    assert "civicflow.cases: already merged" in optimized.stdout
    assert "merged 0 partitions" in optimized.stdout
