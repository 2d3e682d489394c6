"""Command implementations behind the CLI (imported lazily: Faust is heavy)."""

from __future__ import annotations

import argparse
import signal
import time
from datetime import UTC, datetime
from pathlib import Path

from rich.console import Console

from civicflow.embedded import embedded_broker, ensure_var_dir
from civicflow.settings import Settings
from schemas.errors import ConfigError
from schemas.event import Event

out = Console()
err = Console(stderr=True)


_started = time.monotonic()


def _progress(message: str) -> None:
    err.print(f"[dim]{time.monotonic() - _started:6.1f}s[/dim] {message}", soft_wrap=True,
              highlight=False)


def _terminate_as_interrupt() -> None:
    def handler(_signum: int, _frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, handler)


def cmd_simulate(_settings: Settings, args: argparse.Namespace) -> int:
    from producers.simulator import simulate_grid, write_lines

    ensure_var_dir(args.out)
    lines = simulate_grid(seed=args.seed, start=args.start, days=args.days,
                          cases_per_day=args.cases_per_day, districts=args.districts)
    path = args.out / "grid.jsonl"
    write_lines(str(path), lines)
    out.print(f"wrote {len(lines)} lines to {path} (format jn-grid)")
    return 0


def cmd_demo(settings: Settings, args: argparse.Namespace) -> int:
    from civicflow.pipeline import replay
    from civicflow.report import print_report
    from producers.simulator import simulate_grid, write_lines

    _terminate_as_interrupt()
    ensure_var_dir(settings.var_dir)
    sim_dir = ensure_var_dir(settings.var_dir / "sim")
    lines = simulate_grid(seed=args.seed, start=args.start, days=args.days,
                          cases_per_day=args.cases_per_day, districts=args.districts)
    path = sim_dir / "grid.jsonl"
    write_lines(str(path), lines)
    _progress(f"simulated {args.days} days of {args.districts} districts: {len(lines)} lines in {path}")
    result, sink = replay(settings, [("jn-grid", path)], None, _progress)
    _progress(f"replayed {len(result.events)} events in {result.seconds:.1f}s "
              f"({len(result.events) / result.seconds:,.0f} events/s end to end)")
    print_report(sink.client, settings.database, out)
    return 0


def cmd_replay(settings: Settings, args: argparse.Namespace) -> int:
    from civicflow.pipeline import replay
    from civicflow.report import print_report

    _terminate_as_interrupt()
    for file in args.files:
        if not Path(file).is_file():
            raise ConfigError(f"input file {file} does not exist")
    result, sink = replay(settings, [(args.format_name, f) for f in args.files], args.as_of, _progress)
    _progress(f"replayed {len(result.events)} events as of {result.as_of.isoformat()} in "
              f"{result.seconds:.1f}s; every event, snapshot and alert has landed")
    print_report(sink.client, settings.database, out)
    if settings.policy is not None:
        print_policy_comparison(settings, result.events, result.as_of)
    return 0


def print_policy_comparison(settings: Settings, events: list[Event], as_of: datetime) -> None:
    """What if: overdue cases under the default policy and under --policy, side by side."""
    from rich.table import Table

    from schemas.policy import load_policy
    from streams.calendar import WorkingDayCalendar
    from streams.whatif import compare_policies

    policies = [load_policy(None), load_policy(settings.policy)]
    rows = compare_policies(events, policies,
                            WorkingDayCalendar.from_override_file(settings.holiday_file), as_of)
    table = Table(title=f"what if: overdue cases (red or worse by {as_of.isoformat()})")
    for name in ("district", "unit", "cases", f"overdue: {policies[0].name}",
                 f"overdue: {policies[1].name}", "change"):
        table.add_column(name, justify="right")
    for row in rows:
        before, after = row.overdue
        table.add_row(row.district, row.unit, str(row.cases), str(before), str(after),
                      f"{after - before:+d}")
    before_total = sum(r.overdue[0] for r in rows)
    after_total = sum(r.overdue[1] for r in rows)
    table.add_row("all", "", str(sum(r.cases for r in rows)), str(before_total), str(after_total),
                  f"{after_total - before_total:+d}", style="bold")
    out.print(table)


