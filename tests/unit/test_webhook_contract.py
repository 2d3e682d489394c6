"""The webhook does what its OpenAPI document says: GET /openapi.json serves the checked-in
document, and every answer to the requests below has a documented status and a body that fits
the documented schema. In-process (aiohttp's test server), with a stand-in for the broker."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path

import orjson
import pytest
from aiohttp.test_utils import TestClient, TestServer
from jsonschema import Draft202012Validator
from openapi_spec_validator import validate as validate_openapi

from producers.webhook import (
    MAX_BODY,
    MAX_CLOCK_SKEW_SECONDS,
    PATH,
    RETRY_AFTER_SECONDS,
    DeliveryFailed,
    build_app,
    signature,
)
from schemas.event import Event

DOCUMENT = json.loads((Path(__file__).resolve().parents[2] / "schemas" / "json" / "openapi.json")
                      .read_text("utf-8"))
SECRET = b"firm-secret"
NOW = datetime(2026, 10, 3, 2, 0, tzinfo=UTC)
BODY = {"order_id": "WY9", "community_code": "370102001002", "event": "报修",
        "time": "2026-10-03T09:15:00+08:00", "category": "电梯故障", "urgent": True,
        "company_code": "C001"}


def fits(status: int, reply: bytes) -> None:
    """The answer's status is documented for the POST, and its body fits the schema."""
    responses = DOCUMENT["paths"][PATH]["post"]["responses"]
    assert str(status) in responses, f"{status} is not in the OpenAPI document"
    reference = responses[str(status)]["content"]["application/json"]["schema"]["$ref"]
    schema = {"$defs": DOCUMENT["components"]["schemas"],
              "$ref": reference.replace("#/components/schemas/", "#/$defs/")}
    assert list(Draft202012Validator(schema).iter_errors(orjson.loads(reply))) == []


def exchange(send: Callable[[Event], Awaitable[None]],
             requests: list[tuple[str, str, bytes, dict[str, str]]]) -> list[tuple[int, bytes, dict]]:
    async def run() -> list[tuple[int, bytes, dict]]:
        app = build_app({"C001": SECRET}, send, now=lambda: NOW)
        async with TestClient(TestServer(app)) as client:
            answers = []
            for method, path, body, headers in requests:
                response = await client.request(method, path, data=body, headers=headers)
                answers.append((response.status, await response.read(), dict(response.headers)))
            return answers

    return asyncio.run(run())


async def stored(_event: Event) -> None:
    return None


async def broker_down(_event: Event) -> None:
    raise DeliveryFailed("no broker acknowledgement within 10s")


def signed(body: bytes, secret: bytes = SECRET, at: float | None = None,
           content_type: str = "application/json") -> dict[str, str]:
    timestamp = str(int(NOW.timestamp() if at is None else at))
    return {"Content-Type": content_type, "X-Timestamp": timestamp,
            "X-Signature": signature(secret, timestamp, body)}


def test_the_served_document_is_the_checked_in_one():
    [(status, body, headers)] = exchange(stored, [("GET", "/openapi.json", b"", {})])
    assert status == 200 and headers["Content-Type"].startswith("application/json")
    assert json.loads(body) == DOCUMENT
    validate_openapi(json.loads(body))


@pytest.mark.parametrize(("body", "headers", "status"), [
    (orjson.dumps(BODY), None, 202),
    (orjson.dumps(BODY), {**signed(orjson.dumps(BODY)), "X-Signature": "sha256=00"}, 401),
    (orjson.dumps(BODY), signed(orjson.dumps(BODY), b"other firm"), 401),
    (orjson.dumps(BODY), {k: v for k, v in signed(orjson.dumps(BODY)).items() if k != "X-Timestamp"},
     401),
    (orjson.dumps(BODY), signed(orjson.dumps(BODY), at=NOW.timestamp() - MAX_CLOCK_SKEW_SECONDS - 60),
     401),
    (orjson.dumps(BODY), signed(orjson.dumps(BODY), at=NOW.timestamp() + 120), 202),
    (orjson.dumps(BODY), signed(orjson.dumps(BODY), content_type="text/plain"), 415),
    (orjson.dumps(BODY), signed(orjson.dumps(BODY), content_type="application/json; charset=utf-8"),
     202),
    (orjson.dumps({**BODY, "time": "1999-10-03T09:15:00+08:00"}), None, 422),
    (b"{" + b" " * MAX_BODY + b"}", None, 413),
    (orjson.dumps({**BODY, "event": "flew"}), None, 422),
    (orjson.dumps({**BODY, "phone": "13800138000"}), None, 422),
    (orjson.dumps({**BODY, "company_code": "C002"}), None, 422),
    (b"not json", None, 422),
])
def test_each_answer_is_documented_and_fits_its_schema(body, headers, status):
    [(got, reply, _)] = exchange(stored, [("POST", PATH, body, headers or signed(body))])
    assert got == status, reply
    fits(got, reply)


def test_a_broker_that_does_not_acknowledge_gives_the_documented_503():
    body = orjson.dumps(BODY)
    [(status, reply, headers)] = exchange(broker_down, [("POST", PATH, body, signed(body))])
    assert status == 503
    fits(status, reply)
    documented = DOCUMENT["paths"][PATH]["post"]["responses"]["503"]["headers"]
    assert set(documented) == {"Retry-After"}
    assert headers["Retry-After"] == str(RETRY_AFTER_SECONDS)

