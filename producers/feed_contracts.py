"""Contracts of the district feeds (DESIGN §5), built from what the adapters accept.

JSON Schema (2020-12) for a `jn-grid` line and a `wuye` body, Frictionless Table Schemas for the
`12345`, `12345-flow` and `nyc311` CSV columns, a Data Package that states their encodings and
CSV dialect, and the OpenAPI 3.1 description of the property webhook. The value lists (event
types, urgencies, satisfactions, columns) are read from the adapters themselves, so a contract
cannot fall behind its adapter unnoticed: `civicflow contracts check` and the drift test compare
the generated documents with the checked-in ones.

Where an adapter is more lenient than a contract can say (it trims whitespace, coerces numbers,
checks one column against another), the contract is the stricter of the two, so a record that
passes its contract passes the adapter. The differences are listed in tests/unit/
test_feed_contracts.py (each with a record that shows it) and in the README.
"""

from __future__ import annotations

from typing import Any

from producers import grid, hotline12345, hotline_flow, nyc311, wuye
from schemas.contracts import JSON_SCHEMA_DIALECT
from schemas.enums import EventType

# 2026-10-03 09:07:00 or 2026/10/3 9:07 (seconds optional), a real month, day, hour and minute
LOCAL_TIME = (r"[0-9]{4}[-/](0?[1-9]|1[0-2])[-/](0?[1-9]|[12][0-9]|3[01])[ T]"
              r"([01]?[0-9]|2[0-3]):[0-5][0-9](:[0-5][0-9])?")
LOCAL_TIME_HELP = ("local time, `2026-10-03 09:07:00` or `2026/10/3 9:07` (seconds optional), "
                   "Asia/Shanghai")
# ISO 8601 extended format with an offset, as Python's datetime.fromisoformat reads it
OFFSET_TIME = (r"^[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])[T ]([01][0-9]|2[0-3]):[0-5][0-9]"
               r"(:[0-5][0-9](\.[0-9]{1,6})?)?(Z|[+-]([01][0-9]|2[0-3]):?[0-5][0-9])$")
AREA_CODE = "([0-9]{6}|[0-9]{9}|[0-9]{12}|[0-9]{15})"
EXTENSION_DAYS_TEXT = r"^\+?0*([1-9]|[1-9][0-9]|[12][0-9]{2}|3[0-5][0-9]|36[0-5])$"
# 1..365 with leading zeros allowed, as 12345-flow reads it (ASCII digits only)
FLOW_EXTENSION_DAYS = "0*([1-9]|[1-9][0-9]|[12][0-9]{2}|3[0-5][0-9]|36[0-5])"

# JSON values an adapter reads as text: a string, or a number it turns into one
_REQUIRED_TEXT = {"anyOf": [{"type": "string", "pattern": r"\S"}, {"type": "number"}]}
_OPTIONAL_TEXT = {"anyOf": [{"type": "string"}, {"type": "number"}, {"type": "null"}]}
_EXTENSION_DAYS = {"anyOf": [{"type": "integer", "minimum": 1, "maximum": 365},
                             {"type": "string", "pattern": EXTENSION_DAYS_TEXT}]}


def _optional_choice(values: list[str], description: str) -> dict[str, Any]:
    return {"description": description,
            "anyOf": [{"enum": values}, {"const": ""}, {"type": "null"}]}


def _names_of(mapping: dict[str, EventType], kind: EventType) -> list[str]:
    return [name for name, value in mapping.items() if value is kind]


