"""The `civicflow` command. Errors a person can act on print one line and exit non-zero."""

from __future__ import annotations

import argparse
import logging
import re
import signal
import sys
import threading
from datetime import date, datetime
from pathlib import Path

from pydantic import ValidationError
from pydantic_settings import SettingsError
from rich.console import Console

from civicflow.settings import Settings
from schemas.errors import CivicflowError, ConfigError

console = Console(stderr=True)


def _as_of(text: str) -> datetime:
    try:
        value = datetime.fromisoformat(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not ISO 8601 (e.g. 2026-10-20T08:00:00+08:00)") from exc
    if value.tzinfo is None:
        raise argparse.ArgumentTypeError(f"{text!r} needs a UTC offset, e.g. +08:00")
    return value


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--bootstrap", help="Kafka bootstrap servers (default: embedded broker)")
    parser.add_argument("--clickhouse", help="ClickHouse DSN (default: chDB under ./var/clickhouse)")
    parser.add_argument("--var-dir", type=Path, help="where the embedded stack keeps its files")
    parser.add_argument("--partitions", type=int, help="partitions per topic")
    parser.add_argument("--policy", type=Path, help="SLA policy TOML (default: the packaged one)")


def _feeds(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--format", dest="feeds", action="append", nargs="+", required=True, metavar=("F", "FILE"),
        help="a feed format (jn-grid, 12345, 12345-flow, wuye, nyc311) and its files; repeat it for several "
             "feeds in one run: --format 12345 orders.csv --format 12345-flow flow.csv")
    # files after other options belong to the last --format
    parser.add_argument("files", nargs="*", type=Path, help=argparse.SUPPRESS)


def _stall_timeout(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--stall-timeout", type=float, metavar="SECONDS",
                        help="fail when nothing moved (produced, processed, landed) for this long "
                             "(default 300)")


def _reject_rate(text: str) -> float:
    try:
        value = float(text[:-1]) / 100 if text.endswith("%") else float(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{text!r} is not a rate like 0.01 or 1%") from exc
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not between 0 and 1 (0% and 100%)")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="civicflow", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    demo = sub.add_parser("demo", help="embedded stack on a simulated city, then a report")
    _common(demo)
    demo.add_argument("--days", type=int, default=7)
    demo.add_argument("--districts", type=int, default=3)
    demo.add_argument("--cases-per-day", type=int, default=60, help="grid cases per district")
    demo.add_argument("--seed", type=int, default=7)
    demo.add_argument("--start", type=date.fromisoformat, default=date(2026, 9, 28))
    demo.add_argument("--no-dispatch-steps", dest="dispatch_steps", action="store_false",
                      help="no returns, re-dispatches or suspensions, no 12345 circulation log")
    _stall_timeout(demo)

    rep = sub.add_parser("replay", help="replay feed files through the whole pipeline")
    _common(rep)
    _feeds(rep)
    rep.add_argument("--as-of", type=_as_of)
    _stall_timeout(rep)
    rep.add_argument("--notify", action="store_true",
                     help="also send the replay's alerts to Alertmanager (--alertmanager URL)")
    rep.add_argument("--alertmanager", help="Alertmanager URL for --notify, e.g. http://127.0.0.1:9093")

    ing = sub.add_parser("ingest", help="feed files -> adapters -> Kafka, with the accounting")
    _common(ing)
    _feeds(ing)

    val = sub.add_parser(
        "validate", help="dry run of feed files through their adapters: what would be rejected "
                         "and why (no Kafka, no ClickHouse)")
    _feeds(val)
    val.add_argument("--max-reject-rate", type=_reject_rate, default=0.0,
                     help="exit 0 when at most this share of records is rejected (0.01 or 1%%; "
                          "default 0: any reject fails)")
    val.add_argument("--var-dir", type=Path, help="where big inputs are sorted on disk")

    con = sub.add_parser("contracts", help="the JSON Schema / Table Schema / OpenAPI / AsyncAPI "
                                           "contracts in schemas/json")
    con.add_argument("action", choices=["write", "check"],
                     help="write: regenerate them from the models and adapters; check: exit 1 "
                          "when a checked-in file is out of date")
    con.add_argument("--dir", type=Path, help="default: the schemas/json folder of this install")

    serve = sub.add_parser("serve-ingest", help="the property-service webhook server")
    _common(serve)
    serve.add_argument("--host")
    serve.add_argument("--port", type=int)

    sim = sub.add_parser("simulate", help="write simulated feeds to files")
    sim.add_argument("--out", type=Path, default=Path("var/sim"))
    sim.add_argument("--days", type=int, default=7)
    sim.add_argument("--districts", type=int, default=3)
    sim.add_argument("--cases-per-day", type=int, default=120)
    sim.add_argument("--seed", type=int, default=7)
    sim.add_argument("--start", type=date.fromisoformat, default=date(2026, 9, 28))
    sim.add_argument("--no-dispatch-steps", dest="dispatch_steps", action="store_false",
                     help="no returns, re-dispatches or suspensions, no 12345 circulation log")

    worker = sub.add_parser("worker", help="the Faust stream worker")
    _common(worker)
    worker.add_argument("--mode", choices=["live", "replay"], default="live")

    sink = sub.add_parser("sink", help="the ClickHouse sink")
    _common(sink)

    notify = sub.add_parser("notify", help="alerts.sla -> Alertmanager (红黄牌 to the people who act)")
    _common(notify)
    notify.add_argument("--alertmanager", help="Alertmanager URL, e.g. http://127.0.0.1:9093")

    sub.add_parser("broker", help="run the embedded broker until Ctrl-C").add_argument(
        "--var-dir", type=Path)

    db = sub.add_parser("db", help="database schema")
    db_sub = db.add_subparsers(dest="db_command", required=True)
    mig = db_sub.add_parser("migrate", help="apply pending migrations")
    _common(mig)
    mig.add_argument("--cluster", help="run ON CLUSTER: replicated local tables + Distributed")
    opt = db_sub.add_parser(
        "optimize", help="merge the versions the sink wrote (nightly): keeps the BI views fast")
    _common(opt)
    opt.add_argument("--cluster", help="merge the local tables ON CLUSTER")

    report = sub.add_parser("report", help="三率, rankings and the overdue list")
    _common(report)
    report.add_argument("--html", type=Path, help="also write a self-contained page with charts")

    explain = sub.add_parser("explain", help="a case's events, clocks, working days and alerts")
    _common(explain)
    explain.add_argument("case_id")
    explain.add_argument("--as-of", type=_as_of, help="default: the pipeline clock")
    return parser


def settings_from(args: argparse.Namespace) -> Settings:
    overrides = {
        key: getattr(args, attr)
        for key, attr in (("bootstrap", "bootstrap"), ("clickhouse", "clickhouse"),
                          ("var_dir", "var_dir"), ("partitions", "partitions"),
                          ("policy", "policy"), ("webhook_host", "host"),
                          ("webhook_port", "port"), ("alertmanager_url", "alertmanager"),
                          ("stall_timeout_seconds", "stall_timeout"))
        if getattr(args, attr, None) is not None
    }
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        first = exc.errors()[0]
        name = ".".join(map(str, first["loc"]))
        variable = f"CIVICFLOW_{str(first['loc'][0]).upper()}" if first["loc"] else "CIVICFLOW_*"
        raise ConfigError(f"setting {name} ({variable}): {first['msg']}") from exc
    except SettingsError as exc:  # an env value that is not even JSON, for a dict or list setting
        match = re.search(r'field "(\w+)"', str(exc))
        name = match.group(1) if match else "?"
        example = EXAMPLES.get(name, "")
        raise ConfigError(f"CIVICFLOW_{name.upper()} is not valid JSON"
                          f"{f' ({exc.__cause__})' if exc.__cause__ else ''}"
                          f"{f': set it like {example}' if example else ''}") from exc


EXAMPLES = {"property_secrets": 'CIVICFLOW_PROPERTY_SECRETS=\'{"C001": "secret"}\''}
INTERRUPTED = threading.Event()


def _interrupt(_signum: int, _frame: object) -> None:
    INTERRUPTED.set()
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    # Faust handles its worker's signals itself
    if args.command != "worker":
        signal.signal(signal.SIGINT, _interrupt)
        signal.signal(signal.SIGTERM, _interrupt)
    try:
        return run(args)
    except CivicflowError as exc:
        if INTERRUPTED.is_set():
            return _interrupted()
        # markup=False: a message with [brackets] (a policy key, a list) prints as it is
        console.print(f"civicflow: {exc}", style="red", soft_wrap=True, highlight=False,
                      markup=False)
        return 2
    except KeyboardInterrupt:
        return _interrupted()
    except Exception:
        # an interrupt can surface wrapped by a C extension (pydantic, librdkafka callbacks)
        if INTERRUPTED.is_set():
            return _interrupted()
        raise
    finally:
        embedded = sys.modules.get("civicflow.embedded")  # only if this command started children
        if embedded is not None:
            embedded.stop_spawned()


def _interrupted() -> int:
    console.print("civicflow: interrupted; the embedded stack was stopped", soft_wrap=True)
    return 130


def run(args: argparse.Namespace) -> int:
    from civicflow import commands

    settings = settings_from(args)
    handler = getattr(commands, f"cmd_{args.command.replace('-', '_')}")
    return int(handler(settings, args))


if __name__ == "__main__":
    sys.exit(main())
