"""Every machine-checkable contract of civicflow, written to schemas/json/ by one command.

`civicflow contracts write` (re)generates them from the models and the adapters;
`civicflow contracts check` says which checked-in files are out of date. The documents:

- JSON Schema 2020-12 of what is on the topics: the canonical event, the case snapshot, the
  alert, the control record and the dead letter (schemas/contracts.py);
- the district feeds: JSON Schema of a `jn-grid` line and a `wuye` body, Frictionless Table
  Schemas and a Data Package for the CSV feeds (producers/feed_contracts.py);
- OpenAPI 3.1 of the property webhook, AsyncAPI 3.0 of the topics.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from pydantic import TypeAdapter

from civicflow.settings import Settings
from producers.base import Reject
from producers.feed_contracts import (
    JSON_SCHEMAS,
    TABLE_SCHEMAS,
    feeds_data_package,
    webhook_openapi,
)
from schemas import contracts as topic_schemas
from schemas.enums import Source
from schemas.errors import ConfigError
from schemas.topics import (
    ALERTS_TOPIC,
    COMPACTED_TOPICS,
    CONTROL_HEADER,
    EVENT_TOPICS,
    INVALID_TOPIC,
    SNAPSHOTS_TOPIC,
)

CONTRACTS_DIR = Path(topic_schemas.__file__).parent / "json"
DEFAULT_PARTITIONS = Settings.model_fields["partitions"].default
WORKER_REJECT_KEY = "worker"


def contract_version() -> str:
    try:
        return metadata.version("civicflow")
    except metadata.PackageNotFoundError:  # running from a source tree that is not installed
        return "0"


def dead_letter_schema() -> dict[str, Any]:
    """The two records of `events.invalid`: an adapter's reject (the `Reject` dataclass, as
    `Reject.to_json` writes it) and the worker's, for a record on `events.*` it could not read."""
    adapter = TypeAdapter(Reject).json_schema()
    adapter.pop("title", None)
    adapter["description"] = (
        "A source record that became no event: the feed format, the file and line it came from, "
        "why, and the record itself (personal data removed). Key: the source (grid, hotline, "
        "property).")
    worker = {
        "type": "object",
        "description": (
            "A record on an events topic that is not a canonical event, found by the worker. "
            f"Key: `{WORKER_REJECT_KEY}`."),
        "required": ["topic", "partition", "reason", "raw"],
        "properties": {"topic": {"type": "string"}, "partition": {"type": "integer", "minimum": 0},
                       "reason": {"type": "string"}, "raw": {"type": "string"}},
        "additionalProperties": False,
    }
    definitions = {"AdapterReject": adapter, "WorkerReject": worker}
    definitions.update(adapter.pop("$defs", {}))
    return {
        "$schema": topic_schemas.JSON_SCHEMA_DIALECT,
        "title": "civicflow dead letter",
        "description": f"A record on the dead-letter topic `{INVALID_TOPIC}`, with its reason.",
        "$defs": definitions,
        "oneOf": [{"$ref": "#/$defs/AdapterReject"}, {"$ref": "#/$defs/WorkerReject"}],
    }


def _kafka_channel(topic: str, description: str, messages: list[str], partitions: str
                   ) -> dict[str, Any]:
    policy = ["compact"] if topic in COMPACTED_TOPICS else ["delete"]
    return {
        "address": topic,
        "description": f"{description} {partitions}",
        "messages": {name: {"$ref": f"#/components/messages/{name}"} for name in messages},
        "bindings": {"kafka": {"topic": topic, "partitions": DEFAULT_PARTITIONS, "replicas": 1,
                               "topicConfiguration": {"cleanup.policy": policy},
                               "bindingVersion": "0.5.0"}},
    }


def _message(title: str, summary: str, payload: dict[str, Any], key: dict[str, Any],
             headers: dict[str, Any] | None = None) -> dict[str, Any]:
    message: dict[str, Any] = {
        "name": title.replace(" ", ""), "title": title, "summary": summary,
        "contentType": "application/json", "payload": payload,
        "bindings": {"kafka": {"key": key, "bindingVersion": "0.5.0"}},
    }
    if headers:
        message["headers"] = headers
    return message


