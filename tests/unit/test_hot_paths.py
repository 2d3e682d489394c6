"""The worker's hot path (no model per record) gives what the models give: `parse_step` the
step of `Event`, and the same step or the same refusal whether it takes its one-pass way or
the field-by-field one; `snapshot_json` the `CaseSnapshot` fields; a stored state built step by
step the bytes a full encode writes."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta, timezone

import orjson
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from schemas.case import CaseSnapshot
from schemas.enums import EventType, Satisfaction, Source, Urgency
from schemas.event import Event
from streams.calendar import to_us
from streams.cases import distinct_steps, fold_steps
from streams.processor import CaseEntry
from streams.snapshots import _iso_text, snapshot_dict, snapshot_json
from streams.steps import STEP_FIELDS, Step, _fast_instant, parse_step
from tests.conftest import cn, ev


def _instant_text(moment: datetime, offset_minutes: int, form: int) -> str:
    """An instant in a form both the model and the worker read."""
    aware = moment.replace(tzinfo=timezone(timedelta(minutes=offset_minutes)))
    if form == 0:
        return aware.isoformat(timespec="seconds")
    if form == 1:
        return aware.isoformat(timespec="microseconds")
    if form == 2:
        return aware.isoformat(sep=" ", timespec="seconds")
    return aware.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


INSTANTS = st.builds(_instant_text, st.datetimes(datetime(2000, 1, 2), datetime(2099, 12, 30)),
                     st.sampled_from([480, 0, -300, 330]), st.integers(0, 3))
SHORT_TEXT = st.text(max_size=6)
VALID_EVENTS = st.fixed_dictionaries(
    {"event_id": st.text(min_size=1, max_size=8),
     "case_id": st.sampled_from(["grid:jn-grid:G1", "hotline:12345:H2"]),
     "source": st.sampled_from([s.value for s in Source]),
     "system": st.sampled_from(["jn-grid", "12345", "12345-flow", "wuye"]),
     "type": st.sampled_from([t.value for t in EventType]),
     "occurred_at": INSTANTS},
    optional={"schema_version": st.just(1), "district": st.none() | SHORT_TEXT,
              "street": st.none() | SHORT_TEXT, "community": st.none() | SHORT_TEXT,
              "grid": st.none() | SHORT_TEXT, "category": SHORT_TEXT,
              "urgency": st.sampled_from([u.value for u in Urgency]),
              "unit": st.none() | SHORT_TEXT,
              "satisfaction": st.none() | st.sampled_from([s.value for s in Satisfaction]),
              "extension_days": st.none() | st.integers(0, 365), "caller_hash": st.none() | SHORT_TEXT,
              "due_at": st.none() | INSTANTS, "reopen_count": st.none() | st.integers(0, 1000),
              "reason": st.none() | st.text(max_size=20)})
# values the model refuses (or takes only in a form the worker refuses as well)
BAD_VALUES = {
    "event_id": ["", 5, None, ["x"]], "case_id": ["", None, 3], "source": ["mars", 1, None, ["grid"]],
    "system": ["", None, 7], "type": ["exploded", None, 7, {"a": 1}],
    "occurred_at": ["2026-10-12T08:00:00", "yesterday", "2026-13-01T00:00:00+08:00",
                    "1999-12-31T23:59:59+08:00", "2100-01-01T00:00:00+08:00",
                    "2026-10-12T24:00:00+08:00", 1700000000, None, ["2026-10-12T08:00:00+08:00"]],
    "district": [5, ["a"]], "street": [1.5], "community": [True], "grid": [{"g": 1}],
    "category": [None, 3], "urgency": ["soon", 2, [1], None], "unit": [3, ["u"]],
    "satisfaction": ["meh", 1], "extension_days": [-1, 366, True, 1.5, "3"],
    "reopen_count": [-1, 1001, False, "2"], "due_at": ["soon", 5, "2026-10-12T08:00:00"],
    "reason": ["x" * 501, 7], "caller_hash": [1], "schema_version": [2, "one", None],
    "phone": ["13800138000"]}
MUTATIONS = st.lists(st.sampled_from(
    [(name, value) for name, values in BAD_VALUES.items() for value in values]
    + [(name, ...) for name in ("event_id", "case_id", "source", "system", "type", "occurred_at")]),
    max_size=2)


def _mutated(event: dict, mutations: list) -> dict:
    out = dict(event)
    for name, value in mutations:
        if value is ...:
            out.pop(name, None)
        else:
            out[name] = value
    return out


def _outcome(raw: bytes, cache: dict) -> tuple:
    try:
        case_id, step = parse_step(raw, cache)
    except Exception as exc:  # noqa: BLE001 - the refusal itself is compared
        return ("refused", type(exc).__name__, str(exc))
    return ("taken", case_id, tuple(getattr(step, name) for name in STEP_FIELDS))


def test_the_one_pass_parse_reads_every_field_of_the_event_model_in_its_place():
    """It takes an event only when every key is one of the fields it unpacks; a field it did
    not unpack would send every event carrying it the slow way, one out of place would read a
    field as another."""
    import ast
    from pathlib import Path

    from streams.steps import _WIRE_FIELDS

    assert sorted(_WIRE_FIELDS) == sorted(Event.model_fields)
    tree = ast.parse((Path(__file__).parents[2] / "streams" / "steps.py").read_text())
    function = next(node for node in tree.body
                    if isinstance(node, ast.FunctionDef) and node.name == "_parse_common")
    unpacked = next(node.targets[0] for node in ast.walk(function)
                    if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Tuple)
                    and isinstance(node.value, ast.Name) and node.value.id == "values")
    assert [name.id.rstrip("_") for name in unpacked.elts] == _WIRE_FIELDS


@settings(max_examples=2000, deadline=None)
@given(st.datetimes(datetime(1, 1, 2), datetime(9999, 12, 30)), st.integers(-(23 * 60 + 59), 23 * 60 + 59))
def test_the_wire_form_is_read_digit_by_digit_to_the_instant_datetime_reads(moment, offset_minutes):
    aware = moment.replace(microsecond=0, tzinfo=timezone(timedelta(minutes=offset_minutes)))
    assert _fast_instant(aware.isoformat()) == to_us(aware)


@settings(max_examples=2000, deadline=None)
@given(st.datetimes(datetime(1, 1, 2), datetime(9999, 12, 30)), st.integers(0, 24),
       st.sampled_from("0123456789:-+TZ ./٣"), st.sampled_from(["+08:00", "-05:30", "+00:00"]))
def test_a_changed_character_is_read_only_when_datetime_reads_it_the_same(moment, at, char, offset):
    text = moment.strftime("%Y-%m-%dT%H:%M:%S") + offset
    text = text[:at] + char + text[at + 1:]
    found = _fast_instant(text)
    if found is not None:  # None sends the text to the model's parser (the slow path)
        assert found == to_us(datetime.fromisoformat(text)), text


@settings(max_examples=400, deadline=None)
@given(VALID_EVENTS, MUTATIONS)
def test_the_one_pass_and_the_field_by_field_parse_agree(event, mutations):
    """With the attributes already known (the one-pass way) or not (every field checked), the
    same step, or the same refusal with the same reason."""
    warm: dict = {}
    parse_step(orjson.dumps(event), warm)
    raw = orjson.dumps(_mutated(event, mutations))
    assert _outcome(raw, warm) == _outcome(raw, {})


@pytest.mark.parametrize(("name", "value"), [
    (name, value) for name, values in BAD_VALUES.items() for value in values])
def test_every_bad_value_is_refused_the_same_way_whichever_path_reads_it(name, value):
    event = {"event_id": "e1", "case_id": "grid:jn-grid:G1", "source": "grid", "system": "jn-grid",
             "type": "extended", "occurred_at": "2026-10-12T08:00:00+08:00", "extension_days": 2,
             "reopen_count": 1, "due_at": "2026-10-20T08:00:00+08:00", "reason": "r",
             "satisfaction": "satisfied", "unit": "U1"}
    warm: dict = {}
    assert _outcome(orjson.dumps(event), warm)[0] == "taken"
    raw = orjson.dumps({**event, name: value})
    assert _outcome(raw, warm)[0] == "refused"
    assert _outcome(raw, warm) == _outcome(raw, {})


@settings(max_examples=400, deadline=None)
@given(VALID_EVENTS, MUTATIONS, st.booleans())
def test_the_worker_takes_only_what_the_model_takes_and_reads_it_the_same(event, mutations, warm):
    data = _mutated(event, mutations)
    cache: dict = {}
    if warm:
        parse_step(orjson.dumps(event), cache)
    try:
        model = Event.model_validate(data)
    except ValidationError:
        model = None
    outcome = _outcome(orjson.dumps(data), cache)
    if model is None:
        assert outcome[0] == "refused", f"the worker took what the model refuses: {data}"
    elif outcome[0] == "taken":
        expected = Step.of(model)
        assert outcome[1] == model.case_id
        assert outcome[2] == tuple(getattr(expected, name) for name in STEP_FIELDS)
    if not mutations:
        assert outcome[0] == "taken"


EVENT_KINDS = ["created", "dispatched", "responded", "resolved", "feedback", "reopened", "extended",
               "supervised", "cancelled", "closed", "returned", "reassigned", "suspended", "resumed"]


CHINA = timezone(timedelta(hours=8))


@settings(max_examples=2000, deadline=None)
@given(st.datetimes(datetime(1900, 1, 1), datetime(2200, 12, 31), timezones=st.just(UTC)),
       st.sampled_from([0, 1, 2]))
def test_instant_text_is_what_datetime_writes(moment, precision):
    """The snapshot's integer-built ISO text equals `datetime.isoformat` in China time, with and
    without microseconds, on both sides of midnight and of the epoch."""
    if precision == 0:
        moment = moment.replace(microsecond=0)
    elif precision == 1:
        moment = moment.replace(microsecond=moment.microsecond // 1000 * 1000)
    expected = moment.astimezone(CHINA).isoformat()
    assert _iso_text(to_us(moment)) == expected
    assert datetime.fromisoformat(expected) == moment


@st.composite
def histories(draw):
    """One case's events (every type; areas filled in by later events, several units)."""
    start = cn(2026, 9, 24, 8, 0) + timedelta(hours=draw(st.integers(0, 400)))
    events = [ev("e0", "created", start, unit="U0", district=draw(st.none() | st.just("370102")),
                 urgency=draw(st.sampled_from(["urgent", "normal", "complex"])))]
    for index in range(draw(st.integers(0, 10))):
        kind = draw(st.sampled_from(EVENT_KINDS[1:]))
        extra: dict = {}
        if kind in ("dispatched", "reassigned", "returned"):
            extra["unit"] = draw(st.sampled_from(["U1", "U2", "单位\"3\""]))
        if kind == "extended":
            extra["extension_days"] = draw(st.integers(1, 5))
        if kind == "feedback":
            extra["satisfaction"] = draw(st.sampled_from(["satisfied", "unsatisfied"]))
        if draw(st.booleans()):
            extra["district"] = "370103"
            extra["grid"] = "370103001001001"
        at = start + timedelta(minutes=draw(st.integers(-30, 20 * 24 * 60)))
        events.append(ev(f"e{index + 1}", kind, at, **extra))
    return events


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(histories(), st.lists(st.integers(0, 40 * 24), min_size=1, max_size=4))
def test_snapshot_json_is_the_snapshot_model(policy, calendar, events, hours):
    """Byte for byte the dict form (what `CaseSnapshot` validates), as the worker's case grows
    step by step (the cached leading fields follow the attributes later steps fill in)."""
    ordered = distinct_steps(Step.of(e) for e in events if e.occurred_at >= events[0].occurred_at)
    state = fold_steps(events[0].case_id, ordered[:1], policy, calendar)
    for count in range(1, len(ordered) + 1):
        if count > 1:
            state.apply(ordered[count - 1])
        for hour in hours:
            clock = ordered[0].at + hour * 3_600_000_000
            _, _, escalation = state.evaluate({}, clock)
            got = snapshot_json(state, clock, escalation)
            assert got == orjson.dumps(snapshot_dict(state, clock, escalation))
            CaseSnapshot.model_validate_json(got)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(histories(), st.randoms(use_true_random=False))
