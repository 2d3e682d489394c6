from __future__ import annotations

import io

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from producers.wuye import WuyeAdapter, body_to_event
from schemas import Event, InvalidRecord
from tests.conftest import cn

BODY = {"order_id": "WY1", "community_code": "370102001002", "event": "报修",
        "time": "2026-10-03T09:15:00+08:00", "category": "电梯故障", "urgent": True,
        "company_code": "C001"}


def test_good_body():
    event = body_to_event(BODY)
    assert event.case_id == "property:wuye:WY1" and event.type == "created"
    assert (event.district, event.street, event.community) == ("370102", "370102001", "370102001002")
    assert event.urgency == "urgent" and event.category == "P02" and event.unit == "C001"
    assert event.occurred_at == cn(2026, 10, 3, 9, 15)
    assert body_to_event(BODY).event_id == event.event_id
    assert body_to_event({**BODY, "event": "created"}).event_id == event.event_id


def test_bad_bodies_say_why():
    cases = [({**BODY, "event": "fly"}, "event"), ({**BODY, "time": "2026-10-03 09:15"}, "offset"),
             ({**BODY, "community_code": "3701"}, "12 digits"), ({**BODY, "urgent": "yes"}, "urgent"),
             ({**BODY, "phone": "13800138000"}, "unknown fields"),
             ({**BODY, "event": "延期"}, "extension_days"),
             ({k: v for k, v in BODY.items() if k != "order_id"}, "order_id")]
    for body, needle in cases:
        try:
            body_to_event(body)
        except InvalidRecord as exc:
            assert needle in exc.reason
        else:
            raise AssertionError(f"accepted {body}")


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300))
def test_arbitrary_lines_are_events_or_rejects(data):
    items = list(WuyeAdapter().parse(io.BytesIO(data), "f"))
    # JSON Lines end at "\n" (a "\r" before it is whitespace)
    assert len(items) == len([ln for ln in data.split(b"\n") if ln.strip()])


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.sampled_from(sorted(BODY) + ["satisfaction", "extension_days"]),
                       st.one_of(st.none(), st.booleans(), st.integers(-5, 500), st.text(max_size=30))))
def test_mutated_bodies_never_raise(mutation):
    (item,) = list(WuyeAdapter().parse(io.BytesIO(orjson.dumps({**BODY, **mutation})), "f"))
    assert isinstance(item, Event) or item.reason


def test_simulated_feed_faults_are_accounted():
    from producers.base import ImportTally
    from producers.simulator import simulate_property

    faulty, clean = simulate_property(days=2), simulate_property(days=2, faults=False)
    # the figures, from the two feeds alone: retried bodies, bodies the clean feed lacks, and
    # bodies that arrive after a later one (late webhooks)
    retried = len(faulty) - len(set(faulty))
    foreign = [line for line in faulty if line not in set(clean)]
    times = [orjson.loads(line)["time"] for line in faulty if line in set(clean)]
    assert retried >= 5 and len(foreign) >= 3
    assert sum(this > following for following, this in zip(times[1:], times, strict=False)) >= 10
    tally, seen = ImportTally(), set()
    for _, items in WuyeAdapter().parse_rows(io.BytesIO(b"\n".join(faulty)), "w.jsonl"):
        tally.add(items, seen)
    assert tally.balanced and tally.read == len(faulty)
    assert (tally.produced, tally.rejected, tally.duplicates) == (len(clean), len(foreign), retried)
    assert {"time", "unknown"} <= set(tally.reject_reasons)  # no offset; a phone field refused
