"""The simulated city's 退单 / 改派 / 挂起 (DESIGN §6a): realistic rates, the old feeds untouched
when it is off, and a 12345 circulation log that agrees with its order export. Figures are
counted from the raw lines and rows, not through the code that made them."""

from __future__ import annotations

import hashlib
import io
import re
from collections import Counter, defaultdict
from datetime import date

import orjson

from producers.base import ImportTally
from producers.hotline12345 import Hotline12345Adapter
from producers.hotline_flow import HotlineFlowAdapter
from producers.simulator import hotline_csv, simulate_grid, simulate_hotline, simulate_hotline_exports
from schemas import Event

NEW_GRID_STEPS = {"退回", "改派", "挂起", "解挂"}


def test_without_dispatch_the_feeds_are_byte_identical_to_before():
    # sha256 of the feeds of tests/fixtures/recorded (month grid; the city's grid and 12345
    # export), written by the simulator of commit 59f6c7e, before the dispatch steps existed
    month = simulate_grid(seed=11, start=date(2026, 9, 21), days=30, cases_per_day=10, districts=2)
    city_grid = simulate_grid(seed=23, start=date(2026, 9, 21), days=14, cases_per_day=20, districts=2)
    city_orders = simulate_hotline(seed=23, start=date(2026, 9, 21), days=14, cases_per_day=13,
                                   districts=2)
    assert hashlib.sha256(b"\n".join(month)).hexdigest() == (
        "d8f4bddc745c0655f67c2027986bb8a242cf01b5a42afe33e4d4bda7921aaec0")
    assert hashlib.sha256(b"\n".join(city_grid)).hexdigest() == (
        "4d4dd17c2b536b0a801058f5256f6bba9201cd54a2fe7fdb3cbff9c91595bbd1")
    assert hashlib.sha256(hotline_csv(city_orders, "gbk")).hexdigest() == (
        "c3c278feb5b85bae384b597de91fa028e9e3517215475b2c858bb0d09a735057")


def grid_records(dispatch: bool) -> list[dict]:
    lines = simulate_grid(seed=5, days=21, cases_per_day=60, districts=3, faults=False, dispatch=dispatch)
    return [orjson.loads(line) for line in lines]


def test_returns_redispatches_and_suspensions_at_realistic_rates():
    records = grid_records(dispatch=True)
    kinds = Counter(r["事件类型"] for r in records)
    dispatched = kinds["派单"]
    assert dispatched > 3000
    # a few per cent of dispatched cases each
    assert 0.02 < kinds["退回"] / dispatched < 0.06
    assert 0.02 < kinds["改派"] / dispatched < 0.07  # every return, and the centre's corrections
    assert kinds["改派"] > kinds["退回"]
    assert 0.015 < kinds["挂起"] / dispatched < 0.05
    assert 0.6 < kinds["解挂"] / kinds["挂起"] < 1
    # some units return far more than others: in every district the unit returning the most
    # returns at least three times the district's other units together, per case dispatched
    sent: Counter[str] = Counter(r["承办单位编码"] for r in records if r["事件类型"] == "派单")
    returned: Counter[str] = Counter(r["承办单位编码"] for r in records if r["事件类型"] == "退回")
    by_district: dict[str, list[str]] = defaultdict(list)
    for unit in sent:
        by_district[unit[1:7]].append(unit)
    assert len(by_district) == 3
    for units in by_district.values():
        worst = max(units, key=lambda u: returned[u] / sent[u])
        rest = [u for u in units if u != worst]
        rest_rate = sum(returned[u] for u in rest) / sum(sent[u] for u in rest)
        assert returned[worst] / sent[worst] > 3 * rest_rate
    # reasons are given, some with a phone number for the adapter to mask
    reasons = [r.get("说明") for r in records if r["事件类型"] in ("退回", "挂起")]
    assert all(reasons) and any("联系电话13" in text for text in reasons)