def jn_grid_line_schema() -> dict[str, Any]:
    return {
        "$schema": JSON_SCHEMA_DIALECT,
        "title": "jn-grid line",
        "description": (
            "The grid platform feed (网格化服务管理平台, DESIGN §5.1): JSON Lines in UTF-8, one "
            "lifecycle event of a case per line. Keys not listed here are ignored; 承办单位 "
            "(the unit's name) is not stored."),
        "type": "object",
        "required": ["事件ID", "工单编号", "事件类型", "发生时间"],
        "properties": {
            "事件ID": {**_REQUIRED_TEXT, "description": "the platform's event id: makes the event id"},
            "工单编号": {**_REQUIRED_TEXT, "description": "the case number: makes the case id"},
            "事件类型": {"enum": list(grid.EVENT_TYPES),
                       "description": "lifecycle step: " + ", ".join(
                           f"{name} → {kind.value}" for name, kind in grid.EVENT_TYPES.items())},
            "发生时间": {"type": "string", "pattern": f"^{LOCAL_TIME}$", "description": LOCAL_TIME_HELP,
                     "examples": ["2026-10-03 09:15:00"]},
            "网格编码": {"description": "15-digit grid code (district + street + community + grid)",
                     "anyOf": [{"type": "string", "pattern": "^([0-9]{15})?$"},
                               {"type": "integer", "minimum": 10**14, "maximum": 10**15 - 1},
                               {"type": "null"}]},
            "事项大类": {**_OPTIONAL_TEXT, "description": "category group (catalog 大类)"},
            "事项小类": {**_OPTIONAL_TEXT,
                     "description": "category item (catalog 小项); unknown items are kept as other:"},
            "紧急程度": _optional_choice(list(grid.URGENCIES), "urgency; empty means 一般"),
            "承办单位编码": {**_OPTIONAL_TEXT, "description": "handling unit code"},
            "承办单位": {"description": "handling unit name (not stored)"},
            "满意度": _optional_choice(list(grid.SATISFACTIONS), "on 反馈 / 回访"),
            "延期天数": {"description": f"on {'/'.join(_names_of(grid.EVENT_TYPES, EventType.EXTENDED))}:"
                                    " approved extension, whole working days 1..365"},
            "说明": {**_OPTIONAL_TEXT, "description": "on 退回 and 挂起: the stated reason "
                                                   "(phone and ID numbers are masked)"},
        },
        "allOf": [{
            "if": {"properties": {"事件类型": {"enum": _names_of(grid.EVENT_TYPES, EventType.EXTENDED)}},
                   "required": ["事件类型"]},
            "then": {"required": ["延期天数"], "properties": {"延期天数": _EXTENSION_DAYS}},
        }],
    }


def wuye_body_schema() -> dict[str, Any]:
    extended = _names_of(wuye.EVENT_NAMES, EventType.EXTENDED)
    code = {"anyOf": [{"type": "string"}, {"type": "integer"}, {"type": "null"}]}
    known = {
        "order_id": {"description": "the firm's order number: makes the case id",
                     "anyOf": [{"type": "string", "pattern": r"\S"}, {"type": "integer"}]},
        "community_code": {"description": "12-digit community code",
                           "anyOf": [{"type": "string", "pattern": "^[0-9]{12}$"},
                                     {"type": "integer", "minimum": 10**11, "maximum": 10**12 - 1}]},
        "event": {"enum": list(wuye.EVENT_NAMES),
                  "description": "lifecycle step, in English (the canonical type) or in Chinese"},
        "time": {"type": "string", "format": "date-time", "pattern": OFFSET_TIME,
                 "description": "ISO 8601 with its UTC offset", "examples": ["2026-10-03T09:15:00+08:00"]},
        "category": {**code, "description": "category item; unknown items are kept as other:"},
        "urgent": {"type": "boolean", "default": False},
        "company_code": {**code, "description": "the firm's code: must be the firm whose secret "
                                               "signs the request (webhook)"},
        "satisfaction": _optional_choice(list(wuye.SATISFACTIONS), "on feedback / 评价"),
        "extension_days": {"description": f"on {'/'.join(extended)}: approved extension, "
                                          "whole working days 1..365"},
        "event_id": {**code, "description": "the firm's own id of this step, when it has one; "
                                           "else the step is identified by event and time"},
    }
    unlisted = set(known) ^ wuye.FIELDS
    if unlisted:
        raise KeyError(f"wuye fields and their contract differ: {sorted(unlisted)}")
    return {
        "$schema": JSON_SCHEMA_DIALECT,
        "title": "wuye property-service event",
        "description": (
            "One property-service event (物业服务, DESIGN §5.3): the body of a webhook request, "
            "or one line of a .jsonl backfill file (UTF-8). No other field is accepted: personal "
            "data and free text are refused."),
        "type": "object",
        "required": ["order_id", "community_code", "event", "time"],
        "properties": known,
        "additionalProperties": False,
        "allOf": [{
            "if": {"properties": {"event": {"enum": extended}}, "required": ["event"]},
            "then": {"required": ["extension_days"], "properties": {
                "extension_days": {"type": "integer", "minimum": 1, "maximum": 365}}},
        }],
    }


