"""Compiles the worker's pure modules with mypyc at install (the metadata is in pyproject.toml).

The case processor runs ~1.5x faster compiled (docs/BENCHMARKS.md). The sources stay the truth:
the build records each module's digest, and at import `streams/native.py` runs the Python source
of every compiled module when any of them changed since (an edit takes effect at once, slower,
until `make install` compiles again). CIVICFLOW_COMPILE=0 installs without compiling; a machine
without a C compiler gets the pure-Python modules (the extensions are optional)."""

from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path

from setuptools import setup
from setuptools.command.build_ext import build_ext

HERE = Path(__file__).resolve().parent
# the list of compiled modules and their digests come from streams/native.py, which checks them
# at import (loaded by path: importing the `streams` package would run that check here)
_spec = importlib.util.spec_from_file_location("civicflow_native", HERE / "streams" / "native.py")
assert _spec is not None and _spec.loader is not None
native = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(native)


class BuildWithDigests(build_ext):
    """Builds the extensions, then records the digest of each source they were built from."""

    def run(self) -> None:
        super().run()
        outputs = [Path(self.get_ext_fullpath(ext.name)) for ext in self.extensions]
        if not outputs or not all(path.exists() for path in outputs):
            return  # a module failed to compile (optional): the sources run, nothing recorded
        target = Path(self.get_ext_fullpath("streams.cases")).parent / native.DIGESTS_FILE
        target.write_text(json.dumps(native.source_digests(HERE / "streams"), indent=1,
                                     sort_keys=True) + "\n")


def extensions() -> list:
    if os.environ.get("CIVICFLOW_COMPILE", "1") == "0":
        return []
    from mypyc.build import mypycify

    built = mypycify([f"streams/{name}.py" for name in native.COMPILED], opt_level="3")
    for ext in built:
        ext.optional = True
    return built


setup(ext_modules=extensions(), cmdclass={"build_ext": BuildWithDigests})
