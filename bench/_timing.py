"""Timing helpers shared by the benchmarks: best-of-n wall and CPU time."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def best_of(func: Callable[[], T], repeat: int = 3) -> tuple[float, T]:
    """Run func repeat times; return the shortest wall time in seconds and the last result."""
    best = float("inf")
    result: T | None = None
    for _ in range(repeat):
        start = time.perf_counter()
        result = func()
        best = min(best, time.perf_counter() - start)
    assert result is not None or repeat > 0
    return best, result  # type: ignore[return-value]


def ratio(ours: float, baseline: float) -> str:
    """Format ours / baseline as a ratio with two decimals."""
    return f"{ours / baseline:.2f}" if baseline > 0 else "n/a"
