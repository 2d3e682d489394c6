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
        return (f"{self.name}: {figure(self.ours)} {self.unit} vs {self.baseline_name} "
                f"{figure(self.baseline)} {self.unit} -> ratio {ratio:.3f} (target: {self.target})")


def figure(value: float) -> str:
    return f"{value:,.0f}" if value >= 100 else f"{value:.2f}"


def timed(action: Callable[[], object]) -> float:
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def best_of(actions: dict[str, Callable[[], object]], runs: int = 3) -> dict[str, float]:
    """Fastest of `runs` timings per action, the actions interleaved: this VM's speed drifts
    by 2x within a minute, and the minimum is the figure least touched by that."""
    best = dict.fromkeys(actions, float("inf"))
    for _ in range(runs):
        for name, action in actions.items():
            best[name] = min(best[name], timed(action))
    return best
