"""The worker's pure modules compiled (mypyc, setup.py) or run from source (streams/native.py):
an edited source is never shadowed by its stale compiled module, and both forms give the same
bytes."""

from __future__ import annotations

import hashlib
import importlib
import importlib.machinery
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import streams
from streams.native import COMPILED, DIGESTS_FILE, changed_sources, compiled_present

ROOT = Path(__file__).resolve().parents[2]
PRESENT = compiled_present()
needs_build = pytest.mark.skipif(not PRESENT, reason="the worker modules are not compiled here "
                                 "(CIVICFLOW_COMPILE=0 or no C compiler at install)")


def _run(code: str, path: Path | None = None, **env: str) -> subprocess.CompletedProcess[str]:
    run_env = {**os.environ, **env}
    if path is not None:
        run_env["PYTHONPATH"] = str(path)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=run_env, cwd=path or ROOT, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def _python(code: str, path: Path | None = None, **env: str) -> str:
    return _run(code, path, **env).stdout


def test_each_source_that_differs_from_the_recorded_build_is_named(tmp_path):
    for name in COMPILED:
        (tmp_path / f"{name}.py").write_text(f"# {name}\n")
    assert changed_sources(tmp_path) == list(COMPILED)  # nothing recorded: none trusted
    (tmp_path / DIGESTS_FILE).write_text(json.dumps({
        name: hashlib.sha256(f"# {name}\n".encode()).hexdigest() for name in COMPILED}))
    assert changed_sources(tmp_path) == []
    (tmp_path / "sla.py").write_text("# sla, edited\n")
    (tmp_path / "cases.py").write_text("# cases, edited\n")
    assert changed_sources(tmp_path) == ["cases", "sla"]
    assert not compiled_present(tmp_path)
    (tmp_path / f"cases{importlib.machinery.EXTENSION_SUFFIXES[0]}").write_bytes(b"")
    assert compiled_present(tmp_path)


def test_ci_runs_the_compiled_worker():
    """`make install` compiles the worker's modules: in CI they must be what runs (the speed in
    docs/BENCHMARKS.md is theirs), not silently the sources."""
    if not os.environ.get("CI") and not PRESENT:
        pytest.skip("not compiled on this machine")
    assert streams.FORM == "compiled"
    for name in COMPILED:
        module = importlib.import_module(f"streams.{name}")
        assert module.__file__ is not None and not module.__file__.endswith(".py"), module.__file__


@needs_build
def test_an_edited_source_runs_instead_of_every_stale_compiled_module(tmp_path):
    shutil.copytree(ROOT / "streams", tmp_path / "streams",
                    ignore=shutil.ignore_patterns("__pycache__"))
    for shared in ROOT.glob("*__mypyc*"):  # the compiled modules' shared library
        shutil.copy(shared, tmp_path)
    probe = ("import streams, streams.processor as p, streams.cases as c; "
             "print(streams.FORM); print(p.__file__); print(c.__file__); "
             "print(p.CaseEntry.__module__, getattr(c, 'EDITED', None))")
    form, processor, cases, rest = _python(probe, tmp_path).splitlines()
    assert form == "compiled" and processor.endswith(".so") and cases.endswith(".so")
    with (tmp_path / "streams" / "cases.py").open("a") as source:
        source.write("\nEDITED = 'yes'\n")
    done = _run(probe, tmp_path)
    form, processor, cases, rest = done.stdout.splitlines()
    assert form.startswith("source: streams/{cases}.py changed"), form
    # all of them from source: a compiled processor would call the old compiled cases natively
    assert processor.endswith("streams/processor.py") and cases.endswith("streams/cases.py")
    assert rest.endswith(" yes")
    assert "make install" in done.stderr  # the warning says what to do


FEED = """
import hashlib, io, random, sys
from datetime import UTC, date, datetime, timedelta
from producers.base import Reject
from producers.grid import GridAdapter
from producers.wuye import WuyeAdapter
from producers.simulator import simulate_grid, simulate_property
from schemas.policy import load_policy
from streams.calendar import WorkingDayCalendar
from streams.processor import CaseProcessor, Mode, Record
import streams
events = [e for e in GridAdapter().parse(io.BytesIO(b"\\n".join(simulate_grid(
    seed=11, start=date(2026, 10, 5), days=12, cases_per_day=40, districts=3))), "grid")
    if not isinstance(e, Reject)]
events += [e for e in WuyeAdapter().parse(io.BytesIO(b"\\n".join(simulate_property(
    seed=11, start=date(2026, 10, 5), days=12, cases_per_day=20))), "wuye")
    if not isinstance(e, Reject)]
rng = random.Random(5)
events += rng.sample(events, len(events) // 10)  # duplicates
rng.shuffle(events)  # any arrival order
import zlib
records = [Record(f"events.{e.source.value}", zlib.crc32(e.case_id.encode()) % 3, e.case_id.encode(),
                  e.to_json()) for e in events]
records.insert(len(records) // 2, Record("events.grid", 0, None, b"not json"))
for mode in (Mode.REPLAY, Mode.LIVE):
    store = {}
    processor = CaseProcessor(load_policy(), WorkingDayCalendar(), store, mode=mode,
                              wall_clock=lambda: datetime(2026, 10, 20, tzinfo=UTC),
                              working_set=500, archive_after=timedelta(days=3))
    digest = hashlib.sha256()
    start = 0
    while start < len(records):
        size = rng.randint(1, 400)
        out = processor.process(records[start:start + size])
        start += size
        for part in (out.snapshots, out.alerts, out.rejects, out.state_writes, out.controls):
            digest.update(repr(part).encode())
    print(mode.value, len(records), processor.counts["processed"], len(store), digest.hexdigest())
print(streams.FORM.split(":")[0])
"""


@needs_build
def test_compiled_and_source_forms_give_the_same_bytes():
    """Every output byte (snapshots, alerts, dead letters, state writes) of both forms on a
    shuffled city feed with duplicates, a bad record, a small working set and archiving."""
    compiled = _python(FEED).splitlines()
    source = _python(FEED, CIVICFLOW_COMPILED="0").splitlines()
    assert compiled[-1] == "compiled" and source[-1] == "source"
    assert compiled[:-1] == source[:-1]
    assert int(compiled[0].split()[2]) > 1000  # events applied, not all refused


@needs_build
def test_the_processor_tests_pass_on_the_python_source_too():
    """The suite runs the compiled form; the same assertions on the source form (which runs
    whenever a source was edited since the build)."""
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-x",
         "tests/unit/test_processor.py", "tests/unit/test_cases.py",
         "tests/unit/test_sla_dispatch_suspension.py", "tests/unit/test_hot_paths.py"],
        capture_output=True, text=True, cwd=ROOT, timeout=600, check=False,
        env={**os.environ, "CIVICFLOW_COMPILED": "0"})
    assert done.returncode == 0, done.stdout[-3000:]
    assert " passed" in done.stdout
