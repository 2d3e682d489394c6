"""Compiles the worker's pure modules with mypyc at install (the metadata is in pyproject.toml).

The case processor runs ~1.5x faster compiled (docs/BENCHMARKS.md). The sources stay the truth:
`streams/native.py` records each module's digest here and, at import, runs the Python source of
every compiled module when any of them changed since (an edit takes effect at once, slower, until
`make install` compiles again). CIVICFLOW_COMPILE=0 installs without compiling; a machine
without a C compiler gets the pure-Python modules (the extensions are optional)."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from setuptools import setup
from setuptools.command.build_ext import build_ext

COMPILED = ("calendar", "cases", "processor", "sla", "snapshots", "steps")  # streams.native's list
HERE = Path(__file__).resolve().parent


class BuildWithDigests(build_ext):
    """Builds the extensions, then records the digest of each source they were built from."""

    def run(self) -> None:
        super().run()
        outputs = [Path(self.get_ext_fullpath(ext.name)) for ext in self.extensions]
        if not outputs or not all(path.exists() for path in outputs):
            return  # a module failed to compile (optional): the sources run, nothing recorded
        digests = {name: hashlib.sha256((HERE / "streams" / f"{name}.py").read_bytes()).hexdigest()
                   for name in COMPILED}
        target = Path(self.get_ext_fullpath("streams.cases")).parent / "compiled.json"
        target.write_text(json.dumps(digests, indent=1, sort_keys=True) + "\n")


def extensions() -> list:
    if os.environ.get("CIVICFLOW_COMPILE", "1") == "0":
        return []
    from mypyc.build import mypycify

    built = mypycify([f"streams/{name}.py" for name in COMPILED], opt_level="3")
    for ext in built:
        ext.optional = True
    return built


setup(ext_modules=extensions(), cmdclass={"build_ext": BuildWithDigests})