def topics_asyncapi(version: str) -> dict[str, Any]:
    """AsyncAPI 3.0 of the topics of DESIGN §7, referring to the JSON Schemas beside it."""
    case_key = {"type": "string", "description": "case_id, UTF-8 (e.g. grid:jn-grid:WG20261014000123)"}
    control_key = {"type": "string", "const": "\u0000control",
                   "description": "the bytes 0x00 'control'"}
    co_partitioned = (
        "Keyed by case_id: every record of a case is on one partition, in order. The three "
        f"events topics have the same partition count (CIVICFLOW_PARTITIONS, {DEFAULT_PARTITIONS} by "
        "default) and "
        "a producer must place records with librdkafka's default partitioner "
        "(`consistent_random`: CRC32 of the key modulo the partition count), as civicflow's "
        "producers do; control records go to every partition explicitly.")
    keyed = "Keyed by case_id, on the partition of the case's events."
    event_channels = {
        f"events{source.value.title()}": _kafka_channel(
            EVENT_TOPICS[source],
            f"Canonical events of the {source.value} feeds (source = {source.value}), and the "
            "control records of a replay. The embedded broker refuses anything else here when "
            "CIVICFLOW_BROKER_VALIDATE_EVENTS is set.",
            ["CanonicalEvent", "ControlRecord"], co_partitioned)
        for source in Source
    }
    channels = {
        **event_channels,
        "eventsInvalid": _kafka_channel(
            INVALID_TOPIC, "Dead letters: every source record that became no event, with why.",
            ["AdapterReject", "WorkerReject"], "Keyed by source (or `worker`); any partition."),
        "casesSnapshots": _kafka_channel(
            SNAPSHOTS_TOPIC, "The latest state of each case after every change (compacted: the "
            "newest record of a case_id is its state).", ["CaseSnapshot", "ControlRecord"], keyed),
        "alertsSla": _kafka_channel(
            ALERTS_TOPIC, "Yellow / red / escalation alerts: the firing of an alert, its end, or "
            "its retraction, each a record of the same alert_id.",
            ["AlertFired", "AlertEnded", "AlertRetracted", "ControlRecord"], keyed),
    }
    control_headers = {"type": "object", "required": [CONTROL_HEADER],
                       "properties": {CONTROL_HEADER: {"type": "string", "const": "1"}}}

    def alert_kind(kind: str) -> dict[str, Any]:
        return {"allOf": [{"$ref": "alert.schema.json"}, topic_schemas.alert_kind_schema(kind)]}

    messages = {
        "CanonicalEvent": _message("Canonical event", "One lifecycle step of a case (DESIGN §4)",
                                   {"$ref": "event.schema.json"}, case_key),
        "ControlRecord": _message(
            "Control record", "An in-band clock marker of a replay or of the live worker",
            {"$ref": "control-record.schema.json"}, control_key, control_headers),
        "AdapterReject": _message(
            "Adapter reject", "A district record an adapter could not turn into events",
            {"$ref": "dead-letter.schema.json#/$defs/AdapterReject"},
            {"type": "string", "enum": [s.value for s in Source]}),
        "WorkerReject": _message(
            "Worker reject", "A record on an events topic that is not a canonical event",
            {"$ref": "dead-letter.schema.json#/$defs/WorkerReject"},
            {"type": "string", "const": WORKER_REJECT_KEY}),
        "CaseSnapshot": _message("Case snapshot", "A case's state after a change",
                                 {"$ref": "case-snapshot.schema.json"}, case_key),
        "AlertFired": _message("Alert fired", topic_schemas.ALERT_KINDS["fired"],
                               alert_kind("fired"), case_key),
        "AlertEnded": _message("Alert ended", topic_schemas.ALERT_KINDS["ended"],
                               alert_kind("ended"), case_key),
        "AlertRetracted": _message("Alert retracted", topic_schemas.ALERT_KINDS["retracted"],
                                   alert_kind("retracted"), case_key),
    }

    def operation(action: str, channel: str, summary: str, names: list[str]) -> dict[str, Any]:
        return {"action": action, "channel": {"$ref": f"#/channels/{channel}"}, "summary": summary,
                "messages": [{"$ref": f"#/channels/{channel}/messages/{name}"} for name in names]}

    operations: dict[str, Any] = {}
    for name in event_channels:
        operations[f"produce{name[0].upper()}{name[1:]}"] = operation(
            "send", name, "civicflow ingest, replay and the property webhook send the adapters' "
            "events (and a replay its control records)", ["CanonicalEvent", "ControlRecord"])
        operations[f"process{name[0].upper()}{name[1:]}"] = operation(
            "receive", name, "the worker (consumer group civicflow-worker) follows every case",
            ["CanonicalEvent", "ControlRecord"])
    operations.update({
        "produceDeadLetters": operation("send", "eventsInvalid",
                                        "the adapters and the worker send what they reject",
                                        ["AdapterReject", "WorkerReject"]),
        "storeDeadLetters": operation("receive", "eventsInvalid",
                                      "the sink (group civicflow-sink) stores them in `rejects`",
                                      ["AdapterReject", "WorkerReject"]),
        "produceSnapshots": operation("send", "casesSnapshots", "the worker",
                                      ["CaseSnapshot", "ControlRecord"]),
        "storeSnapshots": operation("receive", "casesSnapshots",
                                    "the sink stores them in `cases`", ["CaseSnapshot", "ControlRecord"]),
        "produceAlerts": operation("send", "alertsSla", "the worker",
                                   ["AlertFired", "AlertEnded", "AlertRetracted", "ControlRecord"]),
        "consumeAlerts": operation("receive", "alertsSla",
                                   "the sink (table `alerts`) and the notifier (Alertmanager)",
                                   ["AlertFired", "AlertEnded", "AlertRetracted", "ControlRecord"]),
    })
    return {
        "asyncapi": "3.1.0",
        "info": {
            "title": "civicflow topics",
            "version": version,
            "description": (
                "The Kafka topics of civicflow (DESIGN §7): canonical events in, dead letters, "
                "case snapshots and SLA alerts out. Values are JSON (UTF-8); the payload schemas "
                "are the JSON Schema files beside this document. The worker's own topics (the "
                "changelog of its case state) are internal and not part of this contract."),
        },
        "defaultContentType": "application/json",
        "servers": {
            "production": {"host": "kafka:9092", "protocol": "kafka",
                           "description": "an Apache Kafka (KRaft) cluster: CIVICFLOW_BOOTSTRAP"},
            "embedded": {"host": "127.0.0.1:{port}", "protocol": "kafka",
                         "description": "the embedded Tansu broker (memory only) of demo and replay",
                         "variables": {"port": {"description": "a free port chosen at start"}}},
        },
        "channels": channels,
        "operations": operations,
        "components": {"messages": messages},
    }