def _string(name: str, description: str, **constraints: Any) -> dict[str, Any]:
    field: dict[str, Any] = {"name": name, "type": "string", "description": description}
    if constraints:
        field["constraints"] = constraints
    return field


def _local_time(name: str, description: str, required: bool = False) -> dict[str, Any]:
    field = _string(name, f"{description}; {LOCAL_TIME_HELP}", pattern=LOCAL_TIME)
    if required:
        field["constraints"]["required"] = True
    field["example"] = "2026-10-03 09:07:00"
    return field


def _table_schema(feed: str, columns: list[str], fields: list[dict[str, Any]], fields_match: str,
                  title: str, description: str) -> dict[str, Any]:
    """A CSV feed's Table Schema, its fields checked against the adapter's columns."""
    names = [field["name"] for field in fields]
    if names != columns:
        raise KeyError(f"{feed} columns and their contract differ: {names} != {columns}")
    return {"title": title, "description": description, "fields": fields,
            "fieldsMatch": fields_match, "missingValues": [""]}


def hotline_12345_table_schema() -> dict[str, Any]:
    urgencies = [name for name in hotline12345.URGENCIES if name]
    fields = [
        _string("工单编号", "work-order number: makes the case id", required=True),
        _local_time("来电时间", "call time → created", required=True),
        _string("来电号码", "caller's phone: kept only as a keyed hash (caller_hash)"),
        _string("诉求人", "caller's name: dropped"),
        _string("诉求类型", "category item; unknown items are kept as other:"),
        _string("诉求内容", "free text: phone and ID numbers are masked, then it is not stored"),
        _string("紧急程度", "urgency; empty means 一般", enum=urgencies),
        _string("区县编码", "6-digit district code (read when 街道编码 is empty)", pattern=AREA_CODE),
        _string("街道编码", "9-digit street code", pattern=AREA_CODE),
        _string("承办单位编码", "handling unit code"),
        _string("承办单位", "handling unit name (not stored)"),
        _local_time("派单时间", "dispatch time → dispatched"),
        _local_time("签收时间", "acceptance time → responded"),
        _local_time("办结时间", "resolution time → resolved"),
        _local_time("回访时间", "survey time → feedback"),
        _string("满意度", "survey verdict", enum=list(hotline12345.SATISFACTIONS)),
        _string("重办次数", "reopen count, 0..1000 (kept on the case: the export has no reopen "
                "times)", pattern="0*([0-9]{1,3}|1000)"),
        _string("工单状态", "order status; 作废 cancels the case at the row's latest time"),
    ]
    return _table_schema("12345", hotline12345.COLUMNS, fields, "partial",
                         "12345 hotline work-order export",
                         (
            "One row per work order: a snapshot (DESIGN §5.2). CSV with a header row, GBK or "
            "UTF-8 (with or without BOM). Columns are matched by name, in any order; only 工单编号 "
            "and 来电时间 must be there. Each filled time column becomes one event; a later "
            "snapshot of the same order adds only its new events."))


def hotline_flow_table_schema() -> dict[str, Any]:
    steps = hotline_flow.STEPS
    fields = [
        _string("工单编号", "work-order number: the same case as the order export", required=True),
        _local_time("操作时间", "time of the step", required=True),
        _string("操作类型", "the step: " + ", ".join(
            f"{name} → {step.kind.value}" for name, step in steps.items()),
            required=True, enum=list(steps)),
        _string("操作单位编码", "unit that took the step (" + ", ".join(
            name for name, step in steps.items() if step.unit_column == hotline_flow.OPERATOR)
            + ": the case's unit)"),
        _string("操作单位", "name of that unit (not stored)"),
        _string("目标单位编码", "unit the case goes to (" + ", ".join(
            name for name, step in steps.items() if step.unit_column == hotline_flow.TARGET)
            + ": the new holder, required)"),
        _string("目标单位", "name of that unit (not stored)"),
        _string("延期天数", "on 延期: approved extension, whole working days 1..365 (required)",
                pattern=FLOW_EXTENSION_DAYS),
        _string("满意度", "on 回访: survey verdict", enum=list(hotline_flow.SATISFACTIONS)),
        _string("说明", "on " + " and ".join(name for name, step in steps.items() if step.keeps_reason)
                + ": the stated reason (phone and ID numbers are masked)"),
    ]
    return _table_schema("12345-flow", hotline_flow.COLUMNS, fields, "partial",
                         "12345 circulation log (工单流转记录)",
                         (
            "One row per step of a work order (DESIGN §5.5). CSV with a header row, GBK or UTF-8 "
            "(with or without BOM). Columns are matched by name, in any order; only "
            + ", ".join(hotline_flow.REQUIRED) + " must be there. It brings no created event: "
            "category, urgency and area come from the order export of the same 工单编号. A step "
            "that arrives through both exports counts once."))