def test_the_rest_of_the_grid_feed_is_the_same_with_dispatch_on():
    off, on = grid_records(dispatch=False), grid_records(dispatch=True)
    same = [(r["事件ID"], r["事件类型"], r["发生时间"]) for r in on if r["事件类型"] not in NEW_GRID_STEPS]
    assert same == [(r["事件ID"], r["事件类型"], r["发生时间"]) for r in off]
    # after a re-dispatch the new unit answers and resolves; before it, the first one
    target = {r["工单编号"]: r["承办单位编码"] for r in on if r["事件类型"] == "改派"}
    first = {r["工单编号"]: r["承办单位编码"] for r in on if r["事件类型"] == "派单"}
    later = [r for r in on if r["事件类型"] in ("受理", "办结", "重办")]
    assert target and all(r["承办单位编码"] == target.get(r["工单编号"], first[r["工单编号"]]) for r in later)
    for r in on:
        if r["事件类型"] == "退回":  # the first unit hands it back, before the new one gets it
            assert r["承办单位编码"] == first[r["工单编号"]] != target[r["工单编号"]]


def test_circulation_log_agrees_with_the_order_export():
    exports = simulate_hotline_exports(seed=9, days=10, cases_per_day=40, districts=3, faults=False)
    faulty = simulate_hotline_exports(seed=9, days=10, cases_per_day=40, districts=3)
    middle = len(exports.flow) // 2
    assert faulty.flow[:middle + 1] + faulty.flow[middle + 2:-2] == exports.flow  # seeded: the same
    orders = {row["工单编号"]: row for row in exports.orders}
    flow_by_order: dict[str, list[dict[str, str]]] = defaultdict(list)
    for row in exports.flow:
        flow_by_order[row["工单编号"]].append(row)
    redispatched = shared = 0
    for order, steps in flow_by_order.items():
        row = orders[order]
        last_dispatch = [s for s in steps if s["操作类型"] in ("派单", "改派")][-1:]
        if last_dispatch:
            (step,) = last_dispatch
            # the order row shows its latest dispatch: time text and unit
            assert (row["派单时间"], row["承办单位编码"]) == (step["操作时间"], step["目标单位编码"])
            redispatched += step["操作类型"] == "改派"
        for column, kind in (("签收时间", "签收"), ("办结时间", "办结"), ("回访时间", "回访")):
            if row[column]:
                assert row[column] in {s["操作时间"] for s in steps if s["操作类型"] == kind}
                shared += 1
    assert redispatched > 10 and shared > 1000

    # through the adapters: the log's three faulty rows and one row logged twice; every step
    # the order row shows is the same (type, instant) in the log
    tally, seen = ImportTally(), set[str]()
    flow_events: set[tuple[str, str, object]] = set()
    for _, items in HotlineFlowAdapter().parse_rows(io.BytesIO(hotline_csv(faulty.flow, "gbk")), "flow.csv"):
        for item in tally.add(items, seen):
            flow_events.add((item.case_id, item.type.value, item.occurred_at))
    assert (tally.rejected, tally.duplicates) == (2, 1) and tally.balanced
    orders = io.BytesIO(hotline_csv(exports.orders, "gbk"))
    order_events = [e for e in Hotline12345Adapter(b"k").parse(orders, "o.csv")
                    if isinstance(e, Event) and e.type != "created"]
    assert len(order_events) > 2000
    missing = [e for e in order_events if (e.case_id, e.type.value, e.occurred_at) not in flow_events
               and not (e.type == "dispatched" and (e.case_id, "reassigned", e.occurred_at) in flow_events)
               and e.type != "cancelled"]
    assert missing == []
    reasons = [e.reason for e in HotlineFlowAdapter().parse(io.BytesIO(hotline_csv(exports.flow, "gbk")), "f")
               if isinstance(e, Event) and e.reason]
    assert any("联系电话＊＊＊" in r for r in reasons)
    assert not any(re.search(r"\d{11}", r) for r in reasons)
