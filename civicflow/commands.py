"""Command implementations behind the CLI (imported lazily: Faust is heavy)."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console
from rich.markup import escape

from civicflow.embedded import embedded_broker, ensure_var_dir
from civicflow.settings import Settings
from schemas.errors import BrokerUnavailable, CivicflowError, ConfigError
from schemas.event import EncodedEvent, Event

if TYPE_CHECKING:
    from clickhouse_connect.driver.client import Client

    from producers.dry_run import FeedReport
    from schemas.policy import SlaPolicy
    from streams.calendar import WorkingDayCalendar
    from streams.whatif import WhatIfRow

# piped output (CI logs, files) gets room for the report's tables instead of 80 columns
out = Console(width=None if sys.stdout.isatty() else 140)
err = Console(stderr=True, width=None if sys.stderr.isatty() else 160)


_started = time.monotonic()


def _progress(message: str) -> None:
    err.print(f"[dim]{time.monotonic() - _started:6.1f}s[/dim] {escape(message)}", soft_wrap=True,
              highlight=False)


def write_simulated_city(out_dir: Path, args: argparse.Namespace, dispatch: bool = False
                         ) -> list[tuple[str, Path]]:
    """The feeds of one simulated city, in their district formats; with `dispatch`, returns,
    re-dispatches and suspensions in the grid feed and a 12345 circulation log beside the export."""
    from producers.simulator import (
        hotline_csv,
        simulate_grid,
        simulate_hotline_exports,
        simulate_property,
        write_lines,
    )

    ensure_var_dir(out_dir)
    common = {"seed": args.seed, "start": args.start, "days": args.days, "districts": args.districts}
    grid = out_dir / "grid.jsonl"
    grid_lines = simulate_grid(cases_per_day=args.cases_per_day, dispatch=dispatch, **common)
    write_lines(str(grid), grid_lines)
    hotline = out_dir / "hotline_12345.csv"
    exports = simulate_hotline_exports(cases_per_day=max(1, args.cases_per_day * 2 // 3),
                                       dispatch=dispatch, **common)
    hotline.write_bytes(hotline_csv(exports.orders, "gbk"))
    prop = out_dir / "property_wuye.jsonl"
    prop_lines = simulate_property(cases_per_day=max(1, args.cases_per_day // 3), **common)
    write_lines(str(prop), prop_lines)
    feeds = [("jn-grid", grid), ("12345", hotline), ("wuye", prop)]
    flow_note = ""
    if exports.flow:
        flow = out_dir / "hotline_12345_flow.csv"
        flow.write_bytes(hotline_csv(exports.flow, "gbk"))
        feeds.insert(2, ("12345-flow", flow))
        flow_note = f", {flow} ({len(exports.flow)} steps, GBK)"
    _progress(f"simulated {args.days} days of {args.districts} districts: {grid} "
              f"({len(grid_lines)} lines), {hotline} ({len(exports.orders)} rows, GBK){flow_note}, "
              f"{prop} ({len(prop_lines)} lines)")
    return feeds


def feed_files(args: argparse.Namespace) -> list[tuple[str, Path]]:
    """The (format, file) pairs of `--format F FILE... [--format G FILE...]`: each format
    applies to the files after it. Unknown formats and missing files fail here, one line."""
    from producers.registry import adapter_for

    groups = [list(group) for group in args.feeds]
    groups[-1].extend(str(file) for file in args.files)
    files: list[tuple[str, Path]] = []
    for format_name, *paths in groups:
        adapter_for(format_name)
        if not paths:
            raise ConfigError(f"--format {format_name} names no file: give its files after it, e.g. "
                              f"--format {format_name} FILE")
        for name in paths:
            if not Path(name).is_file():
                raise ConfigError(f"input file {name} does not exist")
            files.append((format_name, Path(name)))
    return files


def cmd_simulate(_settings: Settings, args: argparse.Namespace) -> int:
    write_simulated_city(args.out, args, dispatch=args.dispatch_steps)
    return 0


def cmd_ingest(settings: Settings, args: argparse.Namespace) -> int:
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from civicflow.embedded import create_topics
    from producers.base import ImportTally
    from producers.ingest import ingest_files

    if not settings.bootstrap:
        raise ConfigError("ingest needs a broker: pass --bootstrap host:9092 or set "
                          "CIVICFLOW_BOOTSTRAP (the embedded broker keeps nothing after exit)")
    files = feed_files(args)
    create_topics(settings.bootstrap, settings.partitions, timeout=10)
    columns = [TextColumn("[bold]{task.description}"), BarColumn(),
               TextColumn("{task.completed:,} rows  {task.fields[rate]:,.0f} rows/s  "
                          "rejects {task.fields[rejects]:,}"), TimeElapsedColumn()]
    tally = ImportTally()
    finished = False
    try:
        with Progress(*columns, console=err) as bar:
            task = bar.add_task("reading", total=None, rate=0.0, rejects=0)
            started = time.monotonic()

            def on_progress(stage: str, rows: int, total: int | None, rejects: int) -> None:
                rate = rows / max(time.monotonic() - started, 1e-6)
                bar.update(task, description=escape(stage), completed=rows, total=total,
                           rate=rate, rejects=rejects)

            ensure_var_dir(settings.var_dir)  # big inputs are sorted in runs under it
            _, failed = ingest_files(files, settings.bootstrap,
                                     settings.caller_hash_key.get_secret_value().encode(),
                                     on_progress, settings.delivery_timeout_seconds,
                                     sort_run_size=settings.sort_run_events,
                                     spill_dir=settings.var_dir, tally=tally)
        finished = True
    finally:
        # the accounting on every way out: an error, a failed delivery, Ctrl-C
        line = tally.line()
        if not finished:
            line += ("; stopped early, so some of these may not be in Kafka: ingest the files "
                     "again (event ids are deterministic, so what users read holds each event once)")
        out.print(line, markup=False, highlight=False, soft_wrap=True)
        if tally.reject_reasons:
            out.print("rejects by reason: " + ", ".join(
                f"{reason} {count}" for reason, count in tally.reject_reasons.most_common()),
                markup=False, highlight=False, soft_wrap=True)
    if failed:
        raise BrokerUnavailable(
            f"{failed} messages were not delivered to Kafka (counted above): once the broker is "
            "up, ingest the same files again (event ids are deterministic, so what users read "
            "holds each event once)")
    return 0


def cmd_validate(settings: Settings, args: argparse.Namespace) -> int:
    from rich.progress import Progress, TextColumn, TimeElapsedColumn

    from producers.dry_run import check_files
    from producers.registry import adapter_for

    files = feed_files(args)
    caller_key = settings.caller_hash_key.get_secret_value().encode()
    columns = [TextColumn("[bold]{task.description}"),
               TextColumn("{task.completed:,} records  {task.fields[rate]:,.0f} records/s  "
                          "rejected {task.fields[rejects]:,}"), TimeElapsedColumn()]
    with Progress(*columns, console=err, transient=True) as bar:
        task = bar.add_task("reading", total=None, rate=0.0, rejects=0)
        started = time.monotonic()
        done_before = 0

        def on_progress(format_name: str, path: Path, records: int, rejects: int) -> None:
            nonlocal done_before
            total = done_before + records
            bar.update(task, description=f"{format_name} {path.name}", completed=total,
                       rate=total / max(time.monotonic() - started, 1e-6), rejects=rejects)
            if records == 0 and total:
                done_before = total

        ensure_var_dir(settings.var_dir)  # duplicates are found by sorting on disk under it
        report = check_files(files, lambda name: adapter_for(name, caller_key), on_progress,
                             now=datetime.now(UTC), spill_dir=settings.var_dir)
    print_validation(report, files)
    if report.rejected and report.reject_rate > args.max_reject_rate:
        out.print(f"FAILED: {report.rejected} of {report.read} records would be rejected "
                  f"({report.reject_rate:.2%}, more than --max-reject-rate "
                  f"{args.max_reject_rate:.2%}): fix them as the reasons above say and run "
                  "validate again", highlight=False, markup=False, soft_wrap=True)
        return 1
    out.print("OK: every record would be accepted" if not report.rejected else
              f"OK: {report.reject_rate:.2%} of the records would be rejected, within "
              f"--max-reject-rate {args.max_reject_rate:.2%}", highlight=False, markup=False)
    return 0


def print_validation(report: FeedReport, files: list[tuple[str, Path]]) -> None:
    def say(text: str) -> None:
        out.print(text, highlight=False, markup=False, soft_wrap=True)

    say(f"validated {len(files)} file(s): " + ", ".join(f"{f} {p}" for f, p in files))
    say(report.accounting_line())
    if report.reasons:
        say("rejected, by reason (first lines of each):")
        for (format_name, code), group in sorted(report.reasons.items(), key=lambda kv: -kv[1].count):
            where = ", ".join(f"{Path(file).name}:{line}" for file, line, _ in group.examples)
            more = ", ..." if group.count > len(group.examples) else ""
            say(f"  {format_name} {code}: {group.count} record(s), lines {where}{more}")
            for reason in dict.fromkeys(reason for _, _, reason in group.examples):
                say(f"      {reason}")
    if report.first is not None and report.last is not None:
        say(f"time span: {report.first.isoformat()} .. {report.last.isoformat()}")
    if report.created:
        say(f"new cases (created events): {report.created}; category not in the catalog "
            f"(kept as other:): {report.unknown_category} ({report.unknown_category / report.created:.1%}); "
            f"no area code (in no district's figures): {report.no_area} "
            f"({report.no_area / report.created:.1%})")
    else:
        say("new cases: none in these files (a circulation log or a backfill of later steps "
            "takes category and area from the case's created event)")


def cmd_contracts(_settings: Settings, args: argparse.Namespace) -> int:
    from civicflow.contracts import CONTRACTS_DIR, compare_contracts, write_contracts

    directory = args.dir or CONTRACTS_DIR
    if args.action == "write":
        written = write_contracts(directory)
        out.print(f"wrote {', '.join(written)} in {directory}" if written else
                  f"{directory}: every contract is up to date", highlight=False, markup=False)
        return 0
    drift = compare_contracts(directory)
    if drift:
        out.print(f"contracts in {directory} are out of date ({drift.line()}): run "
                  "`civicflow contracts write` and commit the result", highlight=False, markup=False)
        return 1
    out.print(f"{directory}: every contract is up to date", highlight=False, markup=False)
    return 0


def write_report_page(client: Client, database: str, page: Path) -> None:
    """The self-contained HTML report (charts for leaders) at `page`."""
    from civicflow.html_report import build_html

    try:
        page.write_text(build_html(client, database), encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot write {page}: {exc.strerror}") from exc


def cmd_demo(settings: Settings, args: argparse.Namespace) -> int:
    from civicflow.pipeline import replay
    from civicflow.report import print_report

    ensure_var_dir(settings.var_dir)
    feeds = write_simulated_city(settings.var_dir / "sim", args, dispatch=args.dispatch_steps)
    result, sink = replay(settings, feeds, None, _progress)
    _progress(f"replayed {result.event_count:,} events in {result.seconds:.1f}s "
              f"({result.event_count / result.seconds:,.0f} events/s end to end)")
    print_report(sink.client, settings.database, out)
    page = settings.var_dir / "report.html"
    write_report_page(sink.client, settings.database, page)
    out.print(f"charts for leaders: {page.resolve()} (self-contained, opens offline)", markup=False)
    return 0


def cmd_replay(settings: Settings, args: argparse.Namespace) -> int:
    from civicflow.pipeline import replay
    from civicflow.report import print_report
    from producers.event_sort import CaseGrouper

    files = feed_files(args)
    notify = alertmanager_url(settings, "replay --notify") if args.notify else None
    ensure_var_dir(settings.var_dir)
    with CaseGrouper(settings.sort_run_events, settings.var_dir) as by_case:
        # the what-if needs every event again, by case: kept in runs on disk as they are produced
        on_event = by_case.add if settings.policy is not None else None
        result, sink = replay(settings, files, args.as_of, _progress, on_event=on_event,
                              alertmanager=notify)
        _progress(f"replayed {result.event_count:,} events as of {result.as_of.isoformat()} in "
                  f"{result.seconds:.1f}s; every event, snapshot and alert has landed")
        print_report(sink.client, settings.database, out)
        if settings.policy is not None:
            print_policy_comparison(settings, by_case.cases(), result.as_of)
    return 0


# cases whose events are decoded and reduced at once by the what-if: bounds its memory
WHATIF_CHUNK_EVENTS = 20_000


def policy_comparison(cases: Iterable[list[EncodedEvent]], policies: Sequence[SlaPolicy],
                      calendar: WorkingDayCalendar, as_of: datetime,
                      chunk_events: int = WHATIF_CHUNK_EVENTS) -> list[WhatIfRow]:
    """`compare_policies` over chunks of whole cases (each case counts in one chunk only, so the
    per district and unit sums are exact), a chunk of about `chunk_events` events at a time."""
    from streams.whatif import WhatIfRow, compare_policies

    totals: dict[tuple[str, str], tuple[int, list[int]]] = {}

    def add(chunk: list[Event]) -> None:
        for row in compare_policies(chunk, policies, calendar, as_of):
            cases_so_far, overdue = totals.setdefault((row.district, row.unit), (0, [0] * len(policies)))
            totals[(row.district, row.unit)] = (cases_so_far + row.cases,
                                                [a + b for a, b in zip(overdue, row.overdue, strict=True)])

    chunk: list[Event] = []
    for case in cases:
        chunk.extend(event.decode() for event in case)
        if len(chunk) >= chunk_events:
            add(chunk)
            chunk = []
    if chunk:
        add(chunk)
    return [WhatIfRow(district, unit, count, tuple(overdue))
            for (district, unit), (count, overdue) in sorted(totals.items())]


def print_policy_comparison(settings: Settings, cases: Iterable[list[EncodedEvent]],
                            as_of: datetime) -> None:
    """What if: overdue cases under the default policy and under --policy, side by side."""
    from rich.table import Table

    from schemas.policy import load_policy
    from streams.calendar import WorkingDayCalendar

    policies = [load_policy(None), load_policy(settings.policy)]
    rows = policy_comparison(cases, policies,
                             WorkingDayCalendar.from_override_file(settings.holiday_file), as_of)
    table = Table(title=f"what if: overdue cases (red or worse by {as_of.isoformat()})")
    for name in ("district", "unit", "cases", f"overdue: {policies[0].name}",
                 f"overdue: {policies[1].name}", "change"):
        table.add_column(name, justify="right")
    for row in rows:
        before, after = row.overdue
        table.add_row(escape(row.district), escape(row.unit), str(row.cases), str(before), str(after),
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
        out.print(line, highlight=False, soft_wrap=True, markup=False)
    sent = client.query(
        f"SELECT alert_id, emitted_at, retracted FROM {db}.alerts FINAL "
        f"WHERE case_id = {{case:String}} ORDER BY fires_at", parameters={"case": args.case_id}
    ).result_rows
    out.print("")
    out.print(f"alerts in ClickHouse: {len(sent)}", highlight=False)
    for alert_id, emitted_at, retracted in sent:
        flag = " (retracted: a late event proved it wrong)" if retracted else ""
        out.print(f"  {alert_id} emitted {emitted_at} UTC{flag}", highlight=False, markup=False)
    return 0


def cmd_serve_ingest(settings: Settings, _args: argparse.Namespace) -> int:
    from civicflow.embedded import create_topics
    from producers.webhook import PATH, serve

    if not settings.bootstrap:
        raise ConfigError("serve-ingest needs --bootstrap or CIVICFLOW_BOOTSTRAP")
    secrets = {firm: s.get_secret_value().encode() for firm, s in settings.property_secrets.items()}
    if not secrets:
        raise ConfigError('no firm secrets: set CIVICFLOW_PROPERTY_SECRETS=\'{"C001": "secret"}\'')
    create_topics(settings.bootstrap, settings.partitions)
    err.print(f"property webhook on http://{settings.webhook_host}:{settings.webhook_port}{PATH} "
              f"for {len(secrets)} firms", highlight=False)
    try:
        serve(settings.bootstrap, secrets, settings.webhook_host, settings.webhook_port)
    except KeyboardInterrupt:
        pass
    return 0


def cmd_worker(settings: Settings, args: argparse.Namespace) -> int:
    from streams.app import run_worker
    from streams.processor import Mode

    if not settings.bootstrap:
        raise ConfigError("the worker needs --bootstrap or CIVICFLOW_BOOTSTRAP")
    run_worker(settings, Mode(args.mode))
    return 0


def cmd_sink(settings: Settings, _args: argparse.Namespace) -> int:
    from civicflow.pipeline import sink_runner
    from sinks.clickhouse import ClickHouseSink, connect
    from sinks.migrate import migrate

    if not settings.bootstrap:
        raise ConfigError("the sink needs --bootstrap or CIVICFLOW_BOOTSTRAP")
    sink = ClickHouseSink(connect(settings.clickhouse_dsn()), settings.database)
    migrate(sink.client, settings.database)
    from prometheus_client import CollectorRegistry, start_http_server

    from sinks.metrics import SinkMetrics

    registry = CollectorRegistry()
    if settings.metrics_port:
        start_http_server(settings.metrics_port, addr=settings.metrics_host, registry=registry)
    # the long-running sink serves the live pipeline: batches written as soon as it caught up
    runner = sink_runner(settings, settings.bootstrap, sink, live=True,
                         metrics=SinkMetrics(registry))
    try:
        runner.run()
    except KeyboardInterrupt:
        runner.stop_event.set()
    return 0


def alertmanager_url(settings: Settings, what: str) -> str:
    """The Alertmanager URL, checked: one line saying what to set when it is missing or bad."""
    url = settings.alertmanager_url
    if not url:
        raise ConfigError(f"{what} needs Alertmanager: pass --alertmanager http://HOST:9093 or set "
                          "CIVICFLOW_ALERTMANAGER_URL")
    if not url.startswith(("http://", "https://")):
        raise ConfigError(f"Alertmanager URL {url!r} must start with http:// or https://")
    if settings.notify_alert_ttl_seconds < 2 * settings.notify_resend_seconds:
        raise ConfigError(
            f"CIVICFLOW_NOTIFY_ALERT_TTL_SECONDS ({settings.notify_alert_ttl_seconds:g}) must be at "
            f"least twice CIVICFLOW_NOTIFY_RESEND_SECONDS ({settings.notify_resend_seconds:g}), or "
            "alerts lapse in Alertmanager between two re-sends")
    return url


def cmd_notify(settings: Settings, _args: argparse.Namespace) -> int:
    from prometheus_client import CollectorRegistry

    from civicflow.embedded import create_topics
    from sinks.notifier import ACTIVE_TOPIC, AlertmanagerClient, Notifier, serve_http
    from sinks.notify_metrics import NotifyMetrics

    if not settings.bootstrap:
        raise ConfigError("notify needs a broker: pass --bootstrap host:9092 or set CIVICFLOW_BOOTSTRAP")
    url = alertmanager_url(settings, "notify")
    try:
        create_topics(settings.bootstrap, settings.partitions, timeout=10, compacted=(ACTIVE_TOPIC,))
    except Exception as exc:  # noqa: BLE001 - any admin failure means no broker to talk to
        raise ConfigError(f"cannot reach Kafka at {settings.bootstrap}: {exc}; check --bootstrap") from exc
    registry = CollectorRegistry()
    notifier = Notifier(settings.bootstrap, AlertmanagerClient(url),
                        resend_seconds=settings.notify_resend_seconds,
                        ttl_seconds=settings.notify_alert_ttl_seconds, metrics=NotifyMetrics(registry))
    if settings.metrics_port:
        try:
            serve_http(settings.metrics_host, settings.metrics_port, registry, notifier.health)
        except OSError as exc:
            raise ConfigError(f"cannot serve metrics on {settings.metrics_host}:{settings.metrics_port} "
                              f"({exc.strerror}): choose another CIVICFLOW_METRICS_PORT") from exc
    try:
        notifier.run()
    except KeyboardInterrupt:
        notifier.stop_event.set()
        raise
    if notifier.error is not None:
        raise CivicflowError(f"the notifier stopped: {notifier.error}")
    return 0


def cmd_broker(settings: Settings, args: argparse.Namespace) -> int:
    var_dir = args.var_dir or settings.var_dir
    with embedded_broker(var_dir, settings.partitions, settings.broker_start_timeout,
                         validate_events=settings.broker_validate_events) as bootstrap:
        refusing = ("; it refuses non-canonical records on events.*"
                    if settings.broker_validate_events else "")
        out.print(f"embedded broker (memory only) at {bootstrap}{refusing}; Ctrl-C stops it")
        while True:
            time.sleep(3600)


def cmd_db(settings: Settings, args: argparse.Namespace) -> int:
    from sinks.clickhouse import connect
    from sinks.migrate import migrate

    ensure_var_dir(settings.var_dir)
    client = connect(settings.clickhouse_dsn())
    cluster = getattr(args, "cluster", None)
    if args.db_command == "optimize":
        from sinks.maintenance import optimize

        started = time.monotonic()
        merged = optimize(client, settings.database, out.print, cluster=cluster)
        out.print(f"merged {merged} partitions in {time.monotonic() - started:.1f}s")
        return 0
    applied = migrate(client, settings.database, cluster=cluster)
    out.print(f"migrations applied: {', '.join(applied) if applied else 'none (up to date)'}")
    return 0


def cmd_report(settings: Settings, args: argparse.Namespace) -> int:
    from civicflow.report import print_report
    from sinks.clickhouse import connect

    client = connect(settings.clickhouse_dsn())
    print_report(client, settings.database, out)
    if args.html is not None:
        write_report_page(client, settings.database, args.html)
        out.print(f"wrote {args.html} (open it in any browser; it needs no network)", markup=False)
    return 0
