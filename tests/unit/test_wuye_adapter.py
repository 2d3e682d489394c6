from __future__ import annotations

import io
from datetime import datetime

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
             # twelve characters, not all digits: the reject still names the field
             ({**BODY, "community_code": "37010200200x"}, "community_code '37010200200x'"),
             ({**BODY, "community_code": "３７０１０２００２００３"}, "community_code"),
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


# per field: values it accepts (so a mutation also makes other valid events), then junk
VALID = {"order_id": ["WY7", " WY8 ", 17], "community_code": ["370102002003"],
         "event": ["created", "报修", "resolved", "feedback", "extended"],
         "time": ["2026-10-05T08:30:00+08:00", "2026-10-05T00:30:00Z"], "category": ["电梯故障", "其他"],
         "urgent": [True, False], "company_code": ["C009", " C010 "],
         "satisfaction": ["满意", "基本满意", "不满意"], "extension_days": [3, 365]}
JUNK = st.one_of(st.none(), st.booleans(), st.integers(-5, 500), st.text(max_size=30))
MUTATIONS = st.lists(st.sampled_from(sorted(VALID)), unique=True, max_size=4).flatmap(
    lambda keys: st.fixed_dictionaries({k: st.one_of(st.sampled_from(VALID[k]), JUNK) for k in keys}))


@settings(max_examples=300, deadline=None)
@given(MUTATIONS)
def test_mutated_bodies_are_an_event_with_their_values_or_a_reject_naming_the_field(mutation):
    """BODY is valid: after changing some of its fields, a reject must blame one of the changed
    fields, and an event must carry the body's values (DESIGN §5.3, worked out here)."""
    body = {**BODY, **mutation}
    (item,) = list(WuyeAdapter().parse(io.BytesIO(orjson.dumps(body)), "f"))
    if not isinstance(item, Event):
        assert any(key in item.reason for key in mutation), (item.reason, sorted(mutation))
        return

    def text(key: str) -> str | None:
        value = body.get(key)
        return str(value).strip() or None if value is not None else None

    assert item.case_id == f"property:wuye:{text('order_id')}"
    assert item.occurred_at == datetime.fromisoformat(str(body["time"]).strip())
    assert item.urgency == ("urgent" if body.get("urgent") is True else "normal")
    assert item.unit == text("company_code")
    community = text("community_code")
    assert (item.district, item.street, item.community) == (community[:6], community[:9], community)  # type: ignore[index]
    satisfaction = {"满意": "satisfied", "基本满意": "basically_satisfied", "不满意": "unsatisfied"}
    assert item.satisfaction == (satisfaction[text("satisfaction")] if text("satisfaction") else None)  # type: ignore[index]
    assert item.extension_days == (body["extension_days"] if item.type == "extended" else None)


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
