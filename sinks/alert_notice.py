"""What Alertmanager is told about civicflow's alerts (DESIGN §9a), without any I/O.

`ActiveAlerts` holds every alert that is active now (its fire record, keyed by alert id) and
turns each `alerts.sla` record into the postings that keep Alertmanager's view equal to it;
`api_alert` renders one posting as an alert of Alertmanager's API v2 with the labels and the
Chinese annotations of §9a.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from schemas.case import Alert
from schemas.catalog import load_catalog
from schemas.enums import AlertLevel, Milestone, Source

CN = ZoneInfo("Asia/Shanghai")
RETRACTED = "retracted"

ALERTNAME = {AlertLevel.YELLOW: "CaseDueSoon"}
OVERDUE_ALERTNAME = "CaseOverdue"
LEVEL_ZH = {
    AlertLevel.YELLOW: "黄牌（临期）",
    AlertLevel.RED: "红牌（超期）",
    AlertLevel.ESCALATION1: "一级督办（超期升级）",
    AlertLevel.ESCALATION2: "二级督办（超期升级）",
    AlertLevel.ESCALATION3: "三级督办（超期升级）",
}
MILESTONE_ZH = {Milestone.RESPOND: "响应", Milestone.RESOLVE: "办结", Milestone.FEEDBACK: "反馈"}
SOURCE_ZH = {Source.GRID: "网格事件", Source.HOTLINE: "12345工单", Source.PROPERTY: "物业事件"}


@dataclass(frozen=True, slots=True)
class Posting:
    """One alert as Alertmanager must be told of it: active (`ends_at` None) or ended."""

    alert: Alert  # the fire record: labels, annotations and start come from it
    ends_at: datetime | None = None
    reason: str | None = None  # why it ended: an AlertEnd value or "retracted"
    new: bool = False  # the first posting of this activation (not a re-send)
    # when what it tells happened (fire: its instant; end: when it ended or was retracted);
    # the delay to Alertmanager is measured from it. None for a re-send.
    instant: datetime | None = None

    @property
    def key(self) -> tuple[str, tuple[tuple[str, str], ...]]:
        """Alertmanager tells alerts apart by their labels: a later posting of the same key
        supersedes an earlier one."""
        return self.alert.alert_id, tuple(sorted(labels_for(self.alert).items()))


class ActiveAlerts:
    """The active alerts by id. Records are applied in their order on the partition (a case's
    records are in order on one partition); applying a record twice changes nothing."""

    def __init__(self, active: dict[str, Alert] | None = None) -> None:
        self.active: dict[str, Alert] = dict(active or {})

    def __len__(self) -> int:
        return len(self.active)

    def apply(self, record: Alert, now: datetime) -> list[Posting]:
        """The postings one alerts.sla record calls for (updating the active set)."""
        previous = self.active.get(record.alert_id)
        if record.end_reason is None and not record.retracted:
            if previous is not None and labels_for(previous) == labels_for(record):
                return []  # a duplicate: already active with these labels
            self.active[record.alert_id] = record
            postings = [Posting(record, new=True, instant=record.fires_at)]
            if previous is not None:  # same alert, other labels: Alertmanager's old one ends
                postings.insert(0, Posting(previous, _end_time(previous, now, now), "superseded",
                                           instant=record.emitted_at))
            return postings
        self.active.pop(record.alert_id, None)
        if record.retracted:
            reason, ended_at, instant = RETRACTED, now, record.emitted_at
        else:
            reason = str(record.end_reason)
            ended_at = instant = record.ended_at or record.emitted_at
        # ended with the labels it was posted with; an end whose fire we never saw (or saw
        # before a restart that lost nothing but this) is posted with its own, harmlessly
        fired = previous or record
        return [Posting(fired, _end_time(fired, ended_at, now), reason, instant=instant)]

    def postings(self) -> list[Posting]:
        """Every active alert, to re-send (its validity runs out otherwise)."""
        return [Posting(alert) for alert in self.active.values()]

    def counts_by_level(self) -> dict[str, int]:
        counts = dict.fromkeys((level.value for level in AlertLevel), 0)
        for alert in self.active.values():
            counts[alert.level.value] += 1
        return counts


def _end_time(alert: Alert, ended_at: datetime, now: datetime) -> datetime:
    """Never in the future (Alertmanager would keep it active until then), never before the
    start (Alertmanager refuses that)."""
    return max(alert.fires_at, min(ended_at, now))


def coalesce(postings: Iterable[Posting]) -> list[Posting]:
    """The last posting per alert (by labels), in order: what one request must carry."""
    latest: dict[tuple[str, tuple[tuple[str, str], ...]], Posting] = {}
    for posting in postings:
        earlier = latest.pop(posting.key, None)
        if earlier is not None and earlier.new and posting.ends_at is None:
            posting = earlier  # a re-send right after the first posting is that posting
        latest[posting.key] = posting
    return list(latest.values())


def alertname(level: AlertLevel) -> str:
    return ALERTNAME.get(level, OVERDUE_ALERTNAME)


def labels_for(alert: Alert) -> dict[str, str]:
    """DESIGN §9a labels; an unknown district, street or unit is left out (Alertmanager treats
    a missing label as empty)."""
    labels = {
        "alertname": alertname(alert.level),
        "level": alert.level.value,
        "milestone": alert.milestone.value,
        "cycle": str(alert.cycle),
        "case_id": alert.case_id,
        "source": alert.source.value,
        "category": alert.category,
    }
    for name in ("district", "street", "unit"):
        value = getattr(alert, name)
        if value:
            labels[name] = value
    return labels


def local_time(at: datetime) -> str:
    return at.astimezone(CN).strftime("%Y-%m-%d %H:%M")


def duration_zh(delta: timedelta) -> str:
    """`1天3小时5分`; under a minute in seconds."""
    seconds = int(abs(delta).total_seconds())
    if seconds < 60:
        return f"{seconds}秒"
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes = rest // 60
    parts = [f"{days}天" if days else "", f"{hours}小时" if hours else "", f"{minutes}分" if minutes else ""]
    return "".join(parts)


def overdue_zh(alert: Alert) -> str:
    """How overdue the milestone was at the alert's instant (natural time)."""
    delta = alert.fires_at - alert.due_at
    if delta < timedelta(0):
        return f"距截止还有{duration_zh(delta)}"
    if delta < timedelta(seconds=1):
        return "已到截止时间"
    return f"已超期{duration_zh(delta)}"