def nyc311_table_schema() -> dict[str, Any]:
    nyc_time = {"type": "datetime", "format": "%m/%d/%Y %I:%M:%S %p"}
    fields: list[dict[str, Any]] = [
        {"name": "Unique Key", "type": "string", "description": "makes the case id",
         "constraints": {"required": True}},
        {"name": "Created Date", **nyc_time, "constraints": {"required": True},
         "description": "→ created; America/New_York, like 05/01/2022 12:00:03 AM"},
        {"name": "Closed Date", **nyc_time,
         "description": "→ resolved and closed when Status is Closed (then required)"},
        {"name": "Agency", "type": "string", "description": "→ handling unit"},
        {"name": "Complaint Type", "type": "string", "description": "→ category"},
        {"name": "Status", "type": "string", "description": "Closed makes resolved and closed"},
        {"name": "Due Date", **nyc_time, "description": "→ the resolve due instant"},
        {"name": "Borough", "type": "string", "description": "→ district (Unspecified: none)"},
    ]
    return _table_schema("nyc311", nyc311.REQUIRED, fields, "subset",
                         "NYC 311 service requests (NYC Open Data export)",
                         (
            "The Open Data CSV export of 311 Service Requests (DESIGN §5.4), UTF-8: these eight "
            "columns must be there, any others (the export has 41) are ignored. Times are "
            "America/New_York."))


TABLE_SCHEMAS = {
    "12345": ("feed-12345.tableschema.json", hotline_12345_table_schema),
    "12345-flow": ("feed-12345-flow.tableschema.json", hotline_flow_table_schema),
    "nyc311": ("feed-nyc311.tableschema.json", nyc311_table_schema),
}
JSON_SCHEMAS = {
    "jn-grid": ("feed-jn-grid.schema.json", jn_grid_line_schema),
    "wuye": ("feed-wuye.schema.json", wuye_body_schema),
}
CSV_DIALECT = {"delimiter": ",", "quoteChar": '"', "doubleQuote": True, "header": True}


def feeds_data_package() -> dict[str, Any]:
    """The CSV feeds as a Frictionless Data Package: per feed its dialect, encoding and Table
    Schema, each with a small example file (a district puts its own file in `path`)."""

    def resource(name: str, feed: str, path: str, encoding: str, description: str) -> dict[str, Any]:
        return {"name": name, "path": path, "format": "csv", "mediatype": "text/csv",
                "encoding": encoding, "dialect": CSV_DIALECT, "schema": TABLE_SCHEMAS[feed][0],
                "description": description}

    return {
        "name": "civicflow-feeds",
        "title": "civicflow district CSV feeds",
        "description": (
            "The CSV feeds a district may send (DESIGN §5), with an example of each. Check an "
            "export with `frictionless validate` against its resource (set `path` and, for a GBK "
            "file, `encoding`), or with `civicflow validate --format F FILE`, which runs the "
            "adapter itself."),
        "resources": [
            resource("12345", "12345", "examples/12345.csv", "utf-8",
                     "12345 work-order export, UTF-8 (a BOM is allowed)"),
            resource("12345-gbk", "12345", "examples/12345-gbk.csv", "gbk",
                     "the same export in GBK (GB18030 is read too)"),
            resource("12345-flow", "12345-flow", "examples/12345-flow.csv", "utf-8",
                     "12345 circulation log, UTF-8 or GBK"),
            resource("nyc311", "nyc311", "examples/nyc311.csv", "utf-8",
                     "NYC 311 service requests, three rows of the real 2022-05-01 export"),
        ],
    }


