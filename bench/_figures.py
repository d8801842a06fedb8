"""One measured figure of a benchmark, and the interface every bench script offers.

Each `bench/NAME.py` defines `measure(quick: bool = False) -> list[Figure]`: one run of
its measurements, each figure a ratio (or a per-item cost) against a baseline measured in
that same run. `main()` prints them; a runner repeats `measure` and reports medians and
spreads. `quick` shrinks the inputs so that a test can check the bench runs at all.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True)
class Figure:
    """A named result of one run, with the target it is held to (if any)."""

    name: str
    value: float
    unit: str = "×"
    target: float | None = None
    better: Literal["lower", "higher"] = "lower"

    def meets(self) -> bool | None:
        """Whether the value reaches its target; None when there is no target."""
        if self.target is None:
            return None
        return self.value <= self.target if self.better == "lower" else self.value >= self.target

    def line(self) -> str:
        """The figure as one printed line, with its target."""
        goal = ""
        if self.target is not None:
            sign = "≤" if self.better == "lower" else "≥"
            verdict = "meets" if self.meets() else "MISSES"
            goal = f"  (target {sign} {self.target:g}{self.unit}: {verdict})"
        return f"{self.name}: {self.value:.4g}{self.unit}{goal}"
