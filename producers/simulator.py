"""A simulated city for demos, tests and benchmarks: seeded and deterministic.

Districts -> streets -> communities -> grids with real-looking codes, handling units with their
own speed and quality, daily and weekly arrival curves, reopenings, extensions, cancellations,
duplicates, late (out-of-order) lines and, on request, a few malformed lines.

With `dispatch=True` the dispatch centre's work is in the feeds too (DESIGN §6a): units return
cases (退单; one unit per district far more often than the rest), the centre re-dispatches them
(改派) or corrects a dispatch itself, and cases are suspended (挂起) and resumed (解挂). It draws
from its own random stream, so every other draw is the same with or without it, and without it
the feeds are byte for byte what they were before it existed.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

import orjson

from schemas.catalog import load_catalog
from streams.calendar import CHINA_TZ

# Jinan's districts (national statistical division codes)
DISTRICTS = [
    ("370102", "历下区"),
    ("370103", "市中区"),
    ("370104", "槐荫区"),
    ("370105", "天桥区"),
    ("370112", "历城区"),
]
# arrival weight per hour of day: quiet nights, a morning and an afternoon peak
HOUR_WEIGHTS = [1, 1, 1, 1, 1, 2, 4, 8, 14, 16, 15, 12, 9, 11, 13, 14, 12, 10, 8, 6, 5, 3, 2, 1]
WEEKEND_FACTOR = 0.6


@dataclass(frozen=True)
class Unit:
    code: str
    name: str
    district: str
    speed: float  # multiplies every delay: > 1 is slow
    quality: float  # probability of a satisfied citizen


@dataclass(frozen=True)
class City:
    grids: list[str]
    units: dict[str, list[Unit]]  # district -> units

    @property
    def districts(self) -> list[str]:
        return sorted(self.units)


def build_city(rng: random.Random, districts: int = 3) -> City:
    grids: list[str] = []
    units: dict[str, list[Unit]] = {}
    for district, _name in DISTRICTS[:districts]:
        for street in range(1, 4):
            for community in range(1, 4):
                for grid in range(1, 5):
                    grids.append(f"{district}{street:03d}{community:03d}{grid:03d}")
        units[district] = []
        for index, dept in enumerate(["城管局", "住建局", "应急局", "街道办", "物业公司"]):
            slow = rng.random() < 0.25
            units[district].append(
                Unit(
                    code=f"U{district}{index + 1:02d}",
                    name=f"{dept}",
                    district=district,
                    speed=rng.uniform(2.0, 4.0) if slow else rng.uniform(0.4, 1.1),
                    quality=rng.uniform(0.55, 0.75) if slow else rng.uniform(0.8, 0.97),
                )
            )
    return City(grids, units)


Step = tuple[str, datetime, dict[str, object]]  # canonical type, time, extra fields

HOTLINE_CENTRE = ("C12345", "12345热线中心")
RETURN_REASONS = ["不属于本单位职责范围", "地址不在本辖区，请改派属地街道",
                  "事项涉及多个部门，建议由区级部门牵头", "诉求与在办工单重复", "需专业执法部门处理"]
SUSPEND_REASONS = ["等待居民补充材料", "需第三方检测机构出具报告", "涉及诉讼程序，等待法院裁定",
                   "居民外出，约定返回后上门（联系电话{phone}）"]
MIN_GAP = timedelta(minutes=2)  # between inserted steps: a time written to the minute keeps its order


def _between(rng: random.Random, after: datetime, before: datetime, low: float, high: float) -> datetime:
    at = after + (before - after) * rng.uniform(low, high)
    return min(max(at, after + MIN_GAP), before - MIN_GAP)


@dataclass
class DispatchCentre:
    """Returns, re-dispatches and suspensions of a simulated city, at realistic rates: about 4%
    of dispatched cases are returned (one unit per district returns 8-18% of its cases, the
    others 0.3-3%), 1% are re-dispatched by the centre itself, 3% are suspended (15% of those
    never resumed: they end at the policy's max_suspension)."""

    rng: random.Random
    units: dict[str, list[Unit]]
    return_rate: dict[str, float]

    @classmethod
    def for_city(cls, city: City, seed: int) -> DispatchCentre:
        rng = random.Random(seed * 7907 + 5)
        rates: dict[str, float] = {}
        for district in city.districts:
            units = city.units[district]
            refuser = rng.randrange(len(units))
            for index, unit in enumerate(units):
                rates[unit.code] = rng.uniform(0.08, 0.18) if index == refuser else rng.uniform(0.003, 0.03)
        return cls(rng, city.units, rates)

    def handover(self, unit: Unit, dispatched: datetime, responded: datetime) -> tuple[list[Step], Unit]:
        """Returned / reassigned steps between the dispatch and the response, and the unit that
        responds."""
        rng = self.rng
        others = [u for u in self.units[unit.district] if u.code != unit.code]
        returned, corrected = rng.random() < self.return_rate[unit.code], rng.random() < 0.01
        if not others or responded - dispatched < timedelta(minutes=30) or not (returned or corrected):
            return [], unit
        holder = rng.choice(others)
        steps: list[Step] = []
        at = dispatched
        if returned:
            at = _between(rng, dispatched, responded, 0.1, 0.4)
            steps.append(("returned", at, {"unit": unit, "reason": rng.choice(RETURN_REASONS)}))
        steps.append(("reassigned", _between(rng, at, responded, 0.2, 0.7), {"unit": holder}))
        return steps, holder

    def suspension(self, responded: datetime, resolved: datetime, holder: Unit) -> list[Step]:
        """A suspension between the response and the resolution, most of them resumed."""
        rng = self.rng
        if rng.random() >= 0.03 or resolved - responded < timedelta(hours=2):
            return []
        reason = rng.choice(SUSPEND_REASONS).format(phone=f"13{rng.randrange(10**9):09d}")
        at = _between(rng, responded, resolved, 0.1, 0.4)
        steps: list[Step] = [("suspended", at, {"unit": holder, "reason": reason})]
        if rng.random() >= 0.15:
            steps.append(("resumed", _between(rng, at, resolved, 0.5, 0.95), {"unit": holder}))
        return steps

    def add_steps(self, steps: list[Step], unit: Unit) -> list[Step]:
        """A case's life with the centre's steps in it, every step from the dispatch on naming
        its unit: the target of a dispatch or re-dispatch, else the holder."""
        first = {kind: at for kind, at, _ in reversed(steps)}
        if "dispatched" not in first:
            return steps
        handover, holder = self.handover(unit, first["dispatched"], first["responded"])
        pauses = self.suspension(first["responded"], first["resolved"], holder) if "resolved" in first else []
        out: list[Step] = []
        for kind, at, extra in steps:
            if kind == "dispatched":
                out.append((kind, at, {**extra, "unit": unit}))
                out.extend(handover)
            elif kind == "responded":
                out.append((kind, at, {**extra, "unit": holder}))
                out.extend(pauses)
            else:
                out.append((kind, at, {**extra, "unit": holder} if kind != "created" else extra))
        return out


GRID_STEP_NAMES = {"returned": "退回", "reassigned": "改派", "suspended": "挂起", "resumed": "解挂"}


def _arrival_times(rng: random.Random, start: date, days: int, per_day: int) -> list[datetime]:
    times: list[datetime] = []
    total_weight = sum(HOUR_WEIGHTS)
    for offset in range(days):
        day = start + timedelta(days=offset)
        factor = WEEKEND_FACTOR if day.weekday() >= 5 else 1.0
        count = max(0, round(rng.gauss(per_day * factor, math.sqrt(per_day))))
        for _ in range(count):
            hour = rng.choices(range(24), HOUR_WEIGHTS)[0]
            moment = datetime.combine(day, time(hour), CHINA_TZ) + timedelta(seconds=rng.randrange(3600))
            times.append(moment)
    del total_weight
    return sorted(times)


def _fmt(moment: datetime) -> str:
    return moment.astimezone(CHINA_TZ).strftime("%Y-%m-%d %H:%M:%S")


def simulate_grid(
    seed: int = 7,
    start: date = date(2026, 9, 28),
    days: int = 7,
    cases_per_day: int = 200,
    districts: int = 3,
    faults: bool | FeedFaults = True,
    dispatch: bool = False,
) -> list[bytes]:
    """jn-grid JSON Lines for a simulated city: lines in arrival order, not strictly in time.
    With `dispatch`, also 退回 / 改派 / 挂起 / 解挂 lines (see DispatchCentre). `faults`: the
    default ones (True), none (False) or as often as given; the clean lines are the same."""
    rng = random.Random(seed)
    city = build_city(rng, districts)
    centre = DispatchCentre.for_city(city, seed) if dispatch else None
    catalog = load_catalog().items["grid"]
    end = datetime.combine(start + timedelta(days=days), time(0), CHINA_TZ)
    lines: list[tuple[datetime, bytes]] = []
    urgency_names = ["紧急", "一般", "疑难"]
    for number, created in enumerate(
        _arrival_times(rng, start, days, cases_per_day * districts), start=1
    ):
        grid = rng.choice(city.grids)
        unit = rng.choice(city.units[grid[:6]])
        item = rng.choice(catalog)
        order = f"WG{created:%Y%m%d}{number:06d}"
        urgency = rng.choices(urgency_names, [1, 8, 1])[0]
        base = {
            "工单编号": order, "网格编码": grid, "事项大类": item.major, "事项小类": item.item,
            "紧急程度": urgency,
        }
        seq = 0

        def emit(kind: str, at: datetime, order: str = order, base: dict[str, str] = base,
                 **extra: object) -> None:
            nonlocal seq
            seq += 1
            if at >= end:
                return
            record: dict[str, object] = {
                "事件ID": f"{order}-{seq:02d}", "事件类型": kind, "发生时间": _fmt(at), **base}
            record.update(extra)
            lines.append((at, orjson.dumps(record)))

        def emit_steps(steps: list[Step], order: str = order, base: dict[str, str] = base) -> None:
            for kind, at, extra in steps:  # at most one of each kind per case: ids by kind
                if at >= end:
                    return
                step_unit = extra["unit"]
                assert isinstance(step_unit, Unit)
                record: dict[str, object] = {
                    "事件ID": f"{order}-{kind}", "事件类型": GRID_STEP_NAMES[kind],
                    "发生时间": _fmt(at), **base, "承办单位编码": step_unit.code, "承办单位": step_unit.name}
                if "reason" in extra:
                    record["说明"] = extra["reason"]
                lines.append((at, orjson.dumps(record)))

        def hours(mean: float, unit: Unit = unit) -> timedelta:
            return timedelta(hours=rng.expovariate(1.0 / (mean * unit.speed)))

        emit("上报", created)
        if rng.random() < 0.02:
            emit("作废", created + timedelta(minutes=rng.randint(5, 120)))
            continue
        at = created + timedelta(minutes=rng.randint(2, 40))
        emit("派单", at, 承办单位编码=unit.code, 承办单位=unit.name)
        dispatched_at = at
        at += hours(6)
        holder = unit
        if centre is not None:
            handover, holder = centre.handover(unit, dispatched_at, at)
            emit_steps(handover)
        emit("受理", at, 承办单位编码=holder.code)
        if rng.random() < 0.05:
            emit("延期", at + timedelta(hours=2), 延期天数=rng.randint(1, 3), 承办单位编码=holder.code)
        responded_at = at
        at += hours(20)
        if centre is not None:
            emit_steps(centre.suspension(responded_at, at, holder))
        cycles = 0
        while True:
            emit("办结", at, 承办单位编码=holder.code)
            at += timedelta(hours=rng.uniform(2, 40))
            happy = rng.random() < unit.quality
            verdict = "满意" if happy else rng.choice(["基本满意", "不满意", "不满意"])
            emit("回访", at, 满意度=verdict)
            if verdict == "不满意" and cycles == 0 and rng.random() < 0.5:
                cycles += 1
                at += timedelta(hours=rng.uniform(1, 6))
                emit("重办", at, 承办单位编码=holder.code)
                at += hours(24)
                continue
            break
        emit("结案", at + timedelta(hours=rng.uniform(1, 12)))
    lines.sort(key=lambda pair: pair[0])
    out = [line for _, line in lines]
    if faults:
        out = _add_faults(rng, out, faults=faults if isinstance(faults, FeedFaults) else FeedFaults())
    return out


GRID_MALFORMED = [
    b"{not json", b'{"\xe4\xba\x8b\xe4\xbb\xb6ID": "x"}', b'["a list"]',
    '{"事件ID":"bad-1","工单编号":"WGX","事件类型":"飞走","发生时间":"2026-10-01 10:00:00"}'.encode(),
]
PROPERTY_MALFORMED = [
    b'{"order_id": "WY-cut", "community_code": "3701020010',  # a body cut off in transit
    b'{"order_id": "WY-bad", "community_code": "370102001001", "event": "\xe6\x8a\xa5\xe4\xbf\xae",'
    b' "time": "yesterday", "category": "x", "urgent": false, "company_code": "C1"}',
    b'{"order_id": "", "community_code": "1", "event": "?", "time": "2026-10-01T10:00:00+08:00"}',
]


@dataclass(frozen=True)
class FeedFaults:
    """How often a feed's faults come, as one in N of its clean lines: lines moved later (by 1
    to 30 lines), lines sent twice, and malformed lines added (at least one)."""

    moved_every: int = 50
    duplicate_every: int = 100
    malformed_every: int = 1000


def _add_faults(rng: random.Random, lines: list[bytes], malformed: list[bytes] = GRID_MALFORMED,
                faults: FeedFaults = FeedFaults()) -> list[bytes]:
    """Lines moved later, duplicated and malformed ones added, as often as `faults` says (by
    default about 2 %, 1 % and 0.1 %)."""
    result = list(lines)
    for index in sorted(rng.sample(range(len(lines)), k=len(lines) // faults.moved_every),
                        reverse=True):
        line = result.pop(index)
        result.insert(min(len(result), index + rng.randint(1, 30)), line)
    for index in sorted(rng.sample(range(len(result)), k=len(lines) // faults.duplicate_every),
                        reverse=True):
        result.insert(index + 1, result[index])
    for _ in range(max(1, len(lines) // faults.malformed_every)):
        result.insert(rng.randrange(len(result)), rng.choice(malformed))
    return result


def lifecycle(rng: random.Random, created: datetime, unit: Unit, *, respond_hours: float,
              resolve_hours: float) -> list[Step]:
    """One case's life: dispatch, response, maybe an extension, resolution, a survey, maybe a
    reopen after an unhappy one, closing; a few are cancelled."""
    def delay(mean: float) -> timedelta:
        return timedelta(hours=rng.expovariate(1.0 / (mean * unit.speed)))

    steps: list[Step] = [("created", created, {})]
    if rng.random() < 0.02:
        steps.append(("cancelled", created + timedelta(minutes=rng.randint(5, 120)), {}))
        return steps
    at = created + timedelta(minutes=rng.randint(2, 40))
    steps.append(("dispatched", at, {}))
    at += delay(respond_hours)
    steps.append(("responded", at, {}))
    if rng.random() < 0.05:
        steps.append(("extended", at + timedelta(hours=2), {"days": rng.randint(1, 3)}))
    at += delay(resolve_hours)
    for cycle in range(2):
        steps.append(("resolved", at, {}))
        at += timedelta(hours=rng.uniform(2, 40))
        verdict = "satisfied" if rng.random() < unit.quality else rng.choice(
            ["basically_satisfied", "unsatisfied", "unsatisfied"])
        steps.append(("feedback", at, {"satisfaction": verdict}))
        if verdict != "unsatisfied" or cycle == 1 or rng.random() < 0.5:
            break
        at += timedelta(hours=rng.uniform(1, 6))
        steps.append(("reopened", at, {}))
        at += delay(resolve_hours)
    steps.append(("closed", at + timedelta(hours=rng.uniform(1, 12)), {}))
    return steps


SATISFACTION_CN = {"satisfied": "满意", "basically_satisfied": "基本满意", "unsatisfied": "不满意"}
SURNAMES = "王李张刘陈杨黄赵吴周"
GIVEN = "伟芳娜敏静丽强磊洋艳"


def simulate_hotline(seed: int = 7, start: date = date(2026, 9, 28), days: int = 7,
                     cases_per_day: int = 80, districts: int = 3,
                     snapshot_at: datetime | None = None, faults: bool = True,
                     dispatch: bool = False) -> list[dict[str, str]]:
    """12345 work-order export rows as of `snapshot_at` (default: the end of the period). Rows
    carry realistic personal data (caller, phone, ID numbers in the text) that must never
    leave the adapter. With `dispatch`, the orders of `simulate_hotline_exports`."""
    return simulate_hotline_exports(seed, start, days, cases_per_day, districts, snapshot_at,
                                    faults, dispatch).orders


@dataclass(frozen=True)
class HotlineExports:
    orders: list[dict[str, str]]  # the work-order export (12345)
    flow: list[dict[str, str]]  # its circulation log (12345-flow), in time order; empty without dispatch


FLOW_COLUMNS = ("工单编号", "操作时间", "操作类型", "操作单位编码", "操作单位", "目标单位编码", "目标单位",
                "延期天数", "满意度", "说明")
FLOW_STEP_NAMES = {"dispatched": "派单", "responded": "签收", "returned": "退单", "reassigned": "改派",
                   "suspended": "挂起", "resumed": "解挂", "extended": "延期", "resolved": "办结",
                   "feedback": "回访", "reopened": "重办", "cancelled": "作废"}
BY_THE_CENTRE = frozenset({"dispatched", "reassigned", "feedback", "reopened", "cancelled"})
TO_A_UNIT = frozenset({"dispatched", "reassigned"})


def _flow_row(order: str, kind: str, text: str, extra: dict[str, object]) -> dict[str, str]:
    row = dict.fromkeys(FLOW_COLUMNS, "")
    unit = extra.get("unit")
    operator = HOTLINE_CENTRE if kind in BY_THE_CENTRE or not isinstance(unit, Unit) else (
        unit.code, unit.name)
    row.update({"工单编号": order, "操作时间": text, "操作类型": FLOW_STEP_NAMES[kind],
                "操作单位编码": operator[0], "操作单位": operator[1]})
    if kind in TO_A_UNIT and isinstance(unit, Unit):
        row["目标单位编码"], row["目标单位"] = unit.code, unit.name
    if kind == "extended":
        row["延期天数"] = str(extra["days"])
    if kind == "feedback":
        row["满意度"] = SATISFACTION_CN[str(extra["satisfaction"])]
    if "reason" in extra:
        row["说明"] = str(extra["reason"])
    return row


def simulate_hotline_exports(seed: int = 7, start: date = date(2026, 9, 28), days: int = 7,
                             cases_per_day: int = 80, districts: int = 3,
                             snapshot_at: datetime | None = None, faults: bool = True,
                             dispatch: bool = True) -> HotlineExports:
    """The 12345 order export and, with `dispatch`, its circulation log as of `snapshot_at`.

    A step in both (派单, 签收, 办结, 回访 of the latest cycle) is written with the same time
    text in both, so both read as the same instant: the same step seen through two exports. An
    order row shows its latest dispatch: after a re-dispatch, 派单时间 and 承办单位 are the 改派's."""
    rng = random.Random(seed * 7919 + 1)
    city = build_city(random.Random(seed), districts)
    centre = DispatchCentre.for_city(city, seed) if dispatch else None
    items = load_catalog().items["hotline"]
    end = snapshot_at or datetime.combine(start + timedelta(days=days), time(0), CHINA_TZ)
    column_of = {"created": "来电时间", "dispatched": "派单时间", "responded": "签收时间",
                 "resolved": "办结时间", "feedback": "回访时间"}
    rows: list[dict[str, str]] = []
    flow: list[tuple[datetime, dict[str, str]]] = []
    for number, created in enumerate(_arrival_times(rng, start, days, cases_per_day * districts), 1):
        if created >= end:
            continue
        district = rng.choice(city.districts)
        unit = rng.choice(city.units[district])
        urgency = rng.choices(["紧急", "一般", "疑难"], [1, 8, 1])[0]
        phone = f"1{rng.choice('3589')}{rng.randrange(10**9):09d}"
        name = rng.choice(SURNAMES) + rng.choice(GIVEN)
        item = rng.choice(items)
        text = f"{item.item}问题，请尽快处理。联系电话{phone}"
        if rng.random() < 0.1:
            text += f"，身份证号3701021980{rng.randrange(10**8):08d}"
        steps = lifecycle(rng, created, unit, respond_hours=1.5 if urgency == "紧急" else 6,
                          resolve_hours=8 if urgency == "紧急" else 48)
        if centre is not None:
            steps = centre.add_steps(steps, unit)
        row = {c: "" for c in ("工单编号", "来电时间", "来电号码", "诉求人", "诉求类型", "诉求内容",
                                "紧急程度", "区县编码", "街道编码", "承办单位编码", "承办单位", "派单时间",
                                "签收时间", "办结时间", "回访时间", "满意度", "重办次数", "工单状态")}
        order = f"GD{created:%Y%m%d}{number:05d}"
        row.update({"工单编号": order, "来电号码": phone, "诉求人": name,
                    "诉求类型": item.item, "诉求内容": text, "紧急程度": urgency,
                    "区县编码": district, "街道编码": f"{district}{rng.randint(1, 3):03d}",
                    "承办单位编码": unit.code, "承办单位": unit.name, "重办次数": "0",
                    "工单状态": "处理中"})
        texts: dict[tuple[str, datetime], str] = {}  # the order row's time text of each step
        for kind, at, extra in steps:
            if at >= end:
                break
            if kind == "reopened":
                # the export keeps no reopen time: only the count, and the latest cycle's times
                row["重办次数"] = str(int(row["重办次数"]) + 1)
                row["办结时间"] = row["回访时间"] = row["满意度"] = ""
            elif kind == "cancelled":
                row["工单状态"] = "作废"
            elif kind == "closed":
                row["工单状态"] = "已办结"
            elif kind in column_of:
                fmt = "%Y/%-m/%-d %-H:%M" if rng.random() < 0.5 else "%Y-%m-%d %H:%M:%S"
                row[column_of[kind]] = texts[(kind, at)] = at.strftime(fmt)
                if kind == "feedback":
                    row["满意度"] = SATISFACTION_CN[str(extra["satisfaction"])]
            elif kind == "reassigned" and centre is not None:
                holder = extra["unit"]
                assert isinstance(holder, Unit)
                fmt = "%Y/%-m/%-d %-H:%M" if centre.rng.random() < 0.5 else "%Y-%m-%d %H:%M:%S"
                row["派单时间"] = texts[(kind, at)] = at.strftime(fmt)
                row["承办单位编码"], row["承办单位"] = holder.code, holder.name
        rows.append(row)
        if centre is None:
            continue
        for kind, at, extra in sorted(steps, key=lambda step: step[1]):
            if at >= end or kind not in FLOW_STEP_NAMES:
                continue
            when = texts.get((kind, at))
            if when is None:
                fmt = "%Y/%-m/%-d %-H:%M" if centre.rng.random() < 0.5 else "%Y-%m-%d %H:%M:%S"
                when = at.strftime(fmt)
            flow.append((at, _flow_row(order, kind, when, extra)))
    if faults and rows:
        rows.append({**rows[0]})  # the same row exported twice
        bad = {**rows[-1], "工单编号": "GDBAD1", "来电时间": "2026-13-45 25:00:00"}
        rows.append(bad)
    flow.sort(key=lambda pair: pair[0])
    flow_rows = [row for _, row in flow]
    if faults and flow_rows:
        flow_rows.insert(len(flow_rows) // 2, dict(flow_rows[len(flow_rows) // 2]))  # logged twice
        flow_rows.append({**flow_rows[-1], "操作类型": "内部转办"})  # a step type we do not know
        flow_rows.append({**flow_rows[0], "操作时间": "2026-10-32 08:00:00"})
    return HotlineExports(rows, flow_rows)


def hotline_csv(rows: list[dict[str, str]], encoding: str = "gbk") -> bytes:
    import csv
    import io

    buffer = io.StringIO(newline="")
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0]) if rows else [], lineterminator="\r\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue().encode(encoding)


def simulate_property(seed: int = 7, start: date = date(2026, 9, 28), days: int = 7,
                      cases_per_day: int = 40, districts: int = 3, faults: bool = True) -> list[bytes]:
    """Property-service webhook bodies (wuye), one JSON object per line, in time order."""
    rng = random.Random(seed * 104729 + 3)
    city = build_city(random.Random(seed), districts)
    items = load_catalog().items["property"]
    end = datetime.combine(start + timedelta(days=days), time(0), CHINA_TZ)
    lines: list[tuple[datetime, bytes]] = []
    names = {"created": "报修", "dispatched": "派单", "responded": "接单", "resolved": "完工",
             "feedback": "评价", "reopened": "返修", "extended": "延期", "cancelled": "取消",
             "closed": "关闭"}
    for number, created in enumerate(_arrival_times(rng, start, days, cases_per_day * districts), 1):
        grid = rng.choice(city.grids)
        firm = city.units[grid[:6]][-1]  # the district's property firm
        urgent = rng.random() < 0.15
        category = rng.choice(items).item
        order = f"WY{created:%Y%m%d}{number:05d}"
        steps = lifecycle(rng, created, firm, respond_hours=0.4 if urgent else 1.5,
                          resolve_hours=3 if urgent else 30)
        for kind, at, extra in steps:
            if at >= end:
                break
            body: dict[str, object] = {
                "order_id": order, "community_code": grid[:12], "event": names[kind],
                "time": at.isoformat(timespec="seconds"), "category": category,
                "urgent": urgent, "company_code": firm.code}
            if kind == "feedback":
                body["satisfaction"] = SATISFACTION_CN[str(extra["satisfaction"])]
            if kind == "extended":
                body["extension_days"] = extra["days"]
            lines.append((at, orjson.dumps(body)))
    lines.sort(key=lambda pair: pair[0])
    clean = [line for _, line in lines]
    if not faults or not clean:
        return clean
    # webhooks retried (the same body twice) and delivered late, cut-off and wrong bodies,
    # a body without offset, one with a phone number in a field the contract lacks
    out = _add_faults(rng, clean, PROPERTY_MALFORMED)
    out.append(clean[-1].replace(b'+08:00"', b'"'))
    out.append(clean[0][:-1] + b', "phone": "13800138000"}')
    return out


def write_lines(path: str, lines: list[bytes]) -> None:
    with open(path, "wb") as handle:
        for line in lines:
            handle.write(line + b"\n")


def iter_days(start: date, days: int) -> Iterator[date]:
    for offset in range(days):
        yield start + timedelta(days=offset)
