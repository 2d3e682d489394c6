"""`civicflow report --html FILE`: one self-contained page (inline SVG, no scripts, no network)
with the 三率, 派单准确率 and 退单率 per district, the overdue (red and worse) alert trend, the unit
ranking (overdue charged to the unit that held the case when the time ran out) and the units
that return the most cases."""

from __future__ import annotations

import html
from dataclasses import dataclass
from datetime import date

from clickhouse_connect.driver.client import Client

from civicflow.report import DistrictRates, _local, district_dispatch, district_rates, units_by_returns

COLORS = {"响应率": "#2b6cb0", "按期办结率": "#2f855a", "满意率": "#c05621"}
# the unit ranking's score bars: a colour of their own, so no chart reads as another
RANKING_COLOR = "#6b46c1"
FONT = "'Noto Sans CJK SC','WenQuanYi Micro Hei','Microsoft YaHei',sans-serif"


@dataclass(frozen=True)
class RankingRow:
    unit: str
    source: str
    score: float
    rank: int
    change: int | None
    overdue: int  # late milestones charged to the unit (it held the case when time ran out)


def _esc(text: object) -> str:
    return html.escape(str(text))


def rates_chart(rates: list[DistrictRates], width: int = 760, height: int = 300) -> str:
    left, bottom, top = 50, 40, 20
    plot_h = height - bottom - top
    group_w = (width - left - 20) / max(1, len(rates))
    bar_w = min(40.0, group_w / 4)
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
             f'role="img" aria-label="三率 per district">']
    for pct in (0, 25, 50, 75, 100):
        y = top + plot_h * (1 - pct / 100)
        parts.append(f'<line x1="{left}" x2="{width - 10}" y1="{y:.1f}" y2="{y:.1f}" stroke="#ddd"/>'
                     f'<text x="{left - 6}" y="{y + 4:.1f}" font-size="11" text-anchor="end">{pct}%</text>')
    for i, r in enumerate(rates):
        x0 = left + i * group_w + (group_w - 3 * bar_w) / 2
        for j, (name, value) in enumerate((("响应率", r.response_rate), ("按期办结率", r.on_time_rate),
                                           ("满意率", r.satisfaction_rate))):
            v = value or 0.0
            h = plot_h * v
            parts.append(f'<rect class="bar" x="{x0 + j * bar_w:.1f}" y="{top + plot_h - h:.1f}" '
                         f'width="{bar_w - 2:.1f}" height="{h:.1f}" fill="{COLORS[name]}">'
                         f'<title>{_esc(r.district)} {name} {v * 100:.1f}%</title></rect>')
        parts.append(f'<text x="{left + (i + 0.5) * group_w:.1f}" y="{height - bottom + 16}" '
                     f'font-size="12" text-anchor="middle">{_esc(r.district)}</text>')
    legend_x = left
    for name, color in COLORS.items():
        parts.append(f'<rect x="{legend_x}" y="{height - 14}" width="10" height="10" fill="{color}"/>'
                     f'<text x="{legend_x + 14}" y="{height - 5}" font-size="11">{name}</text>')
        legend_x += 90
    parts.append("</svg>")
    return "".join(parts)


