"""The terminal report: cases, 三率, 派单准确率 and 退单率 per district, the units that return the
most cases, alerts, and the most overdue open cases."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from clickhouse_connect.driver.client import Client
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from streams.calendar import CHINA_TZ


@dataclass(frozen=True)
class DistrictRates:
    district: str
    created: int
    response_rate: float | None
    on_time_rate: float | None
    satisfaction_rate: float | None
    overdue_open: int


def _ratio(num: int, den: int) -> float | None:
    return num / den if den else None


def district_rates(client: Client, db: str) -> list[DistrictRates]:
    rows = client.query(
        f"SELECT ifNull(district, '?'), sum(created), sum(responded_on_time), "
        f"sum(respond_due_count), sum(resolved_on_time), sum(resolve_due_count), sum(satisfied), "
        f"sum(surveyed), sum(overdue_open) FROM {db}.unit_rates_daily "
        f"GROUP BY 1 ORDER BY 1"
    ).result_rows
    return [
        DistrictRates(d, int(c), _ratio(ro, rd), _ratio(so, sd), _ratio(sa, su), int(ov))
        for d, c, ro, rd, so, sd, sa, su, ov in rows
    ]


@dataclass(frozen=True)
class DistrictDispatch:
    """The dispatch centre's figures for one district (DESIGN §6a)."""

    district: str
    dispatched: int  # cases dispatched
    accuracy: float | None  # 派单准确率: share whose first holder never returned them
    dispatched_to: int  # dispatches and re-dispatches to units (one per case and unit)
    returned_by: int  # of those, returned by the unit
    return_rate: float | None  # 退单率


@dataclass(frozen=True)
class UnitDispatch:
    unit: str
    source: str
    dispatched_to: int
    returned_by: int
    return_rate: float | None


def district_dispatch(client: Client, db: str) -> dict[str, DistrictDispatch]:
    accuracy = {d: (int(n), int(kept)) for d, n, kept in client.query(
        f"SELECT ifNull(district, '?'), sum(dispatched), sum(first_holder_kept) "
        f"FROM {db}.dispatch_accuracy_daily GROUP BY 1").result_rows}
    returns = {d: (int(n), int(back)) for d, n, back in client.query(
        f"SELECT ifNull(district, '?'), sum(dispatched_to), sum(returned_by) "
        f"FROM {db}.unit_dispatch_daily GROUP BY 1").result_rows}
    figures = {}
    for district in sorted(accuracy.keys() | returns.keys()):
        n, kept = accuracy.get(district, (0, 0))
        to, back = returns.get(district, (0, 0))
        figures[district] = DistrictDispatch(district, n, _ratio(kept, n), to, back, _ratio(back, to))
    return figures


def units_by_returns(client: Client, db: str, limit: int = 10) -> list[UnitDispatch]:
    """The units that returned the most cases, with their 退单率."""
    return [UnitDispatch(u, s, int(to), int(back), _ratio(back, to)) for u, s, to, back in client.query(
        f"SELECT unit, source, sum(dispatched_to) AS dispatched_to, sum(returned_by) AS returned_by "
        f"FROM {db}.unit_dispatch_daily GROUP BY unit, source HAVING returned_by > 0 "
        f"ORDER BY returned_by DESC, returned_by / dispatched_to DESC, unit LIMIT {int(limit)}"
    ).result_rows]


@dataclass(frozen=True)
class UnitOverdue:
    unit: str
    source: str
    rank: int
    score: float | None
    overdue: int  # late milestones charged to the unit: it held the case when the time ran out


def units_by_overdue(client: Client, db: str, limit: int = 10) -> tuple[date, list[UnitOverdue]]:
    """The latest month of the unit ranking: the units charged with the most late milestones."""
    month = client.query(f"SELECT max(month) FROM {db}.unit_rankings_monthly").result_rows[0][0]
    rows = client.query(
        f"SELECT unit, source, unit_rank, score, overdue FROM {db}.unit_rankings_monthly "
        f"WHERE month = {{m:Date}} AND overdue > 0 ORDER BY overdue DESC, score, unit "
        f"LIMIT {int(limit)}", parameters={"m": month}).result_rows
    return month, [UnitOverdue(u, s, int(rk), sc, int(od)) for u, s, rk, sc, od in rows]


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{value * 100:.1f}%"