def test_a_state_encoded_step_by_step_is_the_full_encoding(events, rng: random.Random):
    """Steps added in any order (earlier ones move every row; a restated one keeps its place):
    after each, the stored bytes equal a fresh encode of the same steps."""
    arrivals = [Step.of(e) for e in events]
    rng.shuffle(arrivals)
    restated = arrivals[rng.randrange(len(arrivals))]
    arrivals.append(Step(restated.event_id, restated.kind, restated.at, restated.attrs,
                         restated.unit, restated.satisfaction, restated.extension_days, 1))
    entry = CaseEntry(2)
    entry.sent = {0: [to_us(cn(2026, 9, 25)), to_us(cn(2026, 9, 26)), 0]}
    for step in arrivals:
        entry.add(step, entry.steps.get(step.event_id))
        entry.encode()
        fresh = CaseEntry(2)
        fresh.steps = dict(entry.steps)
        fresh.sent = entry.sent
        assert entry.encode() == fresh.encode()
    again = CaseEntry.decode(entry.encode())
    assert all(again.steps[k].same(v) for k, v in entry.steps.items())


# time texts in forms Python's fromisoformat reads but the model may not (or the other way)
ODD_TIMES = ["20261012T080000+08:00", "2026-10-12T08:00:00+08", "2026-10-12T08+08:00",
             "2026-W42-1T08:00:00+08:00", "2026-285T08:00:00+08:00", "2026-10-12T08:00:00+08:00:30",
             "2026-10-12T08:00+08:00", "2026-10-12 08:00:00+08:00", "2026-10-12T08:00:00,5+08:00",
             "2026-10-12T08:00:00+0800", "2026-10-12T08:00:00z", "2026-10-12t08:00:00Z",
             "2026-10-12T08:00:00.123456789+08:00", "1760227200", "2026-10-12T08:00:00",
             "2026-02-29T08:00:00+08:00", "2026-10-12T08:00:00+24:00"]