def _aware(value: object) -> object:
    """clickhouse-connect returns DateTime64(3, 'UTC') columns as naive UTC datetimes."""
    if isinstance(value, datetime) and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


def cmd_explain(settings: Settings, args: argparse.Namespace) -> int:
    from schemas.policy import load_policy
    from sinks.clickhouse import connect
    from streams.calendar import WorkingDayCalendar
    from streams.explain import explain_case

    client = connect(settings.clickhouse_dsn())
    db = settings.database
    rows = client.query(
        f"SELECT * EXCEPT ingested_at FROM {db}.events FINAL WHERE case_id = {{case:String}}",
        parameters={"case": args.case_id}).named_results()
    events = [Event.from_dict({k: _aware(v) for k, v in row.items() if v is not None}) for row in rows]
    if not events:
        raise ConfigError(f"no events for case {args.case_id!r} in {db}.events: check the id "
                          "(it looks like grid:jn-grid:WG20261014000123)")
    clock = args.as_of or client.query(f"SELECT clock FROM {db}.current_clock").result_rows[0][0]
    if clock.tzinfo is None:
        clock = clock.replace(tzinfo=UTC)
    policy = load_policy(settings.policy)
    calendar = WorkingDayCalendar.from_override_file(settings.holiday_file)
    for line in explain_case(events, policy, calendar, clock):
        out.print(line, highlight=False, soft_wrap=True)
    sent = client.query(
        f"SELECT alert_id, emitted_at, retracted FROM {db}.alerts FINAL "
        f"WHERE case_id = {{case:String}} ORDER BY fires_at", parameters={"case": args.case_id}
    ).result_rows
    out.print("")
    out.print(f"alerts in ClickHouse: {len(sent)}", highlight=False)
    for alert_id, emitted_at, retracted in sent:
        flag = " (retracted: a late event proved it wrong)" if retracted else ""
        out.print(f"  {alert_id} emitted {emitted_at} UTC{flag}", highlight=False)
    return 0


def cmd_worker(settings: Settings, args: argparse.Namespace) -> int:
    from streams.app import run_worker
    from streams.processor import Mode

    if not settings.bootstrap:
        raise ConfigError("the worker needs --bootstrap or CIVICFLOW_BOOTSTRAP")
    run_worker(settings, Mode(args.mode))
    return 0


def cmd_sink(settings: Settings, _args: argparse.Namespace) -> int:
    from sinks.clickhouse import ClickHouseSink, connect
    from sinks.migrate import migrate
    from sinks.runner import SinkRunner

    if not settings.bootstrap:
        raise ConfigError("the sink needs --bootstrap or CIVICFLOW_BOOTSTRAP")
    _terminate_as_interrupt()
    sink = ClickHouseSink(connect(settings.clickhouse_dsn()), settings.database)
    migrate(sink.client, settings.database)
    runner = SinkRunner(settings.bootstrap, sink, batch_rows=settings.sink_batch_rows,
                        batch_seconds=settings.sink_batch_seconds)
    try:
        runner.run()
    except KeyboardInterrupt:
        runner.stop_event.set()
    return 0


def cmd_broker(settings: Settings, args: argparse.Namespace) -> int:
    _terminate_as_interrupt()
    var_dir = args.var_dir or settings.var_dir
    with embedded_broker(var_dir, settings.partitions, settings.broker_start_timeout) as bootstrap:
        out.print(f"embedded broker (memory only) at {bootstrap}; Ctrl-C stops it")
        while True:
            time.sleep(3600)


def cmd_db(settings: Settings, _args: argparse.Namespace) -> int:
    from sinks.clickhouse import connect
    from sinks.migrate import migrate

    ensure_var_dir(settings.var_dir)
    applied = migrate(connect(settings.clickhouse_dsn()), settings.database)
    out.print(f"migrations applied: {', '.join(applied) if applied else 'none (up to date)'}")
    return 0


def cmd_report(settings: Settings, _args: argparse.Namespace) -> int:
    from civicflow.report import print_report
    from sinks.clickhouse import connect

    print_report(connect(settings.clickhouse_dsn()), settings.database, out)
    return 0
