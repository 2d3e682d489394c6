"""The checked-in contracts (schemas/json) against the code they describe.

Drift: the generated documents must equal the checked-in files. Truth: what the code really
puts on the topics (adapters' events, the processor's snapshots, alerts, dead letters and
forwarded control records, an adapter's reject) validates against its schema, and what the
models refuse, the schemas refuse too. Standard tools: openapi-spec-validator for the webhook's
OpenAPI document, frictionless for the Data Package (the AsyncAPI CLI runs in
tests/component/test_asyncapi_cli.py).
"""

from __future__ import annotations

import io
import json
from datetime import timedelta
from pathlib import Path

import frictionless
import orjson
import pytest
from jsonschema import Draft202012Validator
from openapi_spec_validator import validate as validate_openapi
from referencing import Registry, Resource

from civicflow.contracts import CONTRACTS_DIR, compare_contracts, contract_documents, render
from producers.base import Reject
from producers.grid import GridAdapter
from producers.simulator import simulate_grid
from schemas.case import Alert
from schemas.contracts import event_topic_value_schema
from schemas.enums import AlertEnd, AlertLevel, Milestone, Source
from schemas.event import Event
from schemas.topics import CONTROL_KEY
from streams.processor import CaseProcessor, Mode, Record
from tests.conftest import cn

CHECKED_IN = Path(__file__).resolve().parents[2] / "schemas" / "json"


def neighbours() -> Registry:
    """The checked-in schemas by file name, as the AsyncAPI document refers to them."""
    return Registry().with_resources(
        (path.name, Resource.from_contents(json.loads(path.read_text("utf-8"))))
        for path in CHECKED_IN.glob("*.schema.json"))


def validator(name: str) -> Draft202012Validator:
    schema = json.loads((CHECKED_IN / name).read_text("utf-8"))
    return Draft202012Validator(schema, registry=neighbours())


def errors(name: str, instance: object) -> list[str]:
    return [error.message for error in validator(name).iter_errors(instance)]


def test_checked_in_contracts_are_what_the_code_generates():
    assert CONTRACTS_DIR.resolve() == CHECKED_IN
    drift = compare_contracts(CHECKED_IN)
    assert not drift, f"run `civicflow contracts write`: {drift.line()}"


def test_a_model_change_is_caught_as_drift(tmp_path, monkeypatch):
    for name, document in contract_documents().items():
        (tmp_path / name).write_bytes(render(document))
    assert not compare_contracts(tmp_path)
    # a field added to the model, as the lead's next change might
    from schemas import contracts as topic_schemas

    original = topic_schemas.event_schema

    def grown() -> dict:
        schema = original()
        schema["properties"]["new_field"] = {"type": "string"}
        return schema

    monkeypatch.setattr(topic_schemas, "event_schema", grown)
    drift = compare_contracts(tmp_path)
    assert drift.changed == ["event.schema.json"] and drift.missing == []
    (tmp_path / "openapi.json").unlink()
    assert compare_contracts(tmp_path).missing == ["openapi.json"]


def test_every_schema_is_valid_json_schema_2020_12():
    for path in CHECKED_IN.glob("*.schema.json"):
        Draft202012Validator.check_schema(json.loads(path.read_text("utf-8")))


@pytest.fixture(scope="module")
def grid_events() -> list[Event]:
    lines = simulate_grid(seed=5, start=cn(2026, 10, 5).date(), days=6, cases_per_day=12,
                          districts=2, faults=False)
    events = [e for e in GridAdapter().parse(io.BytesIO(b"\n".join(lines)), "sim") if isinstance(e, Event)]
    return sorted(events, key=lambda e: (e.occurred_at, e.event_id))


@pytest.fixture(scope="module")
def worker_output(policy, calendar, grid_events):
    """Everything the processor writes for a replay of the feed plus one bad record."""
    processor = CaseProcessor(policy, calendar, {}, mode=Mode.REPLAY)
    records = [Record("events.grid", 0, e.case_id.encode(), e.to_json()) for e in grid_events]
    records.append(Record("events.grid", 0, b"x", b'{"event_id": "no more"}'))
    as_of = grid_events[-1].occurred_at + timedelta(days=20)
    records.append(Record("events.grid", 0, CONTROL_KEY,
                          orjson.dumps({"run": "t", "clock": as_of.isoformat(), "final": True}),
                          control=True))
    return processor.process(records)