def print_report(client: Client, db: str, console: Console | None = None) -> None:
    console = console or Console()
    clock = client.query(f"SELECT clock FROM {db}.current_clock").result_rows[0][0]
    events, rejects, total, open_cases, cancelled = client.query(
        f"SELECT events, rejects, cases, open_cases, cancelled_cases FROM {db}.report_totals"
    ).result_rows[0]
    clock_text = _local(clock)
    console.print(f"[bold]civicflow report[/bold] — pipeline clock {clock_text} (Asia/Shanghai)")
    console.print(f"events {events}, rejects {rejects}, cases {total} "
                  f"(open {open_cases}, cancelled {cancelled})")

    rates = Table(title="三率 per district (响应率 / 按期办结率 / 满意率), 派单准确率 and 退单率")
    for name in ("district", "cases", "响应率", "按期办结率", "满意率", "overdue open", "派单准确率",
                 "退单率"):
        rates.add_column(name, justify="right")
    dispatch = district_dispatch(client, db)
    for r in district_rates(client, db):
        d = dispatch.get(r.district)
        rates.add_row(escape(r.district), str(r.created), _pct(r.response_rate), _pct(r.on_time_rate),
                      _pct(r.satisfaction_rate), str(r.overdue_open),
                      _pct(d.accuracy if d else None), _pct(d.return_rate if d else None))
    console.print(rates)

    units = Table(title="units that returned the most cases (退单)")
    for name in ("unit", "source", "dispatched to it", "returned", "退单率"):
        units.add_column(name, justify="right")
    for u in units_by_returns(client, db):
        units.add_row(escape(u.unit), u.source, str(u.dispatched_to), str(u.returned_by), _pct(u.return_rate))
    console.print(units)

    month, charged = units_by_overdue(client, db)
    console.print(f"units charged with the most overdue milestones, {month:%Y-%m} "
                  "(the unit that held the case when the time ran out):")
    overdue_units = Table()
    for name in ("unit", "source", "rank", "score", "overdue"):
        overdue_units.add_column(name, justify="right")
    for o in charged:
        overdue_units.add_row(escape(o.unit), o.source, str(o.rank), _pct(o.score), str(o.overdue))
    console.print(overdue_units)

    alerts = client.query(
        f"SELECT level, sum(alerts) FROM {db}.alerts_daily GROUP BY level "
        "ORDER BY indexOf(['yellow','red','escalation1','escalation2','escalation3'], level)"
    ).result_rows
    console.print("alerts: " + (", ".join(f"{lvl} {n}" for lvl, n in alerts) or "none"))

    overdue = Table(title="10 most overdue open cases (督办)")
    for name in ("case", "district", "unit", "milestone", "due (local)", "overdue", "escalation"):
        overdue.add_column(name)
    for case_id, district, unit, milestone, due_at, seconds, level in client.query(
        f"SELECT case_id, district, unit, milestone, due_at, overdue_seconds, escalation_level "
        f"FROM {db}.overdue_open_cases ORDER BY overdue_seconds DESC, case_id LIMIT 10"
    ).result_rows:
        overdue.add_row(escape(case_id), escape(district or ""), escape(unit or ""), milestone,
                        _local(due_at),
                        _duration(int(seconds)), str(level))
    console.print(overdue)


def _local(moment: datetime) -> str:
    if moment.tzinfo is None:
        from datetime import UTC

        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(CHINA_TZ).strftime("%Y-%m-%d %H:%M")


def _duration(seconds: int) -> str:
    days, rest = divmod(seconds, 86400)
    return f"{days}d {rest // 3600}h" if days else f"{rest // 3600}h {rest % 3600 // 60}m"