@pytest.mark.parametrize("text", ODD_TIMES)
@pytest.mark.parametrize("field", ["occurred_at", "due_at"])
def test_a_time_in_any_form_is_taken_by_the_worker_exactly_when_the_model_takes_it(text, field):
    data = {"event_id": "e1", "case_id": "grid:jn-grid:G1", "source": "grid", "system": "jn-grid",
            "type": "extended", "occurred_at": "2026-10-12T08:00:00+08:00", field: text}
    try:
        model = Event.model_validate(data)
    except ValidationError:
        model = None
    outcome = _outcome(orjson.dumps(data), {})
    if model is None:
        assert outcome[0] == "refused", outcome
        assert field in outcome[2]
    else:
        assert outcome[0] == "taken", outcome
        expected = Step.of(model)
        assert outcome[2] == tuple(getattr(expected, name) for name in STEP_FIELDS)


@settings(max_examples=3000, deadline=None)
@given(st.integers(0, 1 << 50), st.integers(0, 1 << 20), st.integers(1, 1 << 20))
def test_a_limit_is_scaled_exactly_in_64_bit_integers_or_past_them(micros, num, den):
    """`num / den` of a limit, rounded half up, as Fraction computes it, whichever integers the
    compiled worker uses (64-bit for real limits and fractions, Python's beyond them)."""
    from fractions import Fraction
    from math import floor

    from streams.calendar import day_start_us
    from streams.sla import scale_micros

    assert scale_micros(micros, num, den) == floor(Fraction(micros * num, den) + Fraction(1, 2))
    day = micros % 80_000
    assert day_start_us(day) == day * 86_400_000_000 - 8 * 3_600_000_000


@settings(max_examples=400, deadline=None)
@given(VALID_EVENTS)
def test_an_event_of_known_attributes_takes_the_one_pass_way(event):
    """Once its attributes are known, an event without nulls is taken by the one-pass parse
    (were its attributes key or its checks to drift from the checked path's, every event would
    take the slow way and every other test here would still pass)."""
    from streams.steps import _parse_common

    event = {name: value for name, value in event.items() if value is not None}
    # the wire form (to the second, with an offset); others go to the model's parser
    assume(all(len(event[name]) == 25 and event[name][10] == "T" and event[name][19] in "+-"
               for name in ("occurred_at", "due_at") if name in event))
    warm: dict = {}
    taken = _outcome(orjson.dumps(event), warm)
    found = _parse_common(orjson.loads(orjson.dumps(event)), warm)
    assert found is not None
    assert ("taken", found[0], tuple(getattr(found[1], name) for name in STEP_FIELDS)) == taken