def test_adapter_events_fit_the_event_schema(grid_events):
    check = validator("event.schema.json")
    for event in grid_events:
        assert list(check.iter_errors(orjson.loads(event.to_json()))) == []


def test_what_the_model_refuses_the_event_schema_refuses(grid_events):
    good = orjson.loads(grid_events[0].to_json())
    for change in [{"type": "flew"}, {"occurred_at": "2026-10-03T09:15:00"},
                   {"occurred_at": "yesterday"}, {"phone": "13800138000"}, {"case_id": ""},
                   {"extension_days": 400}, {"source": "tv"}, {"reason": "x" * 501}]:
        bad = {**good, **change}
        with pytest.raises(Exception, match="canonical event"):
            Event.from_dict(bad)
        assert errors("event.schema.json", bad), change
    assert errors("event.schema.json", {k: v for k, v in good.items() if k != "occurred_at"})


def test_snapshots_alerts_rejects_and_controls_fit_their_schemas(worker_output):
    snapshots = [orjson.loads(value) for _, _, value in worker_output.snapshots]
    alerts = [orjson.loads(value) for _, _, value in worker_output.alerts]
    assert snapshots and alerts and worker_output.rejects
    for snapshot in snapshots:
        assert errors("case-snapshot.schema.json", snapshot) == []
    for alert in alerts:
        assert errors("alert.schema.json", alert) == []
    for key, value in worker_output.rejects:
        assert key == b"worker"
        assert errors("dead-letter.schema.json", orjson.loads(value)) == []
    for _, _, payload in worker_output.controls:
        assert errors("control-record.schema.json", orjson.loads(payload)) == []
        forwarded = {**orjson.loads(payload), "from": "events.grid"}
        assert errors("control-record.schema.json", forwarded) == []


def test_an_adapter_reject_fits_the_dead_letter_schema():
    reject = Reject("jn-grid", Source.GRID, "grid.jsonl", 7, "事件类型 '飞走' is unknown", "{...}")
    assert errors("dead-letter.schema.json", orjson.loads(reject.to_json())) == []
    assert errors("dead-letter.schema.json", {"reason": "no file, no line"})


def alert(**changes: object) -> dict:
    at = cn(2026, 10, 6, 18)
    fields: dict = {"alert_id": "grid:jn-grid:A:respond:0:red", "case_id": "grid:jn-grid:A",
                    "source": Source.GRID, "category": "other:", "milestone": Milestone.RESPOND,
                    "cycle": 0, "level": AlertLevel.RED, "due_at": at, "fires_at": at,
                    "emitted_at": at + timedelta(seconds=1)}
    return orjson.loads(Alert(**{**fields, **changes}).to_json())


def test_the_three_kinds_of_alert_record_are_told_apart():
    asyncapi = json.loads((CHECKED_IN / "asyncapi.json").read_text("utf-8"))
    messages = asyncapi["components"]["messages"]
    kinds = {name: messages[name]["payload"] for name in ("AlertFired", "AlertEnded", "AlertRetracted")}

    def kinds_of(record: dict) -> list[str]:
        return [name for name, payload in kinds.items()
                if not list(Draft202012Validator(payload, registry=neighbours()).iter_errors(record))]

    assert kinds_of(alert()) == ["AlertFired"]
    assert kinds_of(alert(ended_at=cn(2026, 10, 7, 9), end_reason=AlertEnd.MET)) == ["AlertEnded"]
    assert kinds_of(alert(retracted=True)) == ["AlertRetracted"]


def test_the_broker_value_schema_takes_events_and_controls_only(grid_events):
    check = Draft202012Validator(event_topic_value_schema())
    assert list(check.iter_errors(orjson.loads(grid_events[0].to_json()))) == []
    assert list(check.iter_errors({"run": "r", "clock": "2026-10-03T09:15:00+08:00", "final": True})) == []
    for bad in [{"run": "r"}, {"hello": "world"}, {**orjson.loads(grid_events[0].to_json()),
                                                   "type": "flew"}, "text", None]:
        assert list(check.iter_errors(bad)), bad


def test_the_openapi_document_is_valid_openapi_3_1():
    document = json.loads((CHECKED_IN / "openapi.json").read_text("utf-8"))
    assert document["openapi"] == "3.1.0"
    validate_openapi(document)


def test_the_data_package_and_its_examples_are_valid():
    report = frictionless.validate(str(CHECKED_IN / "datapackage.json"))
    assert report.valid, report.flatten(["type", "message"])
    assert report.stats["tasks"] == 4
