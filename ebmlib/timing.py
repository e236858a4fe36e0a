"""A minimal timing helper shared by the chapters that show costs and by ``benchmarks/``.

Timings are reported, never asserted: they depend on the machine.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from .validation import check_int

__all__ = ["best_time"]


def best_time(fn: Callable[[], object], *, repeats: int = 3, warmup: int = 1) -> float:
    """Best wall-clock time in seconds of ``repeats`` calls of ``fn()``, after ``warmup`` untimed
    calls."""
    repeats = check_int(repeats, "repeats")
    warmup = check_int(warmup, "warmup", minimum=0)
    for _ in range(warmup):
        fn()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best