def webhook_openapi(version: str) -> dict[str, Any]:
    """OpenAPI 3.1 of `civicflow serve-ingest` (served at GET /openapi.json)."""
    from producers.webhook import MAX_BODY, OPENAPI_PATH, PATH

    body = {key: value for key, value in wuye_body_schema().items() if key != "$schema"}
    error = {"$ref": "#/components/schemas/Error"}

    def failure(text: str, headers: dict[str, Any] | None = None) -> dict[str, Any]:
        response: dict[str, Any] = {"description": text,
                                    "content": {"application/json": {"schema": error}}}
        if headers:
            response["headers"] = headers
        return response

    signing = (
        "Each firm has a secret (CIVICFLOW_PROPERTY_SECRETS on the server). Sign every request: "
        "`X-Timestamp` is the current time in Unix seconds, and `X-Signature` is `sha256=` "
        "followed by the hex HMAC-SHA256, under the firm's secret, of the timestamp, a dot and "
        "the exact body bytes (`timestamp + \".\" + body`). A request more than 5 minutes "
        "from the server's clock is refused, so a captured request cannot be replayed later.")
    return {
        "openapi": "3.1.0",
        "jsonSchemaDialect": JSON_SCHEMA_DIALECT,
        "info": {
            "title": "civicflow property-service webhook",
            "version": version,
            "description": (
                "Property-service firms (物业服务) send each step of an order as it happens, one "
                f"event per request. {signing} An event is accepted (202) only once the broker "
                "has stored it; on 503 send the same request again after `Retry-After` seconds "
                "(the event id is deterministic, so a repeat never doubles it)."),
        },
        "paths": {
            PATH: {"post": {
                "operationId": "sendPropertyEvent",
                "summary": "Send one property-service event",
                "security": [{"firmSignature": [], "signedTimestamp": []}],
                "requestBody": {"required": True, "description": (
                    f"One event as JSON, at most {MAX_BODY // 1024} KiB."),
                    "content": {"application/json": {"schema": {
                        "$ref": "#/components/schemas/PropertyEvent"}}}},
                "responses": {
                    "202": {"description": "stored on the broker",
                            "content": {"application/json": {"schema": {
                                "$ref": "#/components/schemas/Accepted"}}}},
                    "401": failure("X-Signature or X-Timestamp missing, wrong, or the timestamp "
                                   "more than 5 minutes off: the reason says which"),
                    "413": failure(f"body over {MAX_BODY // 1024} KiB: send one event per request"),
                    "415": failure("Content-Type is not application/json"),
                    "422": failure("the body breaks the PropertyEvent contract, or company_code "
                                   "is not the firm whose secret signed it: the reason says what"),
                    "503": failure("not stored (the broker did not acknowledge it): send the same "
                                   "request again later",
                                   {"Retry-After": {"description": "seconds to wait",
                                                    "schema": {"type": "integer", "minimum": 0}}}),
                },
            }},
            OPENAPI_PATH: {"get": {
                "operationId": "getOpenApi", "summary": "This description",
                "responses": {"200": {"description": "OpenAPI 3.1 document", "content": {
                    "application/json": {"schema": {"type": "object"}}}}}}},
            "/metrics": {"get": {
                "operationId": "getMetrics", "summary": "Prometheus metrics of the webhook",
                "responses": {"200": {"description": "Prometheus text format", "content": {
                    "text/plain": {"schema": {"type": "string"}}}}}}},
        },
        "components": {
            "schemas": {
                "PropertyEvent": body,
                "Accepted": {"type": "object", "required": ["event_id", "case_id"],
                             "properties": {"event_id": {"type": "string"},
                                            "case_id": {"type": "string"}}},
                "Error": {"type": "object", "required": ["error"],
                          "properties": {"error": {"type": "string",
                                                   "description": "what is wrong and what to do"}}},
            },
            "securitySchemes": {
                "firmSignature": {"type": "apiKey", "in": "header", "name": "X-Signature",
                                  "description": signing},
                "signedTimestamp": {"type": "apiKey", "in": "header", "name": "X-Timestamp",
                                    "description": "Unix seconds, part of the signed bytes"},
            },
        },
    }
