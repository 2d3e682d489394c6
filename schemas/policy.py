"""The SLA policy model, loaded from TOML and validated with errors that name the bad key."""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from fractions import Fraction
from functools import cached_property
from importlib import resources
from pathlib import Path

from schemas.enums import AlertLevel, ClockKind, Milestone, Source, Urgency
from schemas.errors import ConfigError

_LIMIT_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(wd|h|m)\s*$")
_MILESTONE_KEYS = {m.value for m in Milestone}


_MICROS_PER_SECOND = 1_000_000
_MICROS_PER_DAY = 86_400 * _MICROS_PER_SECOND
# sane bounds: a limit of at most a year, alerts at most 10x it; instants then stay within the
# calendar the worker knows (a limit of 99999999999wd once hung the worker)
MAX_WORKING_DAYS = 365
MAX_HOURS = 365 * 24
MAX_ALERT_FRACTION = 10
DEFAULT_REASSIGN_RESTARTS = frozenset({Milestone.RESPOND})


@dataclass(frozen=True, slots=True)
class Limit:
    """A time limit on one clock: `amount` is seconds (hours clock) or working days.

    `micros` is the same amount in integer microseconds (of natural time, or of working time
    at 24 h per working day), so clock arithmetic on the hot path needs no Fraction."""

    clock: ClockKind
    amount: Fraction
    micros: int = field(init=False, compare=False)

    def __post_init__(self) -> None:
        per_unit = _MICROS_PER_DAY if self.clock is ClockKind.WORKING_DAYS else _MICROS_PER_SECOND
        object.__setattr__(self, "micros", round(self.amount * per_unit))

    def __hash__(self) -> int:
        return hash((self.clock, self.micros))

    @classmethod
    def parse(cls, text: str, where: str) -> Limit:
        match = _LIMIT_RE.match(text) if isinstance(text, str) else None
        if match is None:
            raise ConfigError(
                f"policy key {where} = {text!r}: write a limit as '<n>h', '<n>m' or '<n>wd'"
            )
        value, unit = Fraction(match.group(1)), match.group(2)
        if value <= 0:
            raise ConfigError(f"policy key {where} = {text!r}: a limit must be positive")
        hours = value if unit == "h" else value / 60 if unit == "m" else None
        if (unit == "wd" and value > MAX_WORKING_DAYS) or (hours is not None and hours > MAX_HOURS):
            raise ConfigError(
                f"policy key {where} = {text!r}: a limit may be at most {MAX_WORKING_DAYS}wd "
                f"or {MAX_HOURS}h (a year)")
        if unit == "wd":
            return cls(ClockKind.WORKING_DAYS, value)
        return cls(ClockKind.HOURS, value * (3600 if unit == "h" else 60))

    def extended(self, working_days: int) -> Limit:
        """Add an approved extension (延期). On the hours clock a day counts as 24 hours."""
        if self.clock is ClockKind.WORKING_DAYS:
            return Limit(self.clock, self.amount + working_days)
        return Limit(self.clock, self.amount + working_days * 86400)

    def describe(self) -> str:
        if self.clock is ClockKind.WORKING_DAYS:
            return f"{self.amount} working day(s)"
        return f"{self.amount / 3600} hour(s)"


MilestoneLimits = dict[Milestone, Limit]


@dataclass(frozen=True)
class SlaPolicy:
    alert_fractions: dict[AlertLevel, Fraction]
    by_source: dict[tuple[str, str], MilestoneLimits]  # (source, urgency|"any")
    by_system: dict[str, MilestoneLimits]
    name: str = "default"
    # DESIGN §6a: milestones whose clock a re-dispatch (改派) restarts for the new holder
    reassign_restarts: frozenset[Milestone] = DEFAULT_REASSIGN_RESTARTS
    # a suspension (挂起) ends by itself after this long, counted from its start like a limit
    max_suspension: Limit = field(default_factory=lambda: Limit(ClockKind.WORKING_DAYS, Fraction(15)))

    @cached_property
    def fractions(self) -> tuple[Fraction, ...]:
        """The alert fractions in level order (yellow .. escalation3)."""
        return tuple(self.alert_fractions[level] for level in AlertLevel)

    @cached_property
    def fraction_pairs(self) -> tuple[tuple[int, int], ...]:
        """The alert fractions as (numerator, denominator): integer arithmetic on the hot path."""
        return tuple((f.numerator, f.denominator) for f in self.fractions)

    def fingerprint(self) -> str:
        """Stable across processes: changes when any limit, fraction or rule changes."""
        import hashlib

        text = repr((sorted((str(k), str(v)) for k, v in self.alert_fractions.items()),
                     sorted((k, sorted((str(m), repr(lim)) for m, lim in v.items()))
                            for k, v in self.by_source.items()),
                     sorted((k, sorted((str(m), repr(lim)) for m, lim in v.items()))
                            for k, v in self.by_system.items()),
                     sorted(str(m) for m in self.reassign_restarts), repr(self.max_suspension)))
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def limits_for(self, source: Source | str, system: str, urgency: Urgency | str) -> MilestoneLimits:
        if system in self.by_system:
            return self.by_system[system]
        found = self.by_source.get((str(source), str(urgency)))
        if found is None:
            found = self.by_source.get((str(source), "any"), {})
        return found


