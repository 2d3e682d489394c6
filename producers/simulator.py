"""A simulated city for demos, tests and benchmarks: seeded and deterministic.

Districts -> streets -> communities -> grids with real-looking codes, handling units with their
own speed and quality, daily and weekly arrival curves, reopenings, extensions, cancellations,
duplicates, late (out-of-order) lines and, on request, a few malformed lines.
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
    faults: bool = True,
) -> list[bytes]:
    """jn-grid JSON Lines for a simulated city: lines in arrival order, not strictly in time."""
    rng = random.Random(seed)
    city = build_city(rng, districts)
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

        def hours(mean: float, unit: Unit = unit) -> timedelta:
            return timedelta(hours=rng.expovariate(1.0 / (mean * unit.speed)))

        emit("上报", created)
        if rng.random() < 0.02:
            emit("作废", created + timedelta(minutes=rng.randint(5, 120)))
            continue
        at = created + timedelta(minutes=rng.randint(2, 40))
        emit("派单", at, 承办单位编码=unit.code, 承办单位=unit.name)
        at += hours(6)
        emit("受理", at, 承办单位编码=unit.code)
        if rng.random() < 0.05:
            emit("延期", at + timedelta(hours=2), 延期天数=rng.randint(1, 3), 承办单位编码=unit.code)
        at += hours(20)
        cycles = 0
        while True:
            emit("办结", at, 承办单位编码=unit.code)
            at += timedelta(hours=rng.uniform(2, 40))
            happy = rng.random() < unit.quality
            verdict = "满意" if happy else rng.choice(["基本满意", "不满意", "不满意"])
            emit("回访", at, 满意度=verdict)
            if verdict == "不满意" and cycles == 0 and rng.random() < 0.5:
                cycles += 1
                at += timedelta(hours=rng.uniform(1, 6))
                emit("重办", at, 承办单位编码=unit.code)
                at += hours(24)
                continue
            break
        emit("结案", at + timedelta(hours=rng.uniform(1, 12)))
    lines.sort(key=lambda pair: pair[0])
    out = [line for _, line in lines]
    if faults:
        out = _add_faults(rng, out)
    return out


def _add_faults(rng: random.Random, lines: list[bytes]) -> list[bytes]:
    """Duplicates (about 1%), lines moved later (about 2%), and a few malformed lines."""
    result = list(lines)
    for index in sorted(rng.sample(range(len(lines)), k=len(lines) // 50), reverse=True):
        line = result.pop(index)
        result.insert(min(len(result), index + rng.randint(1, 30)), line)
    for index in sorted(rng.sample(range(len(result)), k=len(lines) // 100), reverse=True):
        result.insert(index + 1, result[index])
    for _ in range(max(1, len(lines) // 1000)):
        bad = rng.choice(
            [b"{not json", b'{"\xe4\xba\x8b\xe4\xbb\xb6ID": "x"}', b'["a list"]',
             '{"事件ID":"bad-1","工单编号":"WGX","事件类型":"飞走","发生时间":"2026-10-01 10:00:00"}'.encode()]
        )
        result.insert(rng.randrange(len(result)), bad)
    return result


def write_lines(path: str, lines: list[bytes]) -> None:
    with open(path, "wb") as handle:
        for line in lines:
            handle.write(line + b"\n")


def iter_days(start: date, days: int) -> Iterator[date]:
    for offset in range(days):
        yield start + timedelta(days=offset)
