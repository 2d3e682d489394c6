"""Ingest-side Prometheus metrics (ingest command and webhook), built on a given registry."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter


class IngestMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.records = Counter("civicflow_ingest_records_total",
                               "Source records read, by outcome (produced, rejected, duplicate).",
                               ["format", "outcome"], registry=registry)
        self.rejects = Counter("civicflow_ingest_rejects_total",
                               "Rejected records by reason code (the field or check that failed).",
                               ["format", "reason"], registry=registry)
        self.requests = Counter("civicflow_webhook_requests_total",
                                "Webhook requests by HTTP status.", ["status"], registry=registry)