def _parse_limits(table: object, where: str) -> MilestoneLimits:
    if not isinstance(table, dict):
        raise ConfigError(f"policy key {where} must be a table of respond/resolve/feedback limits")
    limits: MilestoneLimits = {}
    for key, value in table.items():
        if key not in _MILESTONE_KEYS:
            raise ConfigError(
                f"policy key {where}.{key} is unknown: use respond, resolve or feedback"
            )
        limits[Milestone(key)] = Limit.parse(value, f"{where}.{key}")
    return limits


def parse_policy(data: dict[str, object], name: str = "policy") -> SlaPolicy:
    alerts = data.get("alerts")
    if not isinstance(alerts, dict):
        raise ConfigError("policy key [alerts] is missing: give yellow, red, escalation1..3")
    fractions: dict[AlertLevel, Fraction] = {}
    for level in AlertLevel:
        if level.value not in alerts:
            raise ConfigError(f"policy key alerts.{level.value} is missing")
        raw = alerts[level.value]
        if not isinstance(raw, int | float) or isinstance(raw, bool) or not 0 < raw <= MAX_ALERT_FRACTION:
            raise ConfigError(f"policy key alerts.{level.value} = {raw!r}: must be a number above 0 "
                              f"and at most {MAX_ALERT_FRACTION}")
        fractions[level] = Fraction(str(raw))
    extra = set(alerts) - {lvl.value for lvl in AlertLevel}
    if extra:
        raise ConfigError(f"policy key alerts.{sorted(extra)[0]} is unknown")
    ordered = [fractions[lvl] for lvl in AlertLevel]
    if ordered != sorted(ordered):
        raise ConfigError("policy key [alerts]: fractions must grow from yellow to escalation3")

    by_source: dict[tuple[str, str], MilestoneLimits] = {}
    by_system: dict[str, MilestoneLimits] = {}
    sources = {s.value for s in Source}
    urgencies = {u.value for u in Urgency} | {"any"}
    restarts = _parse_restarts(data.get("reassign_restarts", ["respond"]))
    max_suspension = Limit.parse(data.get("max_suspension", "15wd"), "max_suspension")  # type: ignore[arg-type]
    for key, value in data.items():
        if key in ("alerts", "reassign_restarts", "max_suspension"):
            continue
        if key == "systems":
            if not isinstance(value, dict):
                raise ConfigError("policy key [systems] must hold one table per feed system")
            for system, table in value.items():
                by_system[system] = _parse_limits(table, f"systems.{system}")
            continue
        if key not in sources:
            raise ConfigError(
                f"policy key [{key}] is unknown: use alerts, systems, grid, hotline, property, "
                "reassign_restarts or max_suspension"
            )
        if not isinstance(value, dict):
            raise ConfigError(f"policy key [{key}] must hold tables per urgency")
        for urgency, table in value.items():
            if urgency not in urgencies:
                raise ConfigError(
                    f"policy key {key}.{urgency} is unknown: use urgent, normal, complex or any"
                )
            by_source[(key, urgency)] = _parse_limits(table, f"{key}.{urgency}")
    return SlaPolicy(fractions, by_source, by_system, name, restarts, max_suspension)


def _parse_restarts(value: object) -> frozenset[Milestone]:
    allowed = {Milestone.RESPOND.value, Milestone.RESOLVE.value}
    if not isinstance(value, list) or not all(isinstance(v, str) and v in allowed for v in value):
        raise ConfigError(
            f"policy key reassign_restarts = {value!r}: a list of milestones a re-dispatch restarts, "
            'from "respond" and "resolve" (default ["respond"])')
    return frozenset(Milestone(v) for v in value)


def load_policy(path: Path | None = None) -> SlaPolicy:
    """Load a policy file; None loads the packaged default."""
    if path is None:
        text = resources.files("schemas").joinpath("default_policy.toml").read_text("utf-8")
        name = "default"
    else:
        try:
            text = Path(path).read_text("utf-8")
        except OSError as exc:
            raise ConfigError(f"cannot read policy file {path}: {exc.strerror}") from exc
        name = Path(path).stem
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"policy file {path or 'default'} is not valid TOML: {exc}") from exc
    return parse_policy(data, name)
