from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass
class Result:
    name: str
    unit: str
    ours: float
    baseline_name: str
    baseline: float
    target: str

    def line(self) -> str:
        ratio = self.ours / self.baseline if self.baseline else float("nan")
        return (f"{self.name}: {self.ours:,.0f} {self.unit} vs {self.baseline_name} "
                f"{self.baseline:,.0f} {self.unit} -> ratio {ratio:.3f} (target: {self.target})")


def timed(action: Callable[[], object]) -> float:
    start = time.perf_counter()
    action()
    return time.perf_counter() - start
