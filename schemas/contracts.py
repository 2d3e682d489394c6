"""JSON Schemas (2020-12) of the records civicflow puts on its topics, generated from the models.

`civicflow contracts write` writes them to schemas/json/; a test fails when a model and its
checked-in schema drift apart. The schemas are what a consumer may rely on (and what the
embedded broker checks on `events.*`), so they are a little stricter than the models' lax
parsing: a time is an RFC 3339 string with an offset, never a number.
"""

from __future__ import annotations

import copy
from typing import Any

from pydantic import BaseModel

from schemas.case import Alert, CaseSnapshot
from schemas.event import SCHEMA_VERSION, Event
from schemas.topics import CONTROL_HEADER

JSON_SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"
# what the models' serializers write for an aware datetime: 2026-10-03T09:15:00+08:00,
# 2026-10-03T01:15:00Z, with a fraction when there is one
RFC3339_PATTERN = (r"^[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?"
                   r"([Zz]|[+-][0-9]{2}:[0-9]{2})$")

EVENT_FIELDS = {
    "schema_version": f"Version of this schema; {SCHEMA_VERSION} today.",
    "event_id": "Deterministic from the source's own ids: importing a record again gives the same id.",
    "case_id": "Globally unique case id, `{source}:{system}:{native id}`; the Kafka key.",
    "source": "Which feed family the event comes from; selects the topic `events.{source}`.",
    "system": "The feed format that made it (`jn-grid`, `12345`, `12345-flow`, `wuye`, `nyc311`).",
    "type": "The lifecycle step (DESIGN §6 and §6a).",
    "occurred_at": "Event time with its UTC offset. Naive source times are Asia/Shanghai "
                   "(NYC 311: America/New_York).",
    "district": "6-digit district code (区县).",
    "street": "9-digit street code (街道/镇).",
    "community": "12-digit community code (社区/村).",
    "grid": "15-digit grid code (网格).",
    "category": "Catalog code of the item; an item the catalog lacks is kept as `other:<raw text>`.",
    "urgency": "紧急 / 一般 / 疑难.",
    "unit": "Handling unit code (承办单位).",
    "satisfaction": "On `feedback`: the resident's verdict.",
    "extension_days": "On `extended`: the approved extension in working days.",
    "caller_hash": "Keyed HMAC-SHA256 of the caller's phone number; the number itself never "
                   "enters Kafka.",
    "due_at": "Resolve due instant given by the source (Open311 `Due Date`); replaces the "
              "policy's limit.",
    "reopen_count": "Reopen count a snapshot source reports without reopen times "
                    "(12345 `重办次数`).",
    "reason": "On `returned` and `suspended`: the unit's stated reason, phone and ID numbers masked.",
}

ALERT_KINDS = {
    "fired": "The alert fired: `retracted` false, `ended_at` and `end_reason` null.",
    "ended": "An active alert stopped being active (milestone met, case closed or cancelled, "
             "clock restarted): `ended_at` and `end_reason` set, `retracted` false.",
    "retracted": "A late event proved the alert should never have fired: `retracted` true.",
}


def _strict_times(node: Any) -> None:
    """Every `format: date-time` string also gets the RFC 3339 pattern: many validators (the
    embedded broker's among them) treat `format` as an annotation only."""
    if isinstance(node, dict):
        if node.get("format") == "date-time" and node.get("type") == "string":
            node.setdefault("pattern", RFC3339_PATTERN)
        for value in node.values():
            _strict_times(value)
    elif isinstance(node, list):
        for value in node:
            _strict_times(value)


def model_schema(model: type[BaseModel], title: str, descriptions: dict[str, str] | None = None
                 ) -> dict[str, Any]:
    """The model's JSON Schema as a standalone 2020-12 document."""
    generated = model.model_json_schema(mode="validation")
    properties = generated.get("properties", {})
    for name, text in (descriptions or {}).items():
        if name not in properties:
            raise KeyError(f"{model.__name__} has no field {name!r} to describe")
        properties[name]["description"] = text
    _strict_times(generated)
    return {"$schema": JSON_SCHEMA_DIALECT, "title": title, **generated}