def trend_chart(points: list[tuple[date, int]], width: int = 760, height: int = 240) -> str:
    left, bottom, top = 50, 30, 15
    plot_h, plot_w = height - bottom - top, width - left - 20
    peak = max((n for _, n in points), default=0) or 1
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
             f'role="img" aria-label="overdue trend">',
             f'<line x1="{left}" x2="{width - 10}" y1="{top + plot_h}" y2="{top + plot_h}" stroke="#999"/>',
             f'<text x="{left - 6}" y="{top + 4}" font-size="11" text-anchor="end">{peak}</text>']
    if points:
        step = plot_w / max(1, len(points) - 1)
        coords = [(left + i * step, top + plot_h * (1 - n / peak)) for i, (_, n) in enumerate(points)]
        path = " ".join(f"{x:.1f},{y:.1f}" for x, y in coords)
        parts.append(f'<polyline class="trend" points="{path}" fill="none" stroke="#c53030" stroke-width="3"/>')
        for (x, y), (day, n) in zip(coords, points, strict=True):
            parts.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3" fill="#c53030"><title>{day} {n}</title></circle>')
        for i in range(0, len(points), max(1, len(points) // 8)):
            parts.append(f'<text x="{coords[i][0]:.1f}" y="{height - 10}" font-size="11" '
                         f'text-anchor="middle">{points[i][0]:%m-%d}</text>')
    parts.append("</svg>")
    return "".join(parts)


def ranking_chart(rows: list[RankingRow], width: int = 760) -> str:
    bar_h, left = 22, 170
    height = max(40, bar_h * len(rows) + 20)
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
             f'role="img" aria-label="unit ranking">']
    for i, row in enumerate(rows):
        y = 10 + i * bar_h
        w = (width - left - 150) * row.score
        change = "" if row.change is None else (f" ▲{row.change}" if row.change > 0 else
                                                 f" ▼{-row.change}" if row.change < 0 else " =")
        parts.append(f'<text x="{left - 8}" y="{y + 15}" font-size="12" text-anchor="end">'
                     f'{row.rank}. {_esc(row.unit)} ({_esc(row.source)})</text>'
                     f'<rect class="bar" x="{left}" y="{y + 3}" width="{w:.1f}" height="{bar_h - 6}" fill="{RANKING_COLOR}"/>'
                     f'<text x="{left + w + 6:.1f}" y="{y + 15}" font-size="12">{row.score * 100:.1f}{change}'
                     f' · 超期 {row.overdue}</text>')
    parts.append("</svg>")
    return "".join(parts)


def build_html(client: Client, db: str) -> str:
    clock = client.query(f"SELECT clock FROM {db}.current_clock").result_rows[0][0]
    events, rejects, cases, open_cases, cancelled = client.query(
        f"SELECT events, rejects, cases, open_cases, cancelled_cases FROM {db}.report_totals").result_rows[0]
    rates = district_rates(client, db)
    trend = [(d, int(n)) for d, n in client.query(
        f"SELECT day, sum(alerts) FROM {db}.alerts_daily WHERE level != 'yellow' "
        "GROUP BY day ORDER BY day").result_rows]
    latest = client.query(f"SELECT max(month) FROM {db}.unit_rankings_monthly").result_rows[0][0]
    ranking = [RankingRow(u, s, float(sc or 0), int(rk), None if ch is None else int(ch), int(od))
               for u, s, sc, rk, ch, od in client.query(
                   f"SELECT unit, source, score, unit_rank, rank_change, overdue FROM {db}.unit_rankings_monthly "
                   "WHERE month = {m:Date} ORDER BY source, unit_rank LIMIT 20",
                   parameters={"m": latest}).result_rows]
    overdue = client.query(
        f"SELECT case_id, district, unit, milestone, due_at, overdue_seconds FROM {db}.overdue_open_cases "
        "ORDER BY overdue_seconds DESC, case_id LIMIT 10").result_rows
    dispatch = district_dispatch(client, db)

    def dispatch_cells(district: str) -> str:
        d = dispatch.get(district)
        return (f"<td>{_pct(d.accuracy if d else None)}</td>"
                f"<td>{_pct(d.return_rate if d else None)}</td>")
    rate_rows = "".join(
        f"<tr><td>{_esc(r.district)}</td><td>{r.created}</td><td>{_pct(r.response_rate)}</td>"
        f"<td>{_pct(r.on_time_rate)}</td><td>{_pct(r.satisfaction_rate)}</td><td>{r.overdue_open}</td>"
        f"{dispatch_cells(r.district)}</tr>"
        for r in rates)
    return_rows = "".join(
        f"<tr><td>{_esc(u.unit)}</td><td>{_esc(u.source)}</td><td>{u.dispatched_to}</td>"
        f"<td>{u.returned_by}</td><td>{_pct(u.return_rate)}</td></tr>" for u in units_by_returns(client, db))
    overdue_rows = "".join(
        f"<tr><td>{_esc(c)}</td><td>{_esc(d or '')}</td><td>{_esc(u or '')}</td><td>{_esc(m)}</td>"
        f"<td>{_local(due)}</td><td>{int(s) // 3600} h</td></tr>" for c, d, u, m, due, s in overdue)
    return f"""<!doctype html>
<html lang="zh-CN"><head><meta charset="utf-8"><title>civicflow 三率报告</title>
<style>
body {{ font-family: {FONT}; margin: 24px; color: #1a202c; max-width: 820px; }}
h1 {{ font-size: 22px; }} h2 {{ font-size: 17px; margin-top: 28px; }}
table {{ border-collapse: collapse; font-size: 13px; }} td, th {{ border: 1px solid #cbd5e0; padding: 4px 8px; }}
.meta {{ color: #4a5568; font-size: 13px; }}
</style></head><body>
<h1>civicflow 三率报告 (响应率 / 按期办结率 / 满意率)</h1>
<p class="meta">Pipeline clock {_local(clock)} (Asia/Shanghai) · events {events} · rejects {rejects} ·
cases {cases} (open {open_cases}, cancelled {cancelled})</p>
<h2>三率, 派单准确率 and 退单率 per district</h2>{rates_chart(rates)}
<table><tr><th>district</th><th>cases</th><th>响应率</th><th>按期办结率</th><th>满意率</th><th>overdue open</th><th>派单准确率</th><th>退单率</th></tr>{rate_rows}</table>
<h2>Overdue trend: red and escalation alerts per day</h2>{trend_chart(trend)}
<h2>Unit ranking {latest:%Y-%m} (mean of the three rates; change against last month; 超期: late
milestones charged to the unit that held the case when the time ran out)</h2>{ranking_chart(ranking)}
<h2>10 most overdue open cases (督办)</h2>
<table><tr><th>case</th><th>district</th><th>unit</th><th>milestone</th><th>due</th><th>overdue</th></tr>{overdue_rows}</table>
<h2>Units that returned the most cases (退单率 = returned / dispatched to the unit)</h2>
<table><tr><th>unit</th><th>source</th><th>dispatched to it</th><th>returned</th><th>退单率</th></tr>{return_rows}</table>
</body></html>
"""


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{value * 100:.1f}%"