def contract_documents() -> dict[str, Any]:
    """File name (under schemas/json/) -> document."""
    version = contract_version()
    documents: dict[str, Any] = {
        "event.schema.json": topic_schemas.event_schema(),
        "case-snapshot.schema.json": topic_schemas.case_snapshot_schema(),
        "alert.schema.json": topic_schemas.alert_schema(),
        "control-record.schema.json": topic_schemas.control_record_schema(),
        "dead-letter.schema.json": dead_letter_schema(),
    }
    for file, build in (*JSON_SCHEMAS.values(), *TABLE_SCHEMAS.values()):
        documents[file] = build()
    documents["datapackage.json"] = feeds_data_package()
    documents["openapi.json"] = webhook_openapi(version)
    documents["asyncapi.json"] = topics_asyncapi(version)
    return documents


def render(document: Any) -> bytes:
    return (json.dumps(document, ensure_ascii=False, indent=2) + "\n").encode()


@dataclass(frozen=True)
class ContractDrift:
    missing: list[str]
    changed: list[str]

    def __bool__(self) -> bool:
        return bool(self.missing or self.changed)

    def line(self) -> str:
        parts = []
        if self.changed:
            parts.append(f"changed: {', '.join(self.changed)}")
        if self.missing:
            parts.append(f"missing: {', '.join(self.missing)}")
        return "; ".join(parts)


def compare_contracts(directory: Path = CONTRACTS_DIR) -> ContractDrift:
    missing, changed = [], []
    for name, document in contract_documents().items():
        path = directory / name
        if not path.is_file():
            missing.append(name)
        elif path.read_bytes() != render(document):
            changed.append(name)
    return ContractDrift(missing, changed)


def write_contracts(directory: Path = CONTRACTS_DIR) -> list[str]:
    """Writes every document; returns the names of those whose content changed."""
    try:
        directory.mkdir(parents=True, exist_ok=True)
        written = []
        for name, document in contract_documents().items():
            path = directory / name
            data = render(document)
            if not path.is_file() or path.read_bytes() != data:
                path.write_bytes(data)
                written.append(name)
    except OSError as exc:
        raise ConfigError(f"cannot write the contracts to {directory}: {exc.strerror}") from exc
    return written