def category_zh(source: Source, code: str) -> str:
    for item in load_catalog().items.get(source.value, ()):
        if item.code == code:
            return f"{item.major}/{item.item}"
    return code.removeprefix("other:")


def annotations_for(alert: Alert) -> dict[str, str]:
    """Chinese annotations: summary, due time, how overdue, the command that explains it."""
    unit = f"责任单位 {alert.unit}" if alert.unit else "未派单（在调度中心）"
    due = local_time(alert.due_at)
    overdue = overdue_zh(alert)
    explain = f"civicflow explain {alert.case_id}"
    where = " ".join(x for x in (alert.district, alert.street) if x)
    summary = (f"{LEVEL_ZH[alert.level]}：{SOURCE_ZH[alert.source]} {alert.case_id}"
               f"（{category_zh(alert.source, alert.category)}{'，' + where if where else ''}）"
               f"「{MILESTONE_ZH[alert.milestone]}」{overdue}，截止 {due}（北京时间），{unit}。"
               f"详情：{explain}")
    return {"summary": summary, "due_at": f"{due}（北京时间）", "overdue": overdue, "unit": unit,
            "explain": explain}


def api_alert(posting: Posting, now: datetime, validity: timedelta) -> dict[str, object]:
    """One alert of `POST /api/v2/alerts`. An active one is valid for `validity` from now (the
    notifier re-sends it well before that); an ended one carries its end."""
    alert = posting.alert
    ends_at = posting.ends_at if posting.ends_at is not None else now + validity
    return {
        "labels": labels_for(alert),
        "annotations": annotations_for(alert),
        "startsAt": alert.fires_at.isoformat(),
        "endsAt": ends_at.isoformat(),
    }
