"""Which form of the worker's pure modules runs: compiled (mypyc, built by `make install` from
setup.py) or their Python source.

A compiled module would shadow an edit of its source until the next install, and the compiled
modules call each other natively, so they are used only all together and only when every source
is byte for byte the one they were built from (`compiled.json`, written by the build). Otherwise
the Python sources run — the same code, ~1.5x slower — and a warning says why.
CIVICFLOW_COMPILED=0 runs the sources on purpose (a profiler sees into them)."""

from __future__ import annotations

import hashlib
import importlib.abc
import importlib.machinery
import importlib.util
import json
import os
import sys
import warnings
from collections.abc import Sequence
from importlib.machinery import ModuleSpec
from pathlib import Path
from types import ModuleType

COMPILED = ("calendar", "cases", "processor", "sla", "snapshots", "steps")
DIGESTS_FILE = "compiled.json"
FOLDER = Path(__file__).resolve().parent


class SourceWarning(RuntimeWarning):
    """The compiled modules are not used: their sources run."""


def compiled_present(folder: Path = FOLDER) -> bool:
    return any((folder / f"{name}{suffix}").exists()
               for name in COMPILED for suffix in importlib.machinery.EXTENSION_SUFFIXES)


def source_digests(folder: Path = FOLDER) -> dict[str, str]:
    """Each compiled module's source digest: what the build records (setup.py) and this checks."""
    return {name: hashlib.sha256((folder / f"{name}.py").read_bytes()).hexdigest()
            for name in COMPILED}


def changed_sources(folder: Path = FOLDER) -> list[str]:
    """The compiled modules whose source is not the one they were built from (all of them when
    the build recorded nothing)."""
    try:
        recorded = json.loads((folder / DIGESTS_FILE).read_text())
    except (OSError, ValueError):
        return list(COMPILED)
    return [name for name, digest in source_digests(folder).items() if recorded.get(name) != digest]


class SourceFinder(importlib.abc.MetaPathFinder):
    """Finds the Python source of the compiled modules, ahead of their extensions."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def find_spec(self, fullname: str, path: Sequence[str] | None,
                  target: ModuleType | None = None) -> ModuleSpec | None:
        package, _, name = fullname.rpartition(".")
        if package != "streams" or name not in COMPILED:
            return None
        return importlib.util.spec_from_file_location(fullname, self.folder / f"{name}.py")


def choose(folder: Path = FOLDER) -> str:
    """Sets up the import of the compiled modules; returns which form runs: "compiled",
    "source" (nothing compiled, or asked for), or "source: <why>"."""
    if not compiled_present(folder):
        return "source"
    reason = None
    if os.environ.get("CIVICFLOW_COMPILED", "1") == "0":
        reason = "CIVICFLOW_COMPILED=0"
    else:
        changed = changed_sources(folder)
        if changed:
            reason = (f"streams/{{{','.join(changed)}}}.py changed since they were compiled; "
                      "`make install` compiles them again")
            warnings.warn(f"civicflow runs the Python source of its worker modules (slower): "
                          f"{reason}", SourceWarning, stacklevel=2)
    if reason is None:
        return "compiled"
    if not any(isinstance(finder, SourceFinder) for finder in sys.meta_path):
        sys.meta_path.insert(0, SourceFinder(folder))
    return f"source: {reason}"