def event_schema() -> dict[str, Any]:
    schema = model_schema(Event, "civicflow canonical event", EVENT_FIELDS)
    schema["description"] = (
        "One lifecycle step of one case (DESIGN §4). JSON on the topics `events.grid`, "
        "`events.hotline` and `events.property`, keyed by `case_id`; fields whose value would be "
        "null are left out.")
    return schema


def case_snapshot_schema() -> dict[str, Any]:
    schema = model_schema(CaseSnapshot, "civicflow case snapshot")
    schema["description"] = (
        "The latest state of one case after a change, on the compacted topic `cases.snapshots` "
        "keyed by `case_id`; `version` grows with every distinct event applied.")
    return schema


def alert_schema() -> dict[str, Any]:
    schema = model_schema(Alert, "civicflow SLA alert")
    kinds = " ".join(f"**{name}**: {text}" for name, text in ALERT_KINDS.items())
    schema["description"] = (
        "One yellow / red / escalation alert on `alerts.sla`, keyed by `case_id`; `alert_id` = "
        f"`case_id:milestone:cycle:level`. Three kinds of record share this shape. {kinds}")
    return schema


def alert_kind_schema(kind: str) -> dict[str, Any]:
    """What tells one kind of `alerts.sla` record from the others (to combine with the alert)."""
    if kind == "fired":
        return {"properties": {"retracted": {"const": False}, "ended_at": {"type": "null"},
                               "end_reason": {"type": "null"}}}
    if kind == "ended":
        return {"properties": {"retracted": {"const": False}, "ended_at": {"type": "string"},
                               "end_reason": {"type": "string"}},
                "required": ["ended_at", "end_reason"]}
    if kind == "retracted":
        return {"properties": {"retracted": {"const": True}}, "required": ["retracted"]}
    raise KeyError(kind)


def control_record_schema() -> dict[str, Any]:
    return {
        "$schema": JSON_SCHEMA_DIALECT,
        "title": "civicflow control record",
        "description": (
            "In-band marker on a partition, after the data it speaks for: the event-time clock "
            "of a replay (or of the live worker), and whether the input has ended. Its Kafka key "
            f"is the bytes `\\u0000control` and it carries the header `{CONTROL_HEADER}`; "
            "consumers of data skip it. The worker forwards the ones it reads on `events.*` "
            "to `cases.snapshots` and `alerts.sla` with `from` set to the topic it read."),
        "type": "object",
        "required": ["run", "clock"],
        "properties": {
            "run": {"type": "string", "description": "replay run id, or `live`"},
            "clock": {"type": "string", "format": "date-time", "pattern": RFC3339_PATTERN,
                      "description": "the event-time clock of the partition"},
            "final": {"type": "boolean", "description": "true on the last record of a replay"},
            "from": {"type": "string", "description": "the topic a forwarded control came from"},
        },
        "additionalProperties": False,
    }


def event_topic_value_schema() -> dict[str, Any]:
    """What may be written to an `events.*` topic: a canonical event or a control record, as
    one document with every definition at its root (the embedded broker compiles the value
    schema on its own, so references must resolve inside it)."""
    event = copy.deepcopy(event_schema())
    definitions = event.pop("$defs", {})
    event.pop("$schema")
    control = control_record_schema()
    control.pop("$schema")
    return {
        "$schema": JSON_SCHEMA_DIALECT,
        "title": "value of a record on events.*",
        "$defs": {**definitions, "CanonicalEvent": event, "ControlRecord": control},
        "oneOf": [{"$ref": "#/$defs/CanonicalEvent"}, {"$ref": "#/$defs/ControlRecord"}],
    }
