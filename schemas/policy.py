"""The SLA policy model, loaded from TOML and validated with errors that name the bad key."""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from fractions import Fraction
from importlib import resources
from pathlib import Path

from schemas.enums import AlertLevel, ClockKind, Milestone, Source, Urgency
from schemas.errors import ConfigError

_LIMIT_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(wd|h|m)\s*$")
_MILESTONE_KEYS = {m.value for m in Milestone}


_MICROS_PER_SECOND = 1_000_000
_MICROS_PER_DAY = 86_400 * _MICROS_PER_SECOND


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
        if not isinstance(raw, int | float) or raw <= 0:
            raise ConfigError(f"policy key alerts.{level.value} = {raw!r}: must be a positive number")
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
    for key, value in data.items():
        if key == "alerts":
            continue
        if key == "systems":
            if not isinstance(value, dict):
                raise ConfigError("policy key [systems] must hold one table per feed system")
            for system, table in value.items():
                by_system[system] = _parse_limits(table, f"systems.{system}")
            continue
        if key not in sources:
            raise ConfigError(
                f"policy key [{key}] is unknown: use alerts, systems, grid, hotline or property"
            )
        if not isinstance(value, dict):
            raise ConfigError(f"policy key [{key}] must hold tables per urgency")
        for urgency, table in value.items():
            if urgency not in urgencies:
                raise ConfigError(
                    f"policy key {key}.{urgency} is unknown: use urgent, normal, complex or any"
                )
            by_source[(key, urgency)] = _parse_limits(table, f"{key}.{urgency}")
    return SlaPolicy(fractions, by_source, by_system, name)


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
